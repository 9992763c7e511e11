"""Analyst labels for sessions from a label file: ``<session cookie value> <label>`` per line.

Labelled data often comes as a list of session ids with a verdict (an annotated data set, a
ticket, another tool's export), not as clusters. Each id is matched to the sessions whose
requests carried that session cookie (pseudonymized with the database's key, as at ingest),
and each session gets an analyst decision that feeds the label-aware retraining
(``scoring/feedback.py``) like a confirmed cluster label. Labels: ``human`` / ``benign``
(benign), ``bot`` or any ``*_bot`` (family ``scraping``, suspicious), or a family name
(malicious).
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Callable, NamedTuple

import duckdb

from waflens.data.db import split_statements
from waflens.data.errors import InputError
from waflens.labeling.taxonomy import FAMILIES

MAX_LABEL_FILE_BYTES = 64 * 1024 * 1024


class ImportSummary(NamedTuple):
    ids: int               # distinct ids in the file
    sessions: int          # sessions labelled
    not_found: int         # ids no session carried


def label_decision(label: str) -> tuple[str, str]:
    """(family, verdict) of a label as written in a label file."""
    name = label.strip().lower()
    if name in ("human", "benign"):
        return "benign", "benign"
    if name == "bot" or name.endswith("_bot"):
        return "scraping", "suspicious"
    if name in FAMILIES:
        return name, "malicious"
    raise InputError(f"unknown label {label!r}: use human, benign, bot, *_bot or a family "
                     f"({', '.join(sorted(FAMILIES))})")


def read_label_file(path: Path) -> dict[str, str]:
    """Session id -> label; refuses what is not such a file, naming the line."""
    try:
        if path.stat().st_size > MAX_LABEL_FILE_BYTES:
            raise InputError(f"{path} is larger than {MAX_LABEL_FILE_BYTES} bytes: not a label file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read label file {path}: {error}") from None
    labels = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise InputError(f"{path}, line {number}: expected '<session id> <label>', got {len(fields)} fields")
        label_decision(fields[1])   # refuse an unknown label before anything is written
        labels[fields[0]] = fields[1]
    if not labels:
        raise InputError(f"{path} holds no labels: expected lines '<session id> <label>'")
    return labels


def ensure_import_schema(con: duckdb.DuckDBPyConnection) -> None:
    from waflens.labeling.labels import ensure_label_schema

    ensure_label_schema(con)   # the sequence
    sql = resources.files("waflens.labeling").joinpath("sql", "label_import.sql").read_text(encoding="utf-8")
    for statement in split_statements(sql):
        con.execute(statement)


def import_session_labels(con: duckdb.DuckDBPyConnection, labels: dict[str, str], *,
                          cookie_token: Callable[[str], str | None], analyst: str | None = None,
                          note: str | None = None) -> ImportSummary:
    """Record a decision for every session carrying one of the ids' cookies (in one transaction)."""
    ensure_import_schema(con)
    by_token: dict[str, str] = {}
    for raw, label in labels.items():
        for key in {cookie_token(raw), raw}:     # raw: a source ingested with --no-pseudonymize
            if key:
                by_token[key] = label
    found = con.execute("""SELECT DISTINCT session_cookie, session_id FROM requests
                           WHERE session_id IS NOT NULL AND session_cookie IN (SELECT unnest($keys))
                           ORDER BY session_id""", {"keys": list(by_token)}).fetchall()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    who = analyst or getpass.getuser()
    rows = [(session_id, *label_decision(by_token[cookie]), by_token[cookie], who, note, now)
            for cookie, session_id in found]
    con.execute("BEGIN TRANSACTION")
    try:
        con.executemany("""INSERT INTO session_label_imports (session_id, family, verdict, label, analyst, note,
                           created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""", rows)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    matched = {cookie for cookie, _ in found}
    not_found = sum(1 for raw in labels if not ({cookie_token(raw), raw} & matched))
    return ImportSummary(len(labels), len(rows), not_found)
