"""Keyed pseudonymization of client identifiers (IPs, session cookies, users).

A client IP is personal data. waflens replaces it, before anything is written to
the database, by ``HMAC-SHA256(key, value)`` truncated to 16 hex digits: the same
client always gets the same token (so sessions and clusters still work), and
nobody without the key can go back to the IP. The key lives outside the database:
in ``$WAFLENS_PSEUDONYM_KEY`` or in a key file readable only by its owner (0600),
by default ``<database>.key`` next to the database, created on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from waflens.data.errors import ConfigError
from waflens.data.redaction import Redactor, canonical_ip

KEY_ENV = "WAFLENS_PSEUDONYM_KEY"
KEY_FILE_ENV = "WAFLENS_KEY_FILE"
TOKEN_HEX_DIGITS = 16

def default_key_path(db_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(db_path)}.key")


def load_key(db_path: str | os.PathLike, *, create: bool = True) -> bytes:
    """The pseudonymization key: from the environment, else from the key file."""
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        if len(from_env) < 16:
            raise ConfigError(f"{KEY_ENV} is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)")
        return from_env.encode()
    path = Path(os.environ.get(KEY_FILE_ENV) or default_key_path(db_path))
    if not path.exists():
        if not create:
            raise ConfigError(f"no pseudonymization key at {path}: set {KEY_ENV} or {KEY_FILE_ENV}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"key file {path} is readable by others (mode {mode:04o}): run `chmod 600 {path}`")
    key = path.read_text().strip()
    if len(key) < 16:
        raise ConfigError(f"key file {path} holds fewer than 16 characters: replace it with `openssl rand -hex 32`")
    return key.encode()


class Pseudonymizer:
    """Maps identifiers to stable keyed tokens; ``key=None`` keeps values (lab mode)."""

    def __init__(self, key: bytes | None):
        self.key = key
        self._cache: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def token(self, value: str | None) -> str | None:
        if value is None or value == "" or value == "-":
            return None
        if self.key is None:
            return value
        cached = self._cache.get(value)
        if cached is None:   # an IP is hashed in one spelling, so 2001:DB8::1 and 2001:db8:0::1 match
            digest = hmac.new(self.key, canonical_ip(value).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
            cached = self._cache[value] = digest[:TOKEN_HEX_DIGITS]
            if len(self._cache) > 1_000_000:
                self._cache.clear()
        return cached

    def redactor(self) -> Redactor:
        """The :class:`waflens.data.redaction.Redactor` that tokenizes with this key (lab mode: keeps IPs, cookies)."""
        return Redactor(self.token if self.enabled else None)
