"""The allowlist: known good traffic (a monitor, a partner's crawler, a health check) kept out of alerts.

A rule names a client key (exact, as stored: pseudonymized unless ingested with
``--no-pseudonymize``), or an RE2 regular expression *searched* in the request
path or the User-Agent (anchor it with ``^…$`` to match whole values). Every rule
carries a reason, an author and an optional expiry; rules are revoked, never
deleted. RE2 (DuckDB's regex engine) runs in linear time, so a rule cannot be
turned into a denial of service by the traffic it is matched against.

A *session* is allowlisted when every one of its requests matches an active rule
(one scanner request inside a monitor's session keeps the session in view). The
clustering's suspicious selection leaves allowlisted sessions out, and retraining
treats them as benign.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone
from typing import NamedTuple

import duckdb

from waflens.data.errors import InputError
from waflens.labeling.labels import ensure_label_schema, has_relation

KINDS = ("client_key", "path", "user_agent")
MAX_PATTERN_LENGTH = 1000


class AllowRule(NamedTuple):
    rule_id: int
    kind: str
    pattern: str
    reason: str
    author: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > _now())


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def add_rule(con: duckdb.DuckDBPyConnection, kind: str, pattern: str, *, reason: str, author: str | None = None,
             expires_at: datetime | None = None) -> int:
    """Add a rule after checking it; returns its id."""
    if kind not in KINDS:
        raise InputError(f"unknown allowlist kind {kind!r}: use one of {', '.join(KINDS)}")
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise InputError(f"an allowlist pattern must have 1 to {MAX_PATTERN_LENGTH} characters")
    if not reason or not reason.strip():
        raise InputError("an allowlist rule needs a reason (who is this traffic, why is it good?)")
    if expires_at is not None and expires_at.tzinfo is not None:
        expires_at = expires_at.astimezone(timezone.utc).replace(tzinfo=None)
    if expires_at is not None and expires_at <= _now():
        raise InputError(f"expiry {expires_at:%Y-%m-%d %H:%M} UTC is in the past")
    if kind != "client_key":
        try:
            con.execute("SELECT regexp_matches('', $p)", {"p": pattern}).fetchall()
        except duckdb.Error as error:
            raise InputError(f"{pattern!r} is not a valid RE2 regular expression: "
                             f"{str(error).splitlines()[0]}") from None
    ensure_label_schema(con)
    return con.execute(
        """INSERT INTO allowlist (kind, pattern, reason, author, created_at, expires_at)
           VALUES ($kind, $pattern, $reason, $author, $at, $expires) RETURNING rule_id""",
        {"kind": kind, "pattern": pattern, "reason": reason.strip(), "author": author or getpass.getuser(),
         "at": _now(), "expires": expires_at}).fetchall()[0][0]


def revoke_rule(con: duckdb.DuckDBPyConnection, rule_id: int, *, author: str | None = None) -> None:
    ensure_label_schema(con)
    found = con.execute("SELECT revoked_at FROM allowlist WHERE rule_id = $id", {"id": rule_id}).fetchall()
    if not found:
        raise InputError(f"allowlist rule {rule_id} does not exist: see `waflens allowlist list`")
    if found[0][0] is not None:
        raise InputError(f"allowlist rule {rule_id} was already revoked on {found[0][0]:%Y-%m-%d %H:%M} UTC")
    con.execute("UPDATE allowlist SET revoked_at = $at, revoked_by = $by WHERE rule_id = $id",
                {"at": _now(), "by": author or getpass.getuser(), "id": rule_id})


def list_rules(con: duckdb.DuckDBPyConnection, *, include_inactive: bool = False) -> list[AllowRule]:
    ensure_label_schema(con)
    rules = [AllowRule(*row) for row in con.execute(
        f"SELECT {', '.join(AllowRule._fields)} FROM allowlist ORDER BY rule_id").fetchall()]
    return rules if include_inactive else [rule for rule in rules if rule.active]


# Requests matched by an active rule; a session is allowlisted when all its requests are.
_MATCHED_REQUESTS = """
    SELECT r.request_id, r.session_id, min(a.rule_id) AS rule_id
    FROM requests r JOIN allowlist a ON
        (a.kind = 'client_key' AND r.client_key = a.pattern)
        OR (a.kind = 'path' AND regexp_matches(r.path_decoded, a.pattern))
        OR (a.kind = 'user_agent' AND regexp_matches(coalesce(r.user_agent, ''), a.pattern))
    WHERE a.revoked_at IS NULL AND (a.expires_at IS NULL OR a.expires_at > $now)
    GROUP BY ALL
"""


def allowlisted_sessions(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """{session_id: id of a rule that allows it} for every session all of whose requests are allowed."""
    ensure_label_schema(con)
    if not has_relation(con, "allowlist") or not con.execute("SELECT count(*) FROM allowlist").fetchall()[0][0]:
        return {}
    rows = con.execute(
        f"""WITH matched AS ({_MATCHED_REQUESTS})
            SELECT s.session_id, min(m.rule_id)
            FROM sessions s JOIN matched m USING (session_id)
            GROUP BY s.session_id, s.n_requests
            HAVING count(*) = s.n_requests""", {"now": _now()}).fetchall()
    return {session_id: rule_id for session_id, rule_id in rows}


def allowlisted_requests(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """{request_id: id of a rule that allows it}."""
    ensure_label_schema(con)
    if not has_relation(con, "allowlist") or not con.execute("SELECT count(*) FROM allowlist").fetchall()[0][0]:
        return {}
    return dict(con.execute(f"SELECT request_id, rule_id FROM ({_MATCHED_REQUESTS})", {"now": _now()}).fetchall())
