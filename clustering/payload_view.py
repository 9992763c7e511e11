"""The payload view: which attack token classes a session's requests carry, and how strongly.

Character n-grams of whole targets (``clustering.matrix``) see mostly the endpoint: when
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

# name -> (class, pattern); a match names the token "class:text" unless the pattern has a group "n" (then "class:n")
_WORD = r"(?<![a-z0-9_])"
_END = r"(?![a-z0-9_])"
TOKEN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("sql", _WORD + r"(?:union|select|insert|update|delete|drop|from|where|having|order|group|by|limit|offset|"
            r"sleep|benchmark|waitfor|delay|information_schema|concat|char|chr|ascii|substring|substr|mid|cast|"
            r"convert|extractvalue|updatexml|pg_sleep|load_file|outfile|dumpfile|exec|execute|declare|xp_cmdshell|"
            r"sysobjects|syscolumns|table_name|column_name|null|version|database|user|like|between|and|or|xor|not|"
            r"case|when|then|else|end|if|iif|rlike|regexp|procedure|analyse|hex|unhex|md5|count)" + _END),
    ("sql", r"(?P<n>@@[a-z_]+|--|/\*|\*/|#$|'\s*(?:or|and|\|\||&&)|0\s*=\s*0|'0'\s*=\s*'0|'\s*=\s*'|;\s*$|\|\|)"),
    ("html", r"<\s*/?\s*(?P<n>script|img|svg|iframe|body|a|div|input|form|object|embed|style|link|meta|marquee|"
             r"video|audio|details|math|base|frameset|frame|isindex|xss|table|td|bgsound|layer|br|p|b|html|textarea)"
             + _END),
    ("html", r"(?P<n>" + _WORD + r"on[a-z]{3,20}\s*=)"),
    ("html", _WORD + r"(?:alert|prompt|confirm|eval|fromcharcode|document|cookie|window|location|innerhtml|"
                     r"javascript|vbscript|expression|settimeout|atob|src|href|srcdoc|xlink)" + _END),
    ("shell", r"(?P<n>&&|\|\||`|\$\(|;|\||%0a|\n)"),
    ("shell", _WORD + r"(?:cat|id|whoami|uname|ls|dir|ping|nc|ncat|netcat|wget|curl|bash|sh|zsh|cmd|cmd\.exe|"
                      r"powershell|echo|sleep|ifconfig|ipconfig|net|type|pwd|ver|nslookup|perl|python|ruby|"
                      r"chmod|rm|touch|sysinfo|systeminfo|tasklist|netstat|passwd|bin|usr|tmp|exec|timeout)" + _END),
    ("traversal", r"(?P<n>\.\.[/\\]|\.\.$|\.\.;|/etc/|etc/passwd|etc/shadow|etc/hosts|win\.ini|boot\.ini|"
                  r"/proc/self|proc/self|c:\\|c:/|windows[/\\]|system32|\x00|%00|web\.xml|web-inf|\.htaccess|"
                  r"/var/log|/var/www|httpd\.conf|\.ssh|id_rsa)"),
    ("url", r"(?P<n>https?://|ftp://|ftps://|^//|\\\\[a-z0-9]|file://|gopher://|dict://|sftp://|tftp://)"),
    ("url", r"(?P<n>\.(?:txt|jpg|gif|png)\?+$|\.txt%00|\.txt\x00|\?\?+$|&cmd=|[0-9]\.[0-9]+\.[0-9]+\.[0-9]+)"),
    ("template", r"(?P<n>\$\{|#\{|%\{|\{\{|\}\}|\{%|<%=?|%>|jndi:|ldap:|ldaps:|rmi:|dns:|iiop:|lower:|upper:|"
                 r"::-|env:|sys:|k8s:|\bt\(|@type|#context|_memberaccess|ognl|xwork|#dm|pagecontext|"
                 r"applicationscope|getclass|forname)"),
    ("php", r"(?P<n><\?php|<\?=|<\?|\?>|php://|data://|expect://|zip://|phar://|\$_(?:get|post|request|server|"
            r"cookie|files|env)|[oa]:0:[{'\"]|s:0:'|allow_url_include|auto_prepend_file)"),
    ("php", _WORD + r"(?:system|shell_exec|passthru|exec|popen|proc_open|eval|assert|phpinfo|base64_decode|"
                    r"call_user_func|call_user_func_array|create_function|preg_replace|file_put_contents|"
                    r"file_get_contents|fwrite|fopen|include|include_once|require|require_once|die|print|md5|"
                    r"ini_set|str_rot13|gzinflate)\s*\(" ),
    ("java", r"(?P<n>java\.|javax\.|java/lang|\.lang\.runtime|getruntime|processbuilder|org\.apache\.|com\.sun\.|"
             r"classloader|class\.module|rowset|invokertransformer|chainedtransformer|templatesimpl|"
             r"ro0ab|aced0|ysoserial|scriptenginemanager|initialcontext|jdbcrowsetimpl|inet4address|"
             r"getinputstream|\.exec\()"),
)
_COMPILED = tuple((cls, re.compile(pattern)) for cls, pattern in TOKEN_PATTERNS)
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
            text = _PERCENT.sub(lambda m: chr(int(m[0][2:], 16)) if m[0][1] in "uU" else m[0], text)
            text = unquote(text, errors="replace")
        if "\\" in text:
            text = _BACKSLASH.sub(lambda m: chr(int(m[1] or m[2], 16)), text)
        if "&" in text:
            text = html.unescape(text)
        if text == before:
            break
    text = _HEX.sub("0x0", text.lower())
    return _SPACES.sub(" ", _DIGITS.sub("0", text.translate(_QUOTES)))


def tokens(text: str) -> list[str]:
    """Attack tokens ("class:name") of one decoded word or target, after :func:`normalise`."""
    norm = normalise(text)
    out = []
    for cls, pattern in _COMPILED:
        for m in pattern.finditer(norm):
            name = m.groupdict().get("n") or m[0]
            out.append(f"{cls}:{name.strip()}")
    return out


class PayloadView(NamedTuple):
    counts: sparse.csr_matrix   # (documents x token vocabulary) token counts
    strength: np.ndarray        # per document: share of its words that carry any token, in [0, 1]
    vocabulary: list[str]


def payload_counts(bag: sparse.csr_matrix, words: list[str], vocabulary: dict[str, int] | None = None) -> PayloadView:
    """Token counts of documents given as a (documents x words) bag and the words; each word tokenized once.
    ``vocabulary``: a fitted one (unknown tokens dropped), else built from these words."""
    fixed = vocabulary is not None
    vocabulary = dict(vocabulary) if fixed else {}
    rows, cols = [], []
    carries = np.zeros(len(words))
    for i, word in enumerate(words):
        found = tokens(word)
        carries[i] = bool(found)
        for token in found:
            j = vocabulary.get(token)
            if j is None and not fixed:
                j = vocabulary[token] = len(vocabulary)
            if j is not None:
                rows.append(i)
                cols.append(j)
    word_tokens = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(words), max(len(vocabulary), 1)))
    counts = (bag @ word_tokens).tocsr()
    n_words = np.asarray(bag.sum(axis=1)).ravel()
    strength = np.divide(bag @ carries, n_words, out=np.zeros(bag.shape[0]), where=n_words > 0)
    names = [t for t, _ in sorted(vocabulary.items(), key=lambda kv: kv[1])]
    return PayloadView(counts, strength, names)


CLASSES = tuple(dict.fromkeys(cls for cls, _ in TOKEN_PATTERNS))


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
