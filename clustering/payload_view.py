"""The payload view: which attack token classes a session's requests carry, and how strongly.

Character n-grams of whole targets (``waflens.clustering.matrix``) see mostly the endpoint: when
campaigns share endpoints, pace, statuses and agents and only their payloads differ, they
fall into one cluster (issue C2: ARI 0.00). Here each decoded target word is normalised
(nested percent, HTML-entity and ``\\xHH`` encodings undone, lower case, digit runs -> ``0``,
hex literals -> ``0x0``, quotes -> ``'``) and cut into tokens of named classes: ``sql``
(keywords, operators, comments), ``html`` (tags, events, JS), ``shell`` (separators,
commands), ``traversal``, ``url`` (schemes, remote hosts), ``template`` (template, JNDI and
expression syntax), ``php`` (functions, wrappers, object serialization) and ``java``
(class names, serialization markers). A session's tokens are weighted by sublinear TF-IDF,
rows L2-normalised and reduced with TruncatedSVD to :data:`PAYLOAD_COMPONENTS`, so what
the view compares is the *mix* of token classes of a session: many requests of one family
average to that family's mix whatever payloads were drawn (one tool running one family
stays one cluster), a scanner's mix of families is a mix of its own.

Tokens are made per distinct word, once (benign traffic repeats its words), not per request.
"""

from __future__ import annotations

import html
import re
from typing import NamedTuple
from urllib.parse import unquote

import numpy as np
from scipy import sparse

# Keywords: an identifier of the normalised text that is one of these names a token "class:word".
KEYWORDS: dict[str, str] = {
    "sql": "union select insert update delete drop from where having order group by limit offset "
           "waitfor delay information_schema concat char chr ascii substring substr mid cast convert extractvalue "
           "updatexml pg_sleep load_file outfile dumpfile exec execute declare xp_cmdshell sysobjects syscolumns "
           "table_name column_name null version database user like between and or xor not case when then else end "
           "if iif rlike regexp procedure analyse hex unhex count",
    "html": "alert prompt confirm eval fromcharcode document cookie window location innerhtml javascript vbscript "
            "expression settimeout atob src href srcdoc xlink",
    "shell": "cat id whoami uname ls dir ping nc ncat netcat wget curl bash sh zsh cmd powershell echo ifconfig "
             "ipconfig net type pwd ver nslookup perl python ruby chmod rm touch sysinfo systeminfo tasklist netstat "
             "bin usr tmp timeout sleep netsh reg which gcc route chdir exit kill telnet",
    "traversal": "passwd",
    "java": "getruntime processbuilder classloader rowset invokertransformer chainedtransformer templatesimpl ysoserial "
            "scriptenginemanager initialcontext jdbcrowsetimpl inet0address getinputstream ognl xwork pagecontext "
            "applicationscope getclass forname _memberaccess",
}
# Functions: an identifier followed by "(" (system( is PHP, a bare "system" is any word; sleep( is SQL's,
# a bare sleep the shell's: as a keyword of both it put a fifth of a command-injection session in SQL).
FUNCTIONS: dict[str, str] = {
    "sql": "sleep benchmark",
    "php": "system shell_exec passthru exec popen proc_open eval assert phpinfo base64_decode call_user_func "
           "call_user_func_array create_function preg_replace file_put_contents file_get_contents fwrite fopen "
           "include include_once require require_once die print md0 ini_set str_rot0 gzinflate",
}
# Syntax: (class, pattern) tried in one alternation, for what is not a bare identifier.
# Tried left to right at each position, so the first two entries win over SQL's "--": a server-side include
# (<!--#exec cmd=...) is a command, "-->" closes an HTML comment. A ";" ending a word is the shell's, as
# within one: payloads are split at spaces, and "; id" (command injection) is far more common in the
# payloads than "1; drop ..." whose SQL keywords carry it anyway.
SYNTAX: tuple[tuple[str, str], ...] = (
    ("shell", r"<!--\s*#\s*(?:exec|include|echo|printenv|config)"),
    ("html", r"--!?>|<!--"),
    ("sql", r"@@[a-z_]+|--|/\*(?![&/]|$)|\*/|#$|'\s*(?:or|and|\|\||&&)|0\s*=\s*0|'0'\s*=\s*'0|'\s*=\s*'"),
    ("html", r"<\s*/?\s*(?:script|img|svg|iframe|body|a|div|input|form|object|embed|style|link|meta|marquee|video|"
             r"audio|details|math|base|frameset|frame|isindex|xss|table|td|bgsound|layer|br|p|b|html|textarea)(?![a-z0-9_])"
             r"|(?<![a-z0-9_])on[a-z]{3,20}\s*="),
    ("traversal", r"\.\.[/\\]|\.\.$|\.\.;|/etc/|etc/passwd|etc/shadow|etc/hosts|win\.ini|boot\.ini|proc/self|"
                  r"c:\\|c:/|windows[/\\]|system0|\x00|%00|web\.xml|web-inf|\.htaccess|/var/log|/var/www|"
                  r"httpd\.conf|\.ssh|id_rsa"),
    ("url", r"https?://|ftps?://|^//|\\\\[a-z0-9]|file://|gopher://|dict://|sftp://|tftp://|"
            r"\.(?:txt|jpg|gif|png)\?+$|\.txt%00|\.txt\x00|\?\?+$|&cmd=|0\.0\.0\.0"),
    ("template", r"\$\{|#\{|%\{|\{\{|\}\}|\{%|<%=?|%>|jndi:|ldaps?:|rmi:|dns:|iiop:|lower:|upper:|::-|env:|sys:|"
                 r"k0s:|(?<![a-z0-9_])t\(|@type|#context|#dm"),
    ("php", r"<\?php|<\?=|<\?|\?>|php://|data://|expect://|zip://|phar://|\$_(?:get|post|request|server|cookie|"
            r"files|env)|[oa]:0:[{']|s:0:'|allow_url_include|auto_prepend_file"),
    ("java", r"java\.|javax\.|java/lang|\.lang\.runtime|org\.apache\.|com\.sun\.|class\.module|ro0ab|aced0|"
             r"\.exec\("),
    ("shell", r"&&|\|\||`|\$\(|;|\||%0a|\n"),
)
# Classes whose keywords read as one token: which command an injection runs (id, ls, whoami, ping, ...)
# is drawn per payload, that a command is there is the family. As separate tokens, 40 command names
# spread one command-injection campaign over the view (median distance to its 5th neighbour 1.6 against
# 0.4-0.8 for the other families, real background seed 8) and a quarter of its sessions fell to noise.
# The directories a command is called by (/bin/sh, /usr/bin/id) keep their own tokens; passwd is the
# file far more often than the command, a traversal token (mangled traversals name it alone).
COLLAPSED = {"shell": "shell:command"}
NOT_COLLAPSED = {"bin", "usr", "tmp"}
_KEYWORD = {w: cls for cls, words in KEYWORDS.items() for w in words.split()}
_FUNCTION = {w: cls for cls, words in FUNCTIONS.items() for w in words.split()}
_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
_CLASS_OF_GROUP = [cls for cls, _ in SYNTAX]
_ALL = re.compile("|".join(f"(?P<g{i}>{pattern})" for i, (_, pattern) in enumerate(SYNTAX)))
# Characters without which no syntax pattern can match: most benign words skip the alternation.
_TRIGGERS = re.compile(r"[-@#*/'<>.\\:%${}\[\]`;|&\n\x00?=(]")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}|%u[0-9a-fA-F]{4}")
_BACKSLASH = re.compile(r"\\x([0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})")
_HEX = re.compile(r"0x[0-9a-f]+")
_DIGITS = re.compile(r"[0-9]+")
_QUOTES = str.maketrans({'"': "'", "`": "`", "\u2018": "'", "\u2019": "'", "\u00b4": "'"})
_SPACES = re.compile(r"\s+")
MAX_DECODE_ROUNDS = 3


