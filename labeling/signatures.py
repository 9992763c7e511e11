"""Which attack family a request's payload belongs to, by signatures on its decoded text.

A request is judged on its *payload*: the decoded path, query and body, decoded again
while escapes remain (``%252e`` is ``%2e`` is ``.``) and HTML entities undone, lower-cased,
SQL comments read as spaces and whitespace runs as one space, so ``UNION/**/SeLeCt`` and
``union select`` look alike. Its headers (user agent, referer) are judged too, but only
for families whose payloads live there (Log4Shell lookups, Shellshock, injected scripts
or SQL); a URL in a referer is normal, so remote inclusion and SSRF are left out there.

Each family has a few signatures (regexes). A request's family is the one with the most
*distinct* signatures matched, ties going to the more specific family (``FAMILY_ORDER``):
``;cat /etc/passwd`` matches command injection and traversal once each and is command
injection; an XXE document that names ``file:///etc/passwd`` is XXE. Every regex is
linear (no nested quantifiers over the same characters) and texts are cut to
``MAX_TEXT_CHARS`` first, because the text is an attacker's.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import unquote

MAX_TEXT_CHARS = 4000
MAX_DECODE_ROUNDS = 3

# The more specific family first: it wins a tie in the number of distinct signatures matched.
FAMILY_ORDER = ("java_injection", "xxe", "ssti", "php_injection", "nosql_injection", "ldap_injection",
                "crlf_injection", "rfi", "ssrf", "cmd_injection", "sqli", "xss", "path_traversal")

_URL_PARAM = r"(?:^|[?&=\s])"    # where a parameter value may start
_RAW_SIGNATURES: dict[str, tuple[str, ...]] = {
    "sqli": (
        r"\bunion(?: all| distinct)? ?\(? ?select\b", r"[\s'\")](?:or|and|xor|having) \(?['\"]?\w{0,8}['\"]? ?(?:=|<|>|like ) ?\(?['\"]?\w{0,8}",
        r"['\"`] ?(?:or|and|xor|\|\||&&) ", r"\b(?:sleep|benchmark|pg_sleep|dbms_pipe\.receive_message) ?\(",
        r"\bwaitfor delay\b", r"\binformation_schema\b|\bsysobjects\b|\bsqlite_master\b|\bpg_catalog\b",
        r"@@(?:version|datadir|hostname)", r"\bselect\b[^&]{0,80}\bfrom\b", r"\border by \d", r"['\"`] ?(?:--|#|/\*)",
        r"; ?(?:drop|insert|update|delete|exec|execute|declare|shutdown|truncate)\b", r"\bxp_cmdshell\b",
        r"\bload_file ?\(|\binto (?:out|dump)file\b", r"\b(?:extractvalue|updatexml|group_concat|concat_ws) ?\(",
        r"\bchar ?\(\d{2,3}", r"\bcast ?\(.{0,40} as \w", r"\bconvert ?\(int"),
    "xss": (
        r"<script\b", r"javascript ?:", r"vbscript ?:", r"\bon(?:error|load|mouseover|mouseenter|focus|blur|click|toggle|begin"
        r"|start|animationstart|pageshow|resize|scroll|wheel|input|keyup|keydown|pointerover|submit) ?=",
        r"\balert ?[(`]|\bprompt ?[(`]|\bconfirm ?[(`]", r"<(?:svg|img|iframe|body|object|embed|video|audio|math|details|marquee|"
        r"isindex|frameset|base|link|meta|style|input|form|a) [^>]{0,80}(?:src|href|on\w{3,}|style|data|action)\b",
        r"<(?:iframe|svg|object|embed)\b", r"document ?\. ?(?:cookie|domain|location|write)", r"\bfromcharcode\b", r"\bsrcdoc ?=",
        r"\beval ?\( ?(?:atob|unescape|string)"),
    "path_traversal": (
        r"\.\.[/\\]", r"(?:^|[/\\=])(?:etc[/\\](?:passwd|shadow|group|hosts|issue|motd)|proc[/\\]self[/\\])",
        r"\b(?:win|system|boot)\.ini\b", r"c: ?[/\\]+(?:windows|winnt|inetpub|boot)", r"[/\\]windows[/\\]system32",
        r"\.ht(?:access|passwd)\b", r"(?:%c0%ae|%c1%9c|%uff0e|0x2e0x2e)", r"\bweb-inf[/\\]web\.xml",
        # a traversal to a well-known file through separators only a lenient decoder reads (%c0%af, %u2215, 0x5c)
        r"(?:^|[^a-z])etc(?:[^a-z0-9]|%[0-9a-z]{2}|0x5c|%u[0-9a-f]{4}){1,6}(?:passwd|shadow|issue|hosts|group|motd)\b",
        r"windows(?:[^a-z0-9]|%[0-9a-z]{2}|0x5c|%u[0-9a-f]{4}){1,6}(?:system32|win\.ini)",
        r"(?:\ufffd|%u22(?:15|16)|%uefc8|%uf025|0x5c){2}"),
    "cmd_injection": (
        r"(?:[;|`\n]|\|\||&&|\$\() ?(?:cat|id|ls|whoami|uname|wget|curl|nc|ncat|netcat|ping|sleep|echo|bash|sh|rm|ps|"
        r"netstat|ifconfig|ipconfig|nslookup|dir|type|ver|net user|pwd|perl|python|telnet|chmod|powershell|cmd)\b",
        r"/bin/(?:ba|z|k|c)?sh\b", r"\bcmd(?:\.exe)? ?/[ck]\b", r"\bpowershell\b", r"\(\) ?\{ ?:; ?\} ?;",
        r"\bnc(?:at)? -[elvp]", r"<!-- ?#exec\b", r"\$\{ifs\}|\$ifs\b", r"`[a-z]{2,12}(?: [^`]{0,40})?`"),
    "rfi": (
        _URL_PARAM + r"(?:https?|ftps?)://[^\s&]{1,200}\.(?:txt|php\d?|phtml|inc|sh|pl|py|cgi)(?:\?|%00|\x00|&|$|\s)",
        _URL_PARAM + r"(?:https?|ftps?)://[^\s&]{1,200}\.(?:jpe?g|gif|png)\?{1,2}",
        _URL_PARAM + r"(?:https?|ftps?)://[^\s&?]{1,200}\?{1,2}(?:&|$|\s)",
        r"(?:^|[?&])(?:file|page|include|inc|path|template|dir|document|folder|root|pg|style|conf|lang|mod|view|load|"
        r"read|doc|site|content|layout|module)=(?:https?|ftps?)://"),
    "ssrf": (
        r"\b(?:gopher|dict|ldap|tftp|jar|netdoc)://", r"\bfile:/{1,3}", r"169\.254\.169\.254|\bmetadata\.google\.internal\b"
        r"|\bmetadata\.azure\b|100\.100\.100\.200|\bfd00:ec2::254", r"(?:https?|ftp)://(?:localhost|0|0\.0\.0\.0|ip:|\[[0-9a-f:]*\]|"
        r"0x[0-9a-f]{1,8}|\d{8,10}|0\d{1,3}\.|127\.|10\.|192\.168\.|172\.(?:1[6-9]|2\d|3[01])\.)", r"/latest/meta-data\b",
        r"/computemetadata/v1"),
    "xxe": (r"<!doctype [^>]{0,100}\[", r"<!entity\b", r"\bsystem ['\"](?:file|https?|php|expect|jar|gopher|ftp):",
            r"<\?xml\b[^>]{0,80}\?>\s?<!", r"%\w{1,20};\s?\]>|&\w{1,20};</"),
    "ssti": (r"\{\{ ?\d+ ?\*", r"\$\{ ?\d+ ?\*", r"#\{ ?\d+ ?\*", r"<%= ?\d", r"\{\{[^}]{0,80}(?:config|self|request|class|"
             r"mro|subclasses|globals|builtins|lipsum|cycler|joiner|namespace|dump|app)\b", r"\{%[^%]{0,80}%\}",
             r"\$\{ ?(?:t\(|class|freemarker|product|\{)", r"__class__|__mro__|__subclasses__|__globals__|__builtins__",
             r"<#assign\b|\?new\(\)", r"\[\[ ?\d+ ?\*", r"\$\{ ?self\.|\{\{ ?self\.",
             r"\{\{[^{}]{0,200}[.(|][^{}]{0,200}\}\}", r"\$\{[^{}]{0,200}\.[^{}]{0,200}\}"),
    "php_injection": (
        r"\bphp://(?:input|stdin|memory|temp|fd)\b", r"\b(?:expect|phar|zip|data|glob)://", r"<\?php\b|<\?=",
        r"\b(?:system|passthru|shell_exec|exec|popen|proc_open|assert|eval|create_function|call_user_func(?:_array)?|"
        r"preg_replace|base64_decode|file_put_contents|fwrite|fopen|file_get_contents|include|require(?:_once)?|"
        r"phpinfo|str_rot13|gzinflate|move_uploaded_file) ?\(", r"\ballow_url_include\b|\bauto_prepend_file\b",
        r"\$_(?:get|post|request|cookie|server|files)\b", r"\bo:\d+:\"[a-z_\\]{1,80}\":\d+:\{", r"\ba:\d+:\{[is]:"),
    "java_injection": (
        r"\$\{ ?(?:jndi|lower|upper|env|sys|java|date|ctx|main|bundle|base64|k8s|docker|log4j|spring|::-)\b|\$\{ ?\$\{",
        r"\bjndi ?: ?(?:ldaps?|rmi|dns|iiop|corba|nds|nis|http)\b", r"\bjava\.(?:lang|io|net|util|beans)\.[a-z]",
        r"\b(?:runtime|processbuilder)\b.{0,40}\b(?:exec|start)\b", r"\bclass\.(?:module|classloader)\b",
        r"\bgetruntime ?\(", r"\bro0ab|\baced0005", r"@java\.lang\b|#_memberaccess|#context\[|\bognl\b",
        r"\bjavax?\.(?:script|naming|management)\b", r"\bT ?\( ?java\.", r"\bcom\.sun\.|\borg\.apache\.(?:commons|xalan|"
        r"struts)", r"\bysoserial\b|\binvokertransformer\b|\btemplatesimpl\b"),
    "nosql_injection": (
        r"\[ ?\$(?:ne|gt|gte|lt|lte|eq|in|nin|regex|exists|where|or|and|not|nor|expr)\b ?\]",
        r"['\"{,] ?\$(?:ne|gt|gte|lt|lte|eq|in|nin|regex|exists|where|or|and|nor|expr|function|accumulator) ?['\"]? ?:",
        r"\$where\b", r"\bthis\.(?:password|username|\w{1,20}\.match) ?\(?", r"\bdb\.\w{1,30}\.(?:insert|find|drop|"
        r"mapreduce|remove)\b", r";\s?return (?:true|1|this)\b", r"\|\| ?1 ?== ?1|' ?\|\| ?'1' ?== ?'1"),
    "ldap_injection": (
        r"\* ?\) ?\( ?\|? ?\(? ?(?:\w{1,30}) ?=", r"\( ?[|&!] ?\( ?\w{1,30} ?= ?\*?", r"\b(?:objectclass|uid|cn|mail|sn|"
        r"userpassword|samaccountname) ?= ?\*", r"\) ?\( ?(?:uid|cn|objectclass|mail)\b", r"\*\)\(|\)\(\|", r"\\2a|\\28|\\29"),
    "crlf_injection": (
        r"[\r\n] ?(?:set-cookie|location|content-type|content-length|x-[\w-]{1,30}|http/1\.[01]|refresh) ?:",
        r"(?:%0d|%0a|%e5%98%8a|%e5%98%8d|%u000a|%u000d|\\r\\n|0x0d0x0a)", r"\r\n\r\n|\r\nhttp/1"),
}
SIGNATURES: dict[str, tuple[re.Pattern, ...]] = {
    family: tuple(re.compile(p, re.IGNORECASE | re.DOTALL) for p in patterns) for family, patterns in _RAW_SIGNATURES.items()}
# What counts in User-Agent / Referer headers: strong signatures only (a URL in a referer is ordinary,
# and "; id-id)" is part of a browser's user agent, not a command).
_RAW_HEADER_SIGNATURES = {
    "java_injection": (r"\$\{ ?(?:jndi|lower|upper|env|sys|java|ctx|main|base64|::-)\b|\$\{ ?\$\{", r"\bjndi ?: ?(?:ldaps?|rmi|dns)\b"),
    "cmd_injection": (r"\(\) ?\{ ?:; ?\} ?;", r"/bin/(?:ba)?sh\b"),
    "sqli": (r"\bunion(?: all)? ?\(? ?select\b", r"\b(?:sleep|benchmark|pg_sleep) ?\( ?\d", r"\bwaitfor delay\b"),
    "xss": (r"<script\b", r"\bon(?:error|load|mouseover) ?=", r"javascript ?:"),
    "ssti": (r"\{\{ ?\d+ ?\*", r"\$\{ ?\d+ ?\*"),
    "php_injection": (r"<\?php\b", r"\bphp://input\b"),
}
HEADER_SIGNATURES: dict[str, tuple[re.Pattern, ...]] = {
    family: tuple(re.compile(p, re.IGNORECASE | re.DOTALL) for p in patterns)
    for family, patterns in _RAW_HEADER_SIGNATURES.items()}
# Every header signature holds one of these (tested); browsers' user agents hold none.
_HEADER_SUSPECT = re.compile(r"[$<{]|\(\) ?\{|union|sleep|benchmark|waitfor|bin/|jndi|php|javascript|onerror|onload|"
                             r"onmouseover")
# A text of only these characters can match no signature but those keyed by the words below; one cheap
# test rules out most requests before ~100 regexes run (tested against every signature on the payload lists).
_PLAIN = re.compile(r"[a-z0-9/_.=&?,:-]*")
_PLAIN_SUSPECT = re.compile(r"\.\.|etc/|proc/self|\.ini\b|system32|\.ht(?:access|passwd)|web-inf|java\.|javax\.|ognl|"
                            r"com\.sun|org\.apache|ysoserial|invokertransformer|templatesimpl|aced0005|ro0ab|://|"
                            r"file:|jndi|bin/|\bdb\.|meta-data|computemetadata|169\.254|100\.100\.100|metadata\.|"
                            r"getruntime|class\.(?:module|classloader)|windows|winnt|inetpub|x[a-z]{0,4}:|__|\bo:\d|0x|&&")

# Paths only a scanner asks for; two distinct ones in a session make it a probing session.
SCANNER_PATHS = (".env", ".git/", "wp-login", "phpmyadmin", "server-status", "/admin", ".bak", "cgi-bin", "xmlrpc",
                 ".htaccess", "web.config", "/.aws", "/backup", ".sql")

_SQL_COMMENT = re.compile(r"/\*.{0,200}?\*/", re.DOTALL)
_SPACES = re.compile(r"[ \t\x0b\x0c+]{1,}")


def normalise(text: str) -> str:
    """The payload as an interpreter may read it: escapes decoded until none change, lower-case, one space."""
    text = text[:MAX_TEXT_CHARS]
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = html.unescape(unquote(text)) if ("%" in text or "&" in text) else text
        if decoded == text:
            break
        text = decoded[:MAX_TEXT_CHARS]
    text = _SQL_COMMENT.sub(" ", text.lower())
    return _SPACES.sub(" ", text)


class Match(NamedTuple):
    family: str
    signatures: int      # distinct signatures of the family the text matched
    quote: str           # the first signature's match, as the normalised text reads


def match_families(text: str, signatures: dict[str, tuple[re.Pattern, ...]] = SIGNATURES) -> list[Match]:
    """Every family whose signatures the (already normalised) text matches, best first."""
    found = []
    for family in FAMILY_ORDER:
        hits = [m for m in (p.search(text) for p in signatures.get(family, ())) if m]
        if hits:
            found.append(Match(family, len(hits), hits[0].group(0)))
    return sorted(found, key=lambda m: (-m.signatures, FAMILY_ORDER.index(m.family)))


@lru_cache(maxsize=16_384)
def _header_families(headers: str) -> list[Match]:
    """Header signatures, once per distinct user agent and referer (they repeat across a session)."""
    text = normalise(headers)
    return match_families(text, HEADER_SIGNATURES) if _HEADER_SUSPECT.search(text) else []


def _suspect(text: str) -> bool:
    return not _PLAIN.fullmatch(text) or bool(_PLAIN_SUSPECT.search(text))


@lru_cache(maxsize=65_536)
def request_family(target: str, body: str = "", headers: str = "") -> str | None:
    """The family of one request, or None when nothing matches.

    ``target`` is the decoded path and query, ``body`` the request body, ``headers`` its user agent
    and referer. A line break that decoding reveals in the path or query is CRLF injection (one
    signature); in a body it is only a form's text area.
    """
    scores: Counter = Counter()
    for text, crlf in ((target, True), (body, False)):
        if text and _suspect(text := normalise(text)):
            for m in match_families(text):
                scores[m.family] += m.signatures
            if crlf and ("\r" in text or "\n" in text):
                scores["crlf_injection"] += 1
    for m in _header_families(headers) if headers else ():
        scores[m.family] += m.signatures
    if not scores:
        return None
    return min(scores, key=lambda f: (-scores[f], FAMILY_ORDER.index(f)))


def quote_in(line: str, family: str) -> str | None:
    """A signature of ``family`` exactly as ``line`` spells it (for an indicator that must quote the evidence)."""
    for pattern in SIGNATURES[family]:
        m = pattern.search(line)
        if m and m.group(0).strip():
            return m.group(0)
    return None
