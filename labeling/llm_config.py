"""Where the LLM stage's endpoint, key and limits come from: the environment, or a file the operator owns.

Never from the workbench: whoever can reach its Settings page must not be able to point
the next cron run (and its ``Authorization: Bearer`` key, and the evidence) at their own
server. So the provider, model, base URL and key are read from the environment or from
``$WAFLENS_LLM_CONFIG`` (default ``<database>.llm.toml``, beside the database), a TOML
file that must belong to the user running waflens with mode 0600; the app only reads it.
The environment wins over the file, the file over the defaults.
"""

from __future__ import annotations

import math
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from waflens.data.errors import ConfigError

CONFIG_ENV = "WAFLENS_LLM_CONFIG"
PROVIDERS = ("offline", "openai")
# name in the file -> (environment variable, type, default)
FIELDS: dict[str, tuple[str, type, object]] = {
    "provider": ("WAFLENS_LLM_PROVIDER", str, "offline"),
    "model": ("WAFLENS_LLM_MODEL", str, "gpt-4o-mini"),
    "base_url": ("OPENAI_BASE_URL", str, None),
    "api_key": ("OPENAI_API_KEY", str, None),
    "timeout_s": ("WAFLENS_LLM_TIMEOUT", float, 30.0),            # one HTTP call
    "max_retries": ("WAFLENS_LLM_MAX_RETRIES", int, 3),
    "deadline_s": ("WAFLENS_LLM_DEADLINE", float, 600.0),         # the whole stage, every cluster
    "max_answer_bytes": ("WAFLENS_LLM_MAX_ANSWER_BYTES", int, 262_144),
}


@dataclass(frozen=True)
class LLMConfig:
    provider: str = "offline"
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0
    max_retries: int = 3
    deadline_s: float = 600.0
    max_answer_bytes: int = 262_144
    origins: dict = field(default_factory=dict, compare=False)   # field -> "environment", the file's path or "default"

    def provider_options(self) -> dict:
        """What :func:`waflens.labeling.summarize.make_summarizer` takes for this provider."""
        if self.provider != "openai":
            return {}
        return {"model": self.model, "base_url": self.base_url, "api_key": self.api_key, "timeout": self.timeout_s,
                "max_retries": self.max_retries, "max_answer_bytes": self.max_answer_bytes}

    def environment(self) -> dict[str, str]:
        """The same configuration as environment variables, for a ``waflens summarize`` child process."""
        values = {}
        for name, (variable, _, _) in FIELDS.items():
            value = getattr(self, name)
            if value is not None:
                values[variable] = str(value)
        return values


def config_path(db_path: str | os.PathLike | None) -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    return Path(f"{os.fspath(db_path)}.llm.toml") if db_path is not None else None


def load_llm_config(db_path: str | os.PathLike | None = None, **overrides) -> LLMConfig:
    """The LLM configuration: ``overrides`` (command-line options, None = unset), else the environment,
    else the operator's file, else the defaults."""
    path = config_path(db_path)
    from_file = _read_file(path) if path is not None and (path.exists() or os.environ.get(CONFIG_ENV)) else {}
    values, origins = {}, {}
    for name, (variable, kind, default) in FIELDS.items():
        if overrides.get(name) is not None:
            raw, origin = overrides[name], "option"
        elif os.environ.get(variable):
            raw, origin = os.environ[variable], "environment"
        elif name in from_file:
            raw, origin = from_file[name], str(path)
        else:
            raw, origin = default, "default"
        values[name] = raw if raw is None else _check(name, kind, raw, origin, variable)
        origins[name] = origin
    return LLMConfig(**values, origins=origins)


def _read_file(path: Path) -> dict:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"LLM settings file {path} ({CONFIG_ENV}) does not exist: create it or unset {CONFIG_ENV}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"LLM settings file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(f"LLM settings file {path} is open to others (mode {mode:04o}); it steers where the API key "
                          f"goes: run `chmod 600 {path}`")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(f"LLM settings file {path} belongs to another user (uid {info.st_uid}): only the user "
                          "running waflens may own it")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"LLM settings file {path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"LLM settings file {path}: unknown setting {unknown[0]!r}; use {', '.join(FIELDS)}")
    return data


def _check(name: str, kind: type, raw, origin: str, variable: str):
    where = f"{variable} (from the environment)" if origin == "environment" else f"{name} in {origin}"
    try:
        value = kind(raw) if not isinstance(raw, bool) else None
    except (TypeError, ValueError):
        value = None
    if value is None or (kind is float and not math.isfinite(value)) or (kind is int and isinstance(raw, float)):
        raise ConfigError(f"{where} must be a {'number' if kind is not str else 'text'}, got {str(raw)[:40]!r}")
    if kind is str:
        value = value.strip()
    if name == "provider" and value not in PROVIDERS:
        raise ConfigError(f"{where} must be one of {', '.join(PROVIDERS)}, got {value[:40]!r}")
    if name == "base_url" and not value.startswith(("http://", "https://")):
        raise ConfigError(f"{where} must start with http:// or https://, got {value[:40]!r}")
    if kind in (int, float) and (value <= 0 if name != "max_retries" else value < 0):
        raise ConfigError(f"{where} must be {'at least 0' if name == 'max_retries' else 'above 0'}, got {raw!r}")
    return value
