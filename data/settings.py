"""Workbench settings kept in the database: thresholds and retention.

One row per key in ``settings`` (value as JSON, who changed it and when). Every key
is declared in :data:`SPEC` with its type, default and range; a value is checked
before it is written, and reading returns the defaults for keys never set, so a
database that has no ``settings`` table yet (it is created on the first write)
reads as all defaults. The LLM's provider, model, endpoint and key never go here (see
:mod:`waflens.labeling.llm_config`): anyone who can reach the workbench can change these rows,
and must not be able to send the next cron run's key and evidence elsewhere. Rows an
earlier version stored for them (``llm_*``) are ignored, and so is ``alert_quantile``: a session alerts at
the production model's own ``likely_attack`` threshold (in its manifest), the one alert rate every page and
report uses, so a second, quantile-based threshold here would only disagree with it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, NamedTuple

import duckdb

from waflens.data.errors import ConfigError

_DDL = """CREATE TABLE IF NOT EXISTS settings (
    key        VARCHAR PRIMARY KEY,
    value      VARCHAR NOT NULL,       -- JSON
    updated_by VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL
)"""


class Setting(NamedTuple):
    key: str
    type: type                  # bool is never accepted for int or float
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    exclusive: bool = False     # minimum and maximum are exclusive bounds


SPEC: dict[str, Setting] = {s.key: s for s in (
    Setting("membership_threshold", float, 0.5, "The Sessions page's filter of a cluster's members: HDBSCAN "
            "membership probability at or above this (a label always reaches the members at 0.5 or above)",
            minimum=0.0, maximum=1.0),
    Setting("retention_days", float, None, "Delete traffic older than this many days (empty: keep everything)",
            minimum=0.0, nullable=True, exclusive=True),
    Setting("min_cluster_size", int, 10, "HDBSCAN minimum cluster size for clustering runs", minimum=2,
            maximum=100_000),
)}
_MAX_TEXT = 500


def defaults() -> dict[str, Any]:
    return {key: setting.default for key, setting in SPEC.items()}


def _table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'settings'").fetchall()[0][0])


def get_settings(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Every known setting: the stored value, else the default. Unknown stored keys are ignored."""
    values = defaults()
    if not _table_exists(con):
        return values
    for key, value in con.execute("SELECT key, value FROM settings").fetchall():
        if key in SPEC:
            try:
                values[key] = validate(key, json.loads(value))
            except (ValueError, ConfigError):
                pass  # a value an older version wrote that this one does not accept: the default stands
    return values


def setting_history(con: duckdb.DuckDBPyConnection) -> list[tuple[str, Any, str, datetime]]:
    """(key, value, updated_by, updated_at) of every stored setting."""
    if not _table_exists(con):
        return []
    return [(k, json.loads(v), by, at) for k, v, by, at in
            con.execute("SELECT key, value, updated_by, updated_at FROM settings ORDER BY key").fetchall()]


def validate(key: str, value: Any) -> Any:
    """The value as stored (ints for int settings, None for an empty optional one), or ConfigError."""
    setting = SPEC.get(key)
    if setting is None:
        raise ConfigError(f"unknown setting {key!r}: use one of {', '.join(SPEC)}")
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            value = None
        elif setting.type is not str:
            try:
                value = setting.type(value)
            except ValueError:
                raise ConfigError(f"{key} must be a {_kind(setting)}, got {value[:40]!r}") from None
    if value is None:
        if setting.nullable:
            return None
        raise ConfigError(f"{key} needs a value (default: {setting.default!r})")
    if setting.type is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float) if setting.type is float else setting.type):
        raise ConfigError(f"{key} must be a {_kind(setting)}, got {type(value).__name__}")
    if setting.type is int and isinstance(value, float):
        raise ConfigError(f"{key} must be a whole number, got {value!r}")
    if setting.type is float:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if setting.type is str:
        if len(value) > _MAX_TEXT:
            raise ConfigError(f"{key} is longer than {_MAX_TEXT} characters")
        if setting.choices and value not in setting.choices:
            raise ConfigError(f"{key} must be one of {', '.join(setting.choices)}, got {value[:40]!r}")
    _check_range(setting, value)
    return value


def _kind(setting: Setting) -> str:
    return {int: "whole number", float: "number", str: "text"}[setting.type]


def _check_range(setting: Setting, value: Any) -> None:
    low, high = setting.minimum, setting.maximum
    if low is None and high is None:
        return
    if setting.exclusive:
        ok = (low is None or value > low) and (high is None or value < high)
        words = ("above", "below")
    else:
        ok = (low is None or value >= low) and (high is None or value <= high)
        words = ("at least", "at most")
    if not ok:
        bounds = " and ".join(f"{word} {bound:g}" for word, bound in zip(words, (low, high)) if bound is not None)
        raise ConfigError(f"{setting.key} must be {bounds}, got {value!r}")


def set_setting(con: duckdb.DuckDBPyConnection, key: str, value: Any, author: str) -> Any:
    """Validate and store one setting (creating the table on first use); returns the value stored."""
    value = validate(key, value)
    if not author or not str(author).strip():
        raise ConfigError("a setting change needs an author (who changed it)")
    con.execute(_DDL)
    con.execute(
        """INSERT INTO settings VALUES ($key, $value, $by, $at)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by,
                                          updated_at = excluded.updated_at""",
        {"key": key, "value": json.dumps(value), "by": str(author).strip()[:200],
         "at": datetime.now(timezone.utc).replace(tzinfo=None)})
    return value
