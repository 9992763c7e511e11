"""The feature specification: every feature's name, level, type and definition.

One list, versioned, that three implementations are checked against:

* the SQL in ``data/sql/request_features.sql`` and ``session_features.sql``
  (what the database computes for training and clustering),
* :func:`reference_request_features` below, plain Python written for clarity,
* the scoring runtime (issue B), which computes request features online.

Request features use only what is known when a request arrives (method, target,
headers, body, user agent, referer), never the status or size of its own response.
All string measures are over UTF-8 bytes; case folding is ASCII-only, so every
implementation agrees byte for byte. Token lists live here and are passed to the
SQL as parameters, so there is one copy of them.

Changing a definition, a token list or the order of features means bumping
``FEATURE_SPEC_VERSION``: exported models record it and refuse a mismatch.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple

from waflens.data.url_decoding import url_decode

FEATURE_SPEC_VERSION = "1.1"  # 1.1: behavioural session features (pages, think time, referers)


class Feature(NamedTuple):
    name: str
    level: str  # "request" | "session"
    dtype: str  # DuckDB type
    definition: str


# --- token lists (lower-case ASCII; matched as substrings after ASCII lower-casing) ---
SQL_TOKENS = (
    "select", "union", "insert", "update", "delete", "drop", "from", "where", "having",
    "order by", "group by", "sleep(", "benchmark(", "waitfor", "pg_sleep", "information_schema",
    "@@version", "char(", "concat(", "0x", "--", "/*", "*/", " or ", " and ", "xp_cmdshell",
)
TRAVERSAL_TOKENS = (
    "../", "..\\", "/etc/passwd", "/etc/shadow", "win.ini", "boot.ini", "/proc/self",
    "c:\\", "php://", "file://", "%2e%2e", "%252e", "..%2f", "..%5c", "%c0%ae",
)
XSS_TOKENS = (
    "<script", "</script", "javascript:", "vbscript:", "onerror", "onload", "onmouseover",
    "onfocus", "<img", "<svg", "<iframe", "<body", "alert(", "prompt(", "confirm(",
    "document.cookie", "document.domain", "eval(", "src=", "<a ", "<div", "expression(",
)
SHELL_TOKENS = (
    ";", "|", "`", "$(", "${", "&&", "/bin/", "cmd.exe", "powershell", "wget ", "curl ",
    "whoami", "uname", "/dev/tcp", "nc -", "cat ", "ping -", "sleep ", "echo ",
)
TEMPLATE_TOKENS = ("{{", "}}", "{%", "<%", "%>", "#{", "${")
SCHEME_TOKENS = ("http://", "https://", "ftp://", "gopher://", "dict://", "ldap://", "file://", "php://", "data:")

STATIC_EXTENSIONS = (
    "css", "js", "png", "jpg", "jpeg", "gif", "ico", "svg", "webp", "woff", "woff2", "ttf",
    "eot", "map", "mp4", "webm", "mp3", "pdf", "txt", "xml",
)
SCRIPT_EXTENSIONS = ("php", "asp", "aspx", "jsp", "cgi", "pl", "py", "cfm", "do", "action", "shtml")
SENSITIVE_EXTENSIONS = (
    "bak", "old", "orig", "swp", "sql", "env", "git", "ini", "log", "conf", "config", "cfg",
    "zip", "tar", "gz", "tgz", "rar", "7z", "db", "sqlite", "key", "pem", "yml", "yaml",
)
TOOL_UA_TOKENS = (
    "sqlmap", "nikto", "nmap", "masscan", "zgrab", "acunetix", "netsparker", "w3af", "nessus",
    "openvas", "nuclei", "dirbuster", "gobuster", "ffuf", "wfuzz", "wpscan", "burp", "zap",
    "curl/", "wget/", "python-requests", "python-urllib", "aiohttp", "go-http-client",
    "libwww-perl", "java/", "okhttp", "apache-httpclient", "httpclient", "scrapy", "httpie",
    "postman", "powershell", "winhttp", "fasthttp", "node-fetch", "axios",
)
BOT_UA_TOKENS = ("bot", "crawl", "spider", "slurp", "facebookexternalhit", "feedfetcher", "archiver")

# session behaviour: how many earlier page views a revisit looks back on, the bins of the gap entropy,
# and what a referer URL is (RE2 and Python's re agree on it): scheme://authority then the path
RECENT_PAGES = 8
GAP_BINS = 12
# distinct paths, agents and parameter names: exact up to this many, then estimated (bounded memory online)
SKETCH_SLOTS = 32
_DISTINCT = (f"exact up to {SKETCH_SLOTS}, beyond that the K-minimum-values estimate "
            "(K - 1) / (K-th smallest md5_number_upper of the texts / 2**64), rounded, at most the texts counted")
REFERER_URL_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)"

EXT_NONE, EXT_STATIC, EXT_SCRIPT, EXT_SENSITIVE, EXT_OTHER = range(5)
UA_BROWSER, UA_TOOL, UA_BOT, UA_EMPTY, UA_OTHER = range(5)

REQUEST_FEATURES = (
    Feature("method_is_post", "request", "TINYINT", "1 if the method is POST"),
    Feature("method_is_rare", "request", "TINYINT", "1 if the method is not GET, POST or HEAD (or missing)"),
    Feature("path_len", "request", "INTEGER", "bytes of the raw path"),
    Feature("query_len", "request", "INTEGER", "bytes of the raw query (without '?')"),
    Feature("body_len", "request", "INTEGER", "bytes of the raw body"),
    Feature("path_depth", "request", "INTEGER", "number of '/' in the decoded path"),
    Feature("n_params", "request", "INTEGER", "non-empty '&'-separated pieces of the raw query and form body"),
    Feature("max_value_len", "request", "INTEGER",
            "bytes of the longest raw parameter value ('k=v' pieces of query and body; a piece without '=' is its own value)"),
    Feature("payload_len", "request", "INTEGER", "bytes of the payload text P = decoded path, '\\n', decoded query, '\\n', decoded body"),
    Feature("digit_ratio", "request", "DOUBLE", "share of ASCII digits among the bytes of P"),
    Feature("alpha_ratio", "request", "DOUBLE", "share of ASCII letters among the bytes of P"),
    Feature("upper_ratio", "request", "DOUBLE", "share of ASCII capitals among the bytes of P"),
    Feature("special_ratio", "request", "DOUBLE",
            "share of ASCII bytes of P that are neither letters, digits, whitespace nor one of / . - _ = & ?"),
    Feature("nonascii_ratio", "request", "DOUBLE", "share of non-ASCII bytes in P"),
    Feature("entropy", "request", "DOUBLE", "Shannon entropy (bits per byte) of the UTF-8 bytes of P; 0 for empty P"),
    Feature("pct_encoded", "request", "INTEGER", "number of %XX escapes in the raw path, query and body"),
    Feature("double_encoded", "request", "INTEGER", "number of %25XX (double-encoded) escapes in the raw path, query and body, any case"),
    Feature("quote_count", "request", "INTEGER", "number of ' and \" in P"),
    Feature("sql_tokens", "request", "INTEGER", "occurrences of SQL_TOKENS in lower-cased P"),
    Feature("traversal_tokens", "request", "INTEGER", "occurrences of TRAVERSAL_TOKENS in lower-cased P and lower-cased raw path+query"),
    Feature("xss_tokens", "request", "INTEGER", "occurrences of XSS_TOKENS in lower-cased P"),
    Feature("shell_tokens", "request", "INTEGER", "occurrences of SHELL_TOKENS in lower-cased P"),
    Feature("template_tokens", "request", "INTEGER", "occurrences of TEMPLATE_TOKENS in P"),
    Feature("scheme_tokens", "request", "INTEGER", "occurrences of SCHEME_TOKENS in lower-cased decoded query and body"),
    Feature("null_bytes", "request", "INTEGER", "NUL characters in P"),
    Feature("attack_tokens", "request", "INTEGER", "sum of the sql, traversal, xss, shell and template token counts"),
    Feature("ext_class", "request", "TINYINT",
            "extension of the decoded path's last segment: 0 none, 1 static, 2 script, 3 sensitive, 4 other"),
    Feature("ua_class", "request", "TINYINT", "user agent: 0 browser, 1 known tool, 2 crawler, 3 empty or '-', 4 other"),
    Feature("ua_len", "request", "INTEGER", "bytes of the user agent"),
    Feature("has_referer", "request", "TINYINT", "1 if a referer is present and not '-'"),
)

SESSION_FEATURES = (
    Feature("n_requests", "session", "INTEGER", "requests in the session"),
    Feature("duration_s", "session", "DOUBLE", "seconds from first to last request (0 without timestamps)"),
    Feature("request_rate", "session", "DOUBLE", "requests per minute: n_requests / max(duration, 1 s) * 60"),
    Feature("iat_mean", "session", "DOUBLE", "mean seconds between consecutive requests (0 for one request)"),
    Feature("iat_std", "session", "DOUBLE", "population standard deviation of inter-arrival seconds"),
    Feature("iat_cv", "session", "DOUBLE", "iat_std / iat_mean (0 when iat_mean is 0): low for machines"),
    Feature("path_diversity", "session", "DOUBLE", f"distinct decoded paths / requests; distinct counts {_DISTINCT}"),
    Feature("error_ratio", "session", "DOUBLE", "share of requests answered 4xx or 5xx"),
    Feature("notfound_ratio", "session", "DOUBLE", "share of requests answered 404"),
    Feature("post_ratio", "session", "DOUBLE", "share of POST requests"),
    Feature("head_ratio", "session", "DOUBLE", "share of HEAD requests"),
    Feature("rare_method_ratio", "session", "DOUBLE", "share of requests with method_is_rare"),
    Feature("static_ratio", "session", "DOUBLE", "share of requests for static assets (ext_class 1)"),
    Feature("sensitive_ratio", "session", "DOUBLE", "share of requests for sensitive files (ext_class 3)"),
    Feature("attack_ratio", "session", "DOUBLE", "share of requests with attack_tokens > 0"),
    Feature("mean_attack_tokens", "session", "DOUBLE", "mean attack_tokens per request"),
    Feature("max_payload_len", "session", "INTEGER", "largest payload_len"),
    Feature("mean_entropy", "session", "DOUBLE", "mean request entropy"),
    Feature("mean_special_ratio", "session", "DOUBLE", "mean request special_ratio"),
    Feature("referer_ratio", "session", "DOUBLE", "share of requests with a referer"),
    Feature("ua_changes", "session", "INTEGER", "distinct user agents minus one (counted as path_diversity's)"),
    Feature("ua_class", "session", "TINYINT", "ua_class of the session's first request"),
    Feature("distinct_params", "session", "INTEGER", "distinct parameter names seen in queries and bodies (counted as path_diversity's)"),
    # behavioural features (issue B3): what a person's browser does that a script does not, none trusting the UA.
    # (No time of day: it would split sessions that behave alike into clusters by the hour they came.)
    # A page view is a GET of a path without extension or with a script one (ext_class 0 or 2).
    Feature("page_ratio", "session", "DOUBLE", "share of requests that are page views"),
    Feature("page_rate", "session", "DOUBLE", "page views per minute: pages / max(duration, 1 s) * 60"),
    Feature("think_time_mean", "session", "DOUBLE",
            "mean seconds between consecutive timed page views (0 with fewer than two): reading time"),
    Feature("think_time_cv", "session", "DOUBLE", "population std / mean of those seconds (0 when the mean is 0)"),
    Feature("requests_per_page", "session", "DOUBLE", "n_requests / max(page views, 1): what a page pulls along"),
    Feature("assets_per_page", "session", "DOUBLE", "static requests (ext_class 1) / max(page views, 1)"),
    Feature("iat_entropy", "session", "DOUBLE",
            f"Shannon entropy (bits) of the inter-arrival seconds g in {GAP_BINS} bins: 0 if g < 1, else "
            f"min(floor(log2 g) + 1, {GAP_BINS - 1}); 0 without gaps"),
    Feature("burst_ratio", "session", "DOUBLE", "share of inter-arrival gaps under 1 s (0 without gaps)"),
    Feature("referer_continuity", "session", "DOUBLE",
            "of requests with a referer, the share whose referer URL's path (REFERER_URL_RE; '/' when empty) is "
            "the raw path of the session's latest page view before it (0 without referers)"),
    Feature("revisit_ratio", "session", "DOUBLE",
            f"share of page views whose decoded path is one of the {RECENT_PAGES} page views before it"),
    Feature("direct_deep_ratio", "session", "DOUBLE",
            "share of page views without a referer whose path_depth is 2 or more (deep links typed or scripted)"),
    Feature("redirect_ratio", "session", "DOUBLE", "share of requests answered 3xx"),
)

FEATURES = REQUEST_FEATURES + SESSION_FEATURES


def feature_names(level: str) -> list[str]:
    return [f.name for f in FEATURES if f.level == level]


def token_regex(tokens: tuple[str, ...]) -> str:
    """An RE2 alternation matching any of the tokens literally."""
    return "|".join("".join("\\" + c if c in _REGEX_META else c for c in token) for token in tokens)


_REGEX_META = set("\\^$.|?*+()[]{}")


def sql_parameters() -> dict[str, object]:
    """Named parameters of the feature SQL files: the token and extension lists."""
    lists = {"sql_tokens": SQL_TOKENS, "traversal_tokens": TRAVERSAL_TOKENS, "xss_tokens": XSS_TOKENS,
             "shell_tokens": SHELL_TOKENS, "template_tokens": TEMPLATE_TOKENS, "scheme_tokens": SCHEME_TOKENS,
             "tool_ua": TOOL_UA_TOKENS, "bot_ua": BOT_UA_TOKENS}
    return {**{f"{name}_re": token_regex(tokens) for name, tokens in lists.items()}, **{
        "sql_tokens": list(SQL_TOKENS), "traversal_tokens": list(TRAVERSAL_TOKENS),
        "xss_tokens": list(XSS_TOKENS), "shell_tokens": list(SHELL_TOKENS),
        "template_tokens": list(TEMPLATE_TOKENS), "scheme_tokens": list(SCHEME_TOKENS),
        "static_ext": list(STATIC_EXTENSIONS), "script_ext": list(SCRIPT_EXTENSIONS),
        "sensitive_ext": list(SENSITIVE_EXTENSIONS), "tool_ua": list(TOOL_UA_TOKENS),
        "bot_ua": list(BOT_UA_TOKENS), "referer_url_re": REFERER_URL_RE, "recent_pages": RECENT_PAGES,
        "gap_bins": GAP_BINS, "sketch_slots": SKETCH_SLOTS,
    }}


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
_SPECIAL_EXEMPT = set(b"/.-_=&?")


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
    if ext in STATIC_EXTENSIONS:
        return EXT_STATIC
    if ext in SCRIPT_EXTENSIONS:
        return EXT_SCRIPT
    if ext in SENSITIVE_EXTENSIONS:
        return EXT_SENSITIVE
    return EXT_OTHER


def user_agent_class(user_agent: str | None) -> int:
    ua = ascii_lower(user_agent or "").strip(" ")
    if ua in ("", "-"):
        return UA_EMPTY
    if any(token in ua for token in TOOL_UA_TOKENS):
        return UA_TOOL
    if any(token in ua for token in BOT_UA_TOKENS):
        return UA_BOT
    if ua.startswith("mozilla/") or ua.startswith("opera/"):
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
    special = sum(1 for b in data if b < 128 and not (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122)
                  and b not in b" \t\r\n\x0b\x0c" and b not in _SPECIAL_EXEMPT)
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
        "method_is_rare": int(method not in ("GET", "POST", "HEAD")),
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
