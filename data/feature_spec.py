"""The feature specification's DuckDB side, and the plain-Python reference implementation.

The names, types, definitions, token lists, codes and the version live in
:mod:`waflens.runtime.feature_spec` (the runtime owns them: a WAF worker installs only the runtime);
this module re-exports them for the training stack and adds what only DuckDB needs: the named
parameters of ``data/sql/request_features.sql`` and ``session_features.sql`` (:func:`sql_parameters`,
so the SQL holds no copy of a list or a code) and the feature tables' DDL. Three implementations are
checked against one another:

* the SQL (what the database computes for training and clustering),
* :func:`reference_request_features` below, plain Python written for clarity,
* the runtime's numba kernels, which compute request features online.
"""

from __future__ import annotations

import math
from collections import Counter

from waflens.data.url_decoding import url_decode
from waflens.runtime.feature_spec import (  # noqa: F401 (re-exported: the training stack imports them from here)
    BOT_UA_TOKENS, BROWSER_UA_PREFIXES, COMMON_METHODS, EXT_NONE, EXT_OTHER, EXT_SCRIPT, EXT_SENSITIVE,
    EXT_STATIC, EXTENSION_GROUPS, FEATURE_SPEC_VERSION, FEATURES, GAP_BINS, PAGE_EXT_CLASSES, RECENT_PAGES,
    REFERER_URL_RE, REQUEST_FEATURES, SCHEME_TOKENS, SKETCH_SLOTS, SCRIPT_EXTENSIONS, SENSITIVE_EXTENSIONS, SESSION_FEATURES,
    SHELL_TOKENS, SPECIAL_BYTES, SQL_TOKENS, STATIC_EXTENSIONS, TEMPLATE_TOKENS, TOKEN_GROUPS, TOOL_UA_TOKENS,
    TRAVERSAL_TOKENS, UA_BOT, UA_BROWSER, UA_EMPTY, UA_OTHER, UA_TOOL, XSS_TOKENS, Feature, feature_names,
    manifest_lists)


def token_regex(tokens: tuple[str, ...]) -> str:
    """An RE2 alternation matching any of the tokens literally."""
    return "|".join("".join("\\" + c if c in _REGEX_META else c for c in token) for token in tokens)


_REGEX_META = set("\\^$.|?*+()[]{}")


def sql_parameters() -> dict[str, object]:
    """Named parameters of the feature SQL files: every list, code and pattern they use, from the spec.

    Each token group comes twice: as a list (exact counting) and as ``<group>_re``, an RE2 alternation
    of its tokens (one pass that skips the counting for the many requests without any)."""
    codes = {"ext_none": EXT_NONE, "ext_static": EXT_STATIC, "ext_script": EXT_SCRIPT,
             "ext_sensitive": EXT_SENSITIVE, "ext_other": EXT_OTHER, "page_ext_classes": list(PAGE_EXT_CLASSES),
             "ua_browser": UA_BROWSER, "ua_tool": UA_TOOL, "ua_bot": UA_BOT, "ua_empty": UA_EMPTY,
             "ua_other": UA_OTHER}
    return {**{f"{name}_re": token_regex(tokens) for name, tokens in TOKEN_GROUPS.items()}, **manifest_lists(),
            **codes, "common_methods": list(COMMON_METHODS), "referer_url_re": REFERER_URL_RE,
            "sketch_slots": SKETCH_SLOTS,
            "browser_ua_re": "^(?:" + token_regex(BROWSER_UA_PREFIXES) + ")",
            "special_re": byte_class_regex(SPECIAL_BYTES) + "+"}


def byte_class_regex(values: bytes) -> str:
    """An RE2 character class of exactly these bytes (ASCII), as ranges of \\xHH escapes."""
    ranges, values = [], sorted(set(values))
    for v in values:
        if ranges and ranges[-1][1] == v - 1:
            ranges[-1][1] = v
        else:
            ranges.append([v, v])
    return "[" + "".join(f"\\x{lo:02x}" + (f"-\\x{hi:02x}" if hi > lo else "") for lo, hi in ranges) + "]"


def feature_table_ddl() -> list[str]:
    """CREATE TABLE statements for the feature tables, derived from the spec."""
    request_cols = ",\n    ".join(f"{f.name} {f.dtype}" for f in REQUEST_FEATURES)
    session_cols = ",\n    ".join(f"{f.name} {f.dtype}" for f in SESSION_FEATURES)
    return [
        f"CREATE TABLE IF NOT EXISTS request_features (\n    request_id BIGINT NOT NULL,\n    {request_cols}\n)",
        f"CREATE TABLE IF NOT EXISTS session_features (\n    session_id BIGINT NOT NULL,\n    {session_cols}\n)",
    ]


# --- the reference implementation of request features (clarity over speed) ---

def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SPECIAL = frozenset(SPECIAL_BYTES)


def count_tokens(text: str, tokens: tuple[str, ...]) -> int:
    return sum(text.count(token) for token in tokens)


def _pieces(raw: str) -> list[str]:
    return [piece for piece in raw.split("&") if piece]