def normalise(text: str) -> str:
    """Undo nested encodings (percent, %uXXXX, \\xHH, HTML entities; up to 3 rounds), lower-case, and make
    digit runs, hex literals, quote kinds and whitespace runs alike, so variants of a payload read the same."""
    for _ in range(MAX_DECODE_ROUNDS):
        before = text
        if "%" in text:
            if "%u" in text or "%U" in text:
                text = _PERCENT.sub(lambda m: chr(int(m[0][2:], 16)) if m[0][1] in "uU" else m[0], text)
            text = unquote(text, errors="replace")
        if "\\" in text:
            text = _BACKSLASH.sub(lambda m: chr(int(m[1] or m[2], 16)), text)
        if "&" in text and ";" in text:
            text = html.unescape(text)
        if text == before:
            break
    text = _HEX.sub("0x0", text.lower())
    return _SPACES.sub(" ", _DIGITS.sub("0", text.translate(_QUOTES)))


def tokens(text: str) -> list[str]:
    """Attack tokens ("class:name") of one decoded word or target, after :func:`normalise`."""
    return _tokens_of_normalised(normalise(text))


def _tokens_of_normalised(norm: str) -> list[str]:
    out = []
    for m in _IDENT.finditer(norm):
        word = m[0]
        function = _FUNCTION.get(word) if norm[m.end():m.end() + 1] == "(" else None
        cls = _KEYWORD.get(word)
        # a call is its function's only (sleep( is SQL's, not also a shell command); an include's directive
        # (<!--#exec) is the include's, not SQL's exec
        if cls is not None and function is None and not norm.startswith("<!--#", max(m.start() - 5, 0), m.start()):
            out.append((word not in NOT_COLLAPSED and COLLAPSED.get(cls)) or f"{cls}:{word}")
        if word.startswith(("ro0ab", "aced0")):   # Java serialization, base64 or hex (digits already 0)
            out.append(f"java:{word[:5]}")
        if function is not None:
            out.append(f"{function}:{word}(")
    if _TRIGGERS.search(norm):
        out += [f"{_CLASS_OF_GROUP[int(m.lastgroup[1:])]}:{m[0].strip()}" for m in _ALL.finditer(norm)]
    return out


