"""The feature specification: every feature's name, level, type and definition, and every constant the
definitions use (token lists, extension groups, class codes, the special byte set), with the version.

The one place these live. Three implementations read them and none writes a copy: the SQL in
``data/sql/*.sql`` (as named parameters, see :func:`waflens.data.feature_spec.sql_parameters`), the
plain-Python reference in ``waflens.data.feature_spec``, and the numba kernels of this runtime
(``waflens.runtime.kernels``), which is why it lives in the runtime: a WAF worker installs only
``waflens-runtime``. Imports only the standard library. A test (``tests/data/test_feature_spec_sources.py``)
fails when a literal copy of these values reappears in the SQL or the kernels.

Request features use only what is known when a request arrives (method, target, headers, body, user
agent, referer), never the status or size of its own response. All string measures are over UTF-8
bytes; case folding is ASCII-only, so every implementation agrees byte for byte.

Changing a definition, a token list, a code or the order of features means bumping
``FEATURE_SPEC_VERSION``: exported models record it and the runtime refuses a mismatch. After such an
edit in a checkout, delete the numba caches (``runtime/kernels/__pycache__/*.nbi``/``*.nbc``): numba
keys a cached kernel on its own module's source only, not on the constants it imported from here.
"""

from __future__ import annotations

from typing import NamedTuple

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
BROWSER_UA_PREFIXES = ("mozilla/", "opera/")  # a user agent starting so (and no tool or bot token) is a browser

# The token groups by the names the SQL parameters and an artifact's manifest (feature_spec.lists) use; the
# request kernel numbers the groups in this order.
TOKEN_GROUPS = {
    "sql_tokens": SQL_TOKENS, "traversal_tokens": TRAVERSAL_TOKENS, "xss_tokens": XSS_TOKENS,
    "shell_tokens": SHELL_TOKENS, "template_tokens": TEMPLATE_TOKENS, "scheme_tokens": SCHEME_TOKENS,
    "tool_ua": TOOL_UA_TOKENS, "bot_ua": BOT_UA_TOKENS,
}

# ext_class codes: the extension of the decoded path's last segment
EXT_NONE, EXT_STATIC, EXT_SCRIPT, EXT_SENSITIVE, EXT_OTHER = range(5)
EXTENSION_GROUPS = {"static_ext": (EXT_STATIC, STATIC_EXTENSIONS), "script_ext": (EXT_SCRIPT, SCRIPT_EXTENSIONS),
                    "sensitive_ext": (EXT_SENSITIVE, SENSITIVE_EXTENSIONS)}
PAGE_EXT_CLASSES = (EXT_NONE, EXT_SCRIPT)  # a GET of such a path is a page view (session behaviour)

# ua_class codes
UA_BROWSER, UA_TOOL, UA_BOT, UA_EMPTY, UA_OTHER = range(5)

# Methods: method_is_rare is any other (or none); the runtime passes a method to its kernels as its code here.
COMMON_METHODS = ("GET", "POST", "HEAD")
METHOD_GET, METHOD_POST, METHOD_HEAD, METHOD_OTHER = range(4)
METHOD_CODES = dict(zip(COMMON_METHODS, (METHOD_GET, METHOD_POST, METHOD_HEAD)))

# special_ratio counts ASCII bytes that are neither letters, digits, whitespace nor one of SPECIAL_EXEMPT_BYTES
WHITESPACE_BYTES = b"\t\n\x0b\x0c\r "
SPECIAL_EXEMPT_BYTES = b"/.-_=&?"
SPECIAL_BYTES = bytes(b for b in range(128)
                      if not chr(b).isalnum() and b not in WHITESPACE_BYTES and b not in SPECIAL_EXEMPT_BYTES)

# session behaviour: how many earlier page views a revisit looks back on, the bins of the gap entropy,
# and what a referer URL is (RE2 and Python's re agree on it): scheme://authority then the path
RECENT_PAGES = 8
GAP_BINS = 12
# distinct paths, agents and parameter names: exact up to this many, then estimated (bounded memory online)
SKETCH_SLOTS = 32
_DISTINCT = (f"exact up to {SKETCH_SLOTS}, beyond that the K-minimum-values estimate "
             "(K - 1) / (K-th smallest md5_number_upper of the texts / 2**64), rounded, at most the texts counted")
REFERER_URL_RE = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)"

# Secrets: ingest (waflens.data.redaction) replaces them by MARKER before anything is stored, and the runtime
# (waflens.runtime.redaction) masks live requests the same way before computing features, so both see one text.
MARKER = "[redacted]"
# A name is secret when it holds one of these (ASCII case-insensitive) ...
SECRET_SUBSTRINGS = ("token", "secret", "passw", "pwd", "credential", "session", "sessid", "csrf", "xsrf", "cookie",
                     "signature", "jwt", "authorisation", "authorization")
# ... or one of these as a whole word (no ASCII letter on either side: ``user_sid``, not ``side``) ...
SECRET_WORDS = ("auth", "sid", "otp", "pin", "sig")
# ... or KEY_WORD, unless it begins one of KEY_EXCEPTIONS that ends the letters there (``keywords`` is not secret)
KEY_WORD = "key"
KEY_EXCEPTIONS = ("keyword", "keywords")
CREDENTIAL_SCHEMES = ("bearer", "basic", "digest", "negotiate", "ntlm")
MAX_NAME = 64          # a longer parameter name is never secret (ingest matches names up to this length)
MIN_CREDENTIAL = 8     # a scheme word followed by a shorter credential is left alone
JWT_PREFIX = "eyJ"     # base64url of '{"': every JSON Web Token starts so
MIN_JWT_PART = 8       # its header and payload parts have at least this many characters

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
REQUEST_FEATURE_NAMES = tuple(f.name for f in REQUEST_FEATURES)
SESSION_FEATURE_NAMES = tuple(f.name for f in SESSION_FEATURES)
N_REQUEST_FEATURES = len(REQUEST_FEATURES)


def feature_names(level: str) -> list[str]:
    return [f.name for f in FEATURES if f.level == level]


def request_column(name: str) -> int:
    """Column of a request feature in a request feature row (the spec's order)."""
    return REQUEST_FEATURE_NAMES.index(name)


def manifest_lists() -> dict[str, object]:
    """What an exported model records of the spec beside its version (manifest field ``feature_spec.lists``):
    the token and extension lists the runtime builds its tables from, and the session constants."""
    return {**{name: list(tokens) for name, tokens in TOKEN_GROUPS.items()},
            **{name: list(extensions) for name, (_, extensions) in EXTENSION_GROUPS.items()},
            "recent_pages": RECENT_PAGES, "gap_bins": GAP_BINS}