def _value_of(piece: str) -> str:
    return piece.split("=", 1)[1] if "=" in piece else piece


def extension_class(path_decoded: str) -> int:
    last = path_decoded.rsplit("/", 1)[-1]
    if "." not in last:
        return EXT_NONE
    ext = ascii_lower(last.rsplit(".", 1)[-1])
    for code, extensions in EXTENSION_GROUPS.values():
        if ext in extensions:
            return code
    return EXT_OTHER


def user_agent_class(user_agent: str | None) -> int:
    ua = ascii_lower(user_agent or "").strip(" ")
    if ua in ("", "-"):
        return UA_EMPTY
    if any(token in ua for token in TOOL_UA_TOKENS):
        return UA_TOOL
    if any(token in ua for token in BOT_UA_TOKENS):
        return UA_BOT
    if ua.startswith(BROWSER_UA_PREFIXES):
        return UA_BROWSER
    return UA_OTHER


def payload_text(path_decoded: str, query_decoded: str, body: str | None) -> str:
    return "\n".join((path_decoded, query_decoded, url_decode(body or "", plus_as_space=True)))


def reference_request_features(method: str | None, path: str, query: str, body: str | None,
                               user_agent: str | None, referer: str | None) -> dict[str, float]:
    """Request features by their definitions; the SQL and the runtime must agree with this."""
    body = body or ""
    path_decoded = url_decode(path)
    query_decoded = url_decode(query, plus_as_space=True)
    text = payload_text(path_decoded, query_decoded, body)
    data = text.encode("utf-8", "surrogatepass")
    n = len(data)
    lower = ascii_lower(text)
    raw_all = path + "\n" + query + "\n" + body
    raw_lower = ascii_lower(path + "\n" + query)
    pieces = _pieces(query) + _pieces(body)
    counts = Counter(data)
    entropy = -sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0
    digits = sum(1 for b in data if 48 <= b <= 57)
    alpha = sum(1 for b in data if 65 <= b <= 90 or 97 <= b <= 122)
    upper = sum(1 for b in data if 65 <= b <= 90)
    special = sum(1 for b in data if b in _SPECIAL)
    nonascii = sum(1 for b in data if b >= 128)
    denominator = max(n, 1)
    tokens = {
        "sql_tokens": count_tokens(lower, SQL_TOKENS),
        "traversal_tokens": count_tokens(lower, TRAVERSAL_TOKENS) + count_tokens(raw_lower, TRAVERSAL_TOKENS),
        "xss_tokens": count_tokens(lower, XSS_TOKENS),
        "shell_tokens": count_tokens(lower, SHELL_TOKENS),
        "template_tokens": count_tokens(text, TEMPLATE_TOKENS),
    }
    decoded_args = ascii_lower(query_decoded + "\n" + url_decode(body, plus_as_space=True))
    return {
        "method_is_post": int(method == "POST"),
        "method_is_rare": int(method not in COMMON_METHODS),
        "path_len": len(path.encode("utf-8", "surrogatepass")),
        "query_len": len(query.encode("utf-8", "surrogatepass")),
        "body_len": len(body.encode("utf-8", "surrogatepass")),
        "path_depth": path_decoded.count("/"),
        "n_params": len(pieces),
        "max_value_len": max((len(_value_of(p).encode("utf-8", "surrogatepass")) for p in pieces), default=0),
        "payload_len": n,
        "digit_ratio": digits / denominator,
        "alpha_ratio": alpha / denominator,
        "upper_ratio": upper / denominator,
        "special_ratio": special / denominator,
        "nonascii_ratio": nonascii / denominator,
        "entropy": entropy,
        "pct_encoded": _count_escapes(raw_all),
        "double_encoded": _count_double(raw_all),
        "quote_count": text.count("'") + text.count('"'),
        **tokens,
        "scheme_tokens": count_tokens(decoded_args, SCHEME_TOKENS),
        "null_bytes": text.count("\x00"),
        "attack_tokens": sum(tokens.values()),
        "ext_class": extension_class(path_decoded),
        "ua_class": user_agent_class(user_agent),
        "ua_len": len((user_agent or "").encode("utf-8", "surrogatepass")),
        "has_referer": int(bool(referer) and referer != "-"),
    }


_HEX = set("0123456789abcdefABCDEF")


def _count_escapes(raw: str) -> int:
    """Non-overlapping %XX escapes, scanning left to right (as RE2 does)."""
    count, i, n = 0, 0, len(raw)
    while True:
        i = raw.find("%", i)
        if i < 0:
            return count
        if i + 2 < n and raw[i + 1] in _HEX and raw[i + 2] in _HEX:
            count += 1
            i += 3
        else:
            i += 1


def _count_double(raw: str) -> int:
    lower = ascii_lower(raw)
    count, i = 0, 0
    while True:
        i = lower.find("%25", i)
        if i < 0:
            return count
        if i + 4 < len(lower) and lower[i + 3] in _HEX and lower[i + 4] in _HEX:
            count += 1
            i += 5
        else:
            i += 1