class PayloadView(NamedTuple):
    counts: sparse.csr_matrix   # (documents x token vocabulary) token counts
    strength: np.ndarray        # per document: share of its targets (requests) that carry any token, in [0, 1]
    vocabulary: list[str]


def payload_counts(bag: sparse.csr_matrix, targets: list[str], vocabulary: dict[str, int] | None = None) -> PayloadView:
    """Token counts of documents given as a (documents x targets) bag and the targets; each distinct word of
    the targets tokenized once. ``vocabulary``: a fitted one (unknown tokens dropped), else built from these.

    Strength counts targets, not words: a command carries its arguments ("nc -lvvp 4444 -e /bin/sh": two
    of six words carry tokens), so a share of words made a command-injection session weigh by how many
    arguments its commands had (0.43-0.90 on one campaign) and scattered it along its direction.

    A token counts once per target (request), however often the target repeats it: sqlmap's
    CHAR(73)+CHAR(78)+... says "char" a dozen times in one request, and counted per occurrence that one
    payload outweighed the session's other requests; the sessions that drew it made a cluster of their own
    (coupled sqli_scan, seed 9: 13 of 35 sessions, F1 0.772 -> 1.0 counted once per target)."""
    fixed = vocabulary is not None
    vocabulary = dict(vocabulary) if fixed else {}
    rows, cols = [], []
    carries = np.zeros(len(targets))
    cache: dict[str, list[str]] = {}     # many words differ only in digits: /product/1234, /product/1235
    for i, target in enumerate(targets):
        for word in target.split():
            norm = normalise(word)
            found = cache.get(norm)
            if found is None:
                found = cache[norm] = _tokens_of_normalised(norm)
            if found:
                carries[i] = 1.0
            for token in found:
                j = vocabulary.get(token)
                if j is None and not fixed:
                    j = vocabulary[token] = len(vocabulary)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
    target_tokens = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                      shape=(len(targets), max(len(vocabulary), 1)))
    target_tokens.sum_duplicates()
    target_tokens.data[:] = 1.0   # a token counts once per target: see the docstring
    counts = (bag @ target_tokens).tocsr()
    n_targets = np.asarray(bag.sum(axis=1)).ravel()
    strength = np.divide(bag @ carries, n_targets, out=np.zeros(bag.shape[0]), where=n_targets > 0)
    names = [t for t, _ in sorted(vocabulary.items(), key=lambda kv: kv[1])]
    return PayloadView(counts, strength, names)


CLASSES = ("sql", "html", "shell", "traversal", "url", "template", "php", "java")


def class_entropy(counts: sparse.csr_matrix, vocabulary: list[str]) -> np.ndarray:
    """Per document, the entropy of its token counts over the token classes, in [0, 1] (1: all classes alike).
    One family's requests stay within two or three classes (sqli 0.1-0.2, java 0.5-0.66 on generated
    traffic); a scanner's mix of families spreads over most of them (0.66-0.91)."""
    index = {cls: i for i, cls in enumerate(CLASSES)}
    to_class = sparse.csr_matrix((np.ones(len(vocabulary)), ([index[t.split(":", 1)[0]] for t in vocabulary] if vocabulary
                                                             else [], range(len(vocabulary)))),
                                 shape=(len(CLASSES), counts.shape[1])).T
    per_class = np.asarray((counts @ to_class).todense(), dtype=np.float64)
    total = per_class.sum(axis=1, keepdims=True)
    p = np.divide(per_class, total, out=np.zeros_like(per_class), where=total > 0)
    logs = np.log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logs).sum(axis=1) / np.log(len(CLASSES))


def tfidf_rows(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Sublinear tf times idf, rows L2-normalised (rows without tokens stay zero)."""
    from sklearn.preprocessing import normalize

    weighted = counts.astype(np.float64).tocsr(copy=True)
    weighted.data = 1.0 + np.log(weighted.data)
    return normalize(weighted @ sparse.diags(idf), norm="l2").tocsr()


def inverse_document_frequency(counts: sparse.csr_matrix, multiplicity: np.ndarray) -> np.ndarray:
    """Smooth idf over the documents that carry tokens, each counted ``multiplicity`` times."""
    presence = counts.copy().tocsr()
    presence.data[:] = 1.0
    carrying = presence.getnnz(axis=1) > 0
    n = float(multiplicity[carrying].sum())
    df = presence.T @ multiplicity
    return np.log((1.0 + n) / (1.0 + df)) + 1.0
