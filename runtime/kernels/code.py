"""numba kernels: how much a parameter value looks like code (an attack), not text.

Unusual is not attack: an English sentence in a free-text field is rare on an
e-shop, but it is text. Attacks are code in a place that expects data: SQL,
HTML/JS, shell, traversal, URLs and wrappers, template and JNDI syntax. The
tokenizer maps a decoded value to *token classes* (a keyword list and a few
contextual rules: ``;`` is only a separator, ``;id`` is a separator followed by a
shell command), and a logistic model over the class counts and the class bigrams
(spaces skipped) gives a logit: the value's *code-likeness*.

URLs get classes of their own (version 2). A URL in a parameter is ordinary (redirect
targets, shared links, CDN assets), and its slashes, ``?``, ``&`` and ``=`` are not the
path traversal, shell or SQL syntax they look like elsewhere. After ``http://`` (any
scheme that is not a wrapper such as ``php://``) the authority is one token, a host
*name* or a host *address* (an IP literal, a number, a name without a dot), and until a
byte that cannot be in a URL (space, quote, ``<``, ``;``, ...) the separators are URL
classes and its words, numbers, dots and harmless ``%XX`` escapes are *URL text* (so URL
examples move the weights of URL classes, not those of words and numbers elsewhere). A value
that is a URL is not decoded again: its escapes are its own (a query's values, a nested
redirect URL), except escapes of quotes, ``<``, ``>``, NUL, CR/LF and ``%``, which stay
"leftover encoding". Traversal, wrappers and ``javascript:`` keep their classes inside a
URL, and code must leave the URL to run (a quote, a space, ``;``), so the fitted weights,
not a whitelist, decide what is attack about a URL (an address host, a query mark that ends
the value: remote file inclusion). The weights are
fitted once on public labelled values (``scripts/fit_code_model.py``) and travel
in every artifact as plain arrays; each site then calibrates where evidence starts
(see :mod:`waflens.scoring.calibration`).

Imports only numpy and numba (the runtime's rule). Change the tokenizer and
``TOKENIZER_VERSION`` must change: the weights mean nothing for other classes.
"""

from __future__ import annotations

import numba
import numpy as np

from waflens.runtime.feature_spec import MARKER
from waflens.runtime.kernels.profile import request_params
from waflens.runtime.kernels.request import _lower, url_decode

TOKENIZER_VERSION = 2
CLASS_NAMES = (
    "word", "number", "SQL keyword", "SQL connective", "SQL comment", "quote", "backtick", "open parenthesis",
    "close parenthesis", "equals sign", "comparison", "HTML tag", "tag end", "JS event handler", "JS/DOM name",
    "semicolon", "pipe or ampersand", "command substitution", "shell command", "traversal sequence",
    "sensitive file name", "URL scheme", "PHP/stream wrapper", "template syntax", "JNDI lookup", "CR/LF",
    "NUL byte", "leftover encoding", "slash", "dot", "comma", "hash", "brace", "other punctuation", "non-ASCII",
    "SSI directive", "hex literal", "at sign", "colon", "space",  # ("non-ASCII": unused since version 1 shipped)
    "URL host name", "URL host address", "URL path separator", "URL query or fragment mark", "URL parameter syntax",
    "URL text")
(WORD, NUM, SQL_KW, SQL_WEAK, SQL_COMMENT, QUOTE, BACKTICK, PAREN_OPEN, PAREN_CLOSE, EQUALS, COMPARE, HTML_TAG,
 TAG_END, JS_EVENT, JS_WORD, SEMICOLON, PIPE_AMP, SUBSHELL, SHELL_CMD, TRAVERSAL, SENSITIVE_FILE, SCHEME,
 PHP_WRAPPER, TEMPLATE, JNDI, CRLF, NUL, ENCODED, SLASH, DOT, COMMA, HASH, BRACE, PUNCT, NONASCII, SSI, HEXLIT,
 AT, COLON, SPACE, URL_HOST, URL_ADDRESS, URL_SLASH, URL_QUERY, URL_PARAM, URL_TEXT) = range(len(CLASS_NAMES))
N_CLASSES = len(CLASS_NAMES)
START, END = N_CLASSES, N_CLASSES + 1  # bigram ends (not counted as unigrams)
N_BIGRAM_CLASSES = N_CLASSES + 2
N_CODE_WEIGHTS = N_CLASSES + N_BIGRAM_CLASSES * N_BIGRAM_CLASSES  # unigram log-counts, then bigram presence
MAX_TOKENS = 4096  # a value's tokens beyond this are ignored (bounds the work per value)
NO_VALUES = -30.0  # the code-likeness of a request without parameter values (below any value's)
# a value ingest masked is no value to judge: its brackets read as code to the model, which put every stored login
# among the code-like requests when training calibrated. (The runtime judges the raw value of a live secret, see
# waflens.runtime.kernels.score.features_one; a live value that is the marker counts as nothing there too.)
_MARKER = np.frombuffer(MARKER.encode("ascii"), np.uint8).copy()


@numba.njit(cache=True, nogil=True)
def _is_marker(value):
    if value.size != _MARKER.size:
        return False
    for i in range(value.size):
        if value[i] != _MARKER[i]:
            return False
    return True

_KEYWORDS = {
    SQL_KW: "select union insert update delete drop truncate alter exec execute declare sleep benchmark waitfor "
            "delay concat concat_ws group_concat char chr varchar nvarchar cast convert information_schema "
            "sysobjects syscolumns xp_cmdshell load_file outfile dumpfile pg_sleep dbms_pipe receive_message "
            "extractvalue updatexml substring substr ascii unhex rdb utl_inaddr sqlite_master pg_catalog "
            "msysaccessobjects rlike regexp nullif ifnull iif mid ord sp_executesql shutdown",
    SQL_WEAK: "or and not xor from where like order by group having null is limit offset into values table all as "
              "case when then else end in between top distinct join set user version count database true false "
              "desc asc exists if",
    SHELL_CMD: "id whoami uname cat ls pwd wget curl nc ncat netcat bash sh zsh ksh csh ping echo rm chmod chown "
               "nslookup dig telnet ifconfig ipconfig netstat ps perl python python3 ruby powershell cmd dir net "
               "systeminfo tasklist grep awk sed xterm nohup base64 env sudo tftp lynx hostname uptime",
    JS_WORD: "alert prompt confirm eval document cookie window location fromcharcode settimeout setinterval "
             "innerhtml src href expression atob constructor console fetch xmlhttprequest srcdoc formaction "
             "javascript vbscript script iframe svg",
    SENSITIVE_FILE: "etc passwd shadow environ htaccess htpasswd system32 cmdline proc ini boot win bash_history "
                    "wp-config",
    PHP_WRAPPER: "phpinfo base64_decode file_get_contents shell_exec passthru proc_open popen php phar expect",
}
_WRAPPER_SCHEMES = ("php", "phar", "zip", "expect", "data", "glob", "compress", "jar", "file", "gopher", "dict")
_SCRIPT_SCHEMES = ("javascript", "vbscript", "livescript")


def _keyword_tables():
    words, classes = [], []
    for cls, text in _KEYWORDS.items():
        for word in text.split():
            if word.encode() not in words:
                words.append(word.encode())
                classes.append(cls)
    size = 1024
    table = np.full(size, -1, dtype=np.int64)
    for k, word in enumerate(words):
        slot = _py_hash(word) & (size - 1)
        while table[slot] >= 0:
            slot = (slot + 1) & (size - 1)
        table[slot] = k
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(w) for w in words])
    return np.frombuffer(b"".join(words), np.uint8).copy(), offsets, np.array(classes, np.int64), table


def _py_hash(word: bytes) -> int:
    h = 2166136261
    for c in word:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def _word_list(names) -> tuple[np.ndarray, np.ndarray]:
    data = [n.encode() for n in names]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(d) for d in data])
    return np.frombuffer(b"".join(data), np.uint8).copy(), offsets


_KW_DATA, _KW_OFFSETS, _KW_CLASS, _KW_TABLE = _keyword_tables()
_WRAP_DATA, _WRAP_OFFSETS = _word_list(_WRAPPER_SCHEMES)
_SCRIPT_DATA, _SCRIPT_OFFSETS = _word_list(_SCRIPT_SCHEMES)
_JNDI = np.frombuffer(b"jndi", np.uint8).copy()


@numba.njit(cache=True, nogil=True)
def _same(text, a, b, data, start, end):
    if b - a != end - start:
        return False
    for j in range(b - a):
        if text[a + j] != data[start + j]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _in_list(text, a, b, data, offsets):
    for k in range(offsets.size - 1):
        if _same(text, a, b, data, offsets[k], offsets[k + 1]):
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _keyword_class(text, a, b):
    h = np.uint32(2166136261)
    for j in range(a, b):
        h = (h ^ np.uint32(text[j])) * np.uint32(16777619)
    mask = _KW_TABLE.size - 1
    slot = np.int64(h) & mask
    while _KW_TABLE[slot] >= 0:
        k = _KW_TABLE[slot]
        if _same(text, a, b, _KW_DATA, _KW_OFFSETS[k], _KW_OFFSETS[k + 1]):
            return _KW_CLASS[k]
        slot = (slot + 1) & mask
    return WORD


@numba.njit(cache=True, nogil=True)
def _is_word_byte(c):
    return 97 <= c <= 122 or 48 <= c <= 57 or c == 95 or c == 45 or c >= 128


@numba.njit(cache=True, nogil=True)
def _is_hex(c):
    return 48 <= c <= 57 or 97 <= c <= 102


@numba.njit(cache=True, nogil=True)
def _ends_url(c):
    """Bytes that cannot be part of a URL in a value (whitespace and controls, quotes, markup and shell syntax)."""
    return (c <= 32 or c == 34 or c == 39 or c == 96 or c == 60 or c == 62 or c == 40 or c == 41 or c == 123
            or c == 125 or c == 124 or c == 92 or c == 94 or c == 59 or c == 36 or c == 127)


@numba.njit(cache=True, nogil=True)
def _hex_value(c):
    return c - 48 if c <= 57 else c - 87


@numba.njit(cache=True, nogil=True)
def _suspect_escape(value, j):
    """Whether ``value[j:]`` starts with a %XX escape of a byte that would end a URL as code does (a quote,
    '<', '>', a backtick, NUL, CR, LF) or of '%' itself (encoding twice)."""
    if j + 2 >= value.size or value[j] != 37 or not (_is_hex(value[j + 1]) and _is_hex(value[j + 2])):
        return False
    b = _hex_value(value[j + 1]) * 16 + _hex_value(value[j + 2])
    return b == 0 or b == 10 or b == 13 or b == 34 or b == 39 or b == 60 or b == 62 or b == 96 or b == 37


@numba.njit(cache=True, nogil=True)
def _is_url_text(value, j):
    """Whether the byte at ``j`` continues URL text: name bytes, a dot (not '..'), '%' (not a suspect
    escape), '~', ',', ':', '@', '+'."""
    c = value[j]
    if c == 46:
        return j + 1 >= value.size or value[j + 1] != 46
    if c == 37:
        return not _suspect_escape(value, j)
    return _is_word_byte(c) or c == 126 or c == 44 or c == 58 or c == 64 or c == 43


@numba.njit(cache=True, nogil=True)
def _url_text_end(value, j):
    """End of the URL text that continues at ``j``."""
    while j < value.size and _is_url_text(value, j):
        j += 1
    return j


@numba.njit(cache=True, nogil=True)
def _is_authority_byte(c):
    return _is_word_byte(c) or c == 46 or c == 58 or c == 64 or c == 91 or c == 93 or c == 126


@numba.njit(cache=True, nogil=True)
def _authority(value, start):
    """(end, host class, whether it has user info) of the URL authority (user info, host, port) at ``start``:
    a host *name* has a dot, only name bytes, and a letter in its last label; anything else is an address."""
    n = value.size
    end = start
    at = -1
    while end < n and _is_authority_byte(value[end]):
        if value[end] == 64:
            at = end
        end += 1
    host = at + 1 if at >= 0 else start
    stop = end  # the host without its port
    for j in range(host, end):
        if value[j] == 58:
            stop = j
            break
    dots, letters = 0, 0
    plain = stop > host
    for j in range(host, stop):
        c = value[j]
        if c == 46:
            dots += 1
            letters = 0
        elif 97 <= c <= 122 or c >= 128:
            letters += 1
        elif not (48 <= c <= 57 or c == 45 or c == 95):
            plain = False
    cls = URL_HOST if plain and dots > 0 and letters > 0 else URL_ADDRESS
    if stop > host and value[stop - 1] == 46 and plain and dots > 1:  # a fully qualified name ('example.com.')
        cls = URL_HOST
    return end, cls, at >= 0


@numba.njit(cache=True, nogil=True)
def _is_url(value):
    """Whether a value starts with a URL scheme that is not a wrapper (``http://``, ``ftp://``; any case)."""
    n = value.size
    if n == 0 or not (97 <= (value[0] | 32) <= 122):
        return False
    j = 1
    while j < n and (97 <= (value[j] | 32) <= 122 or 48 <= value[j] <= 57 or value[j] == 95 or value[j] == 45):
        j += 1
    if j + 2 >= n or value[j] != 58 or value[j + 1] != 47 or value[j + 2] != 47:
        return False
    return not _in_list(_lower(value[:j]), 0, j, _WRAP_DATA, _WRAP_OFFSETS)


@numba.njit(cache=True, nogil=True)
def tokenize(value, classes):
    """Fill ``classes`` with the token classes of ``value`` (bytes, lower-cased); returns how many."""
    n = value.size
    m = 0
    i = 0
    in_url = False      # inside a URL: its separators are URL classes
    authority = False   # a URL scheme was just read: its authority comes next
    while i < n and m < classes.size:
        c = value[i]
        nxt = value[i + 1] if i + 1 < n else 0
        step = 1
        if in_url and _ends_url(c):
            in_url = False
        if 97 <= c <= 122 or c == 95 or c >= 128:  # (UTF-8 letters: accented words are words)
            j = i + 1
            while j < n and _is_word_byte(value[j]):
                j += 1
            while j > i + 1 and value[j - 1] == 45:  # a trailing '-' is punctuation ('--' comments)
                j -= 1
            cls = _keyword_class(value, i, j)
            step = j - i
            if j + 2 < n and value[j] == 58 and value[j + 1] == 47 and value[j + 2] == 47:
                if _in_list(value, i, j, _WRAP_DATA, _WRAP_OFFSETS):
                    cls = PHP_WRAPPER
                else:
                    cls, in_url, authority = SCHEME, True, True
                step += 3
            elif j < n and value[j] == 58 and _in_list(value, i, j, _SCRIPT_DATA, _SCRIPT_OFFSETS):
                cls, step = JS_WORD, step + 1
            elif j < n and value[j] == 58 and _same(value, i, j, _JNDI, 0, 4):
                cls, step = JNDI, step + 1
            elif j < n and value[j] == 58 and _in_list(value, i, j, _WRAP_DATA, _WRAP_OFFSETS):
                cls, step = PHP_WRAPPER, step + 1
            elif in_url:  # a word in a URL: URL text (with the dots, digits and '-' that follow)
                cls, step = URL_TEXT, _url_text_end(value, j) - i
            elif j - i >= 5 and value[i] == 111 and value[i + 1] == 110 and (j >= n or value[j] != 58):  # on...=
                # an event handler
                k = j
                while k < n and (value[k] == 32 or value[k] == 9 or value[k] == 47):
                    k += 1
                if k < n and value[k] == 61:
                    cls = JS_EVENT
        elif in_url and _is_url_text(value, i):  # (letters were handled above)
            cls, step = URL_TEXT, _url_text_end(value, i) - i
        elif 48 <= c <= 57:
            if c == 48 and nxt == 120 and i + 2 < n and _is_hex(value[i + 2]):
                j = i + 2
                while j < n and _is_hex(value[j]):
                    j += 1
                cls, step = HEXLIT, j - i
            else:
                j = i + 1
                while j < n and 48 <= value[j] <= 57:
                    j += 1
                cls, step = NUM, j - i
        elif c == 32 or c == 9 or c == 11 or c == 12:
            j = i + 1
            while j < n and (value[j] == 32 or value[j] == 9 or value[j] == 11 or value[j] == 12):
                j += 1
            cls, step = SPACE, j - i
        elif c == 13 or c == 10:
            cls = CRLF
        elif c == 0:
            cls = NUL
        elif c == 39 or c == 34:
            cls = QUOTE
        elif c == 96:
            cls = BACKTICK
        elif c == 40:
            cls = PAREN_OPEN
        elif c == 41:
            cls = PAREN_CLOSE
        elif c == 61:
            cls = URL_PARAM if in_url else EQUALS
        elif c == 63 and in_url:
            cls = URL_QUERY
        elif c == 60:
            if nxt == 33 and i + 4 < n and value[i + 2] == 45 and value[i + 3] == 45 and value[i + 4] == 35:
                cls, step = SSI, 5
            elif nxt == 63:
                cls, step = PHP_WRAPPER, 2
            elif nxt == 37:
                cls, step = TEMPLATE, 2
            elif 97 <= nxt <= 122 or nxt == 47 or nxt == 33:
                j = i + 1
                while j < n and (value[j] == 47 or value[j] == 33):
                    j += 1
                while j < n and 97 <= value[j] <= 122:
                    j += 1
                cls, step = HTML_TAG, max(j - i, 1)
            else:
                cls = COMPARE
        elif c == 62:
            cls = TAG_END
        elif c == 33:
            cls, step = (COMPARE, 2) if nxt == 61 else (PUNCT, 1)
        elif c == 59:
            cls = SEMICOLON
        elif c == 124 or c == 38:
            if c == 38 and nxt == 35:
                cls, step = ENCODED, 2
            elif c == 38 and in_url and nxt != 38:
                cls = URL_PARAM
            else:
                cls, step = PIPE_AMP, (2 if nxt == c else 1)
        elif c == 36:
            if nxt == 40:
                cls, step = SUBSHELL, 2
            elif nxt == 123:
                cls, step = TEMPLATE, 2
            else:
                cls = PUNCT
        elif c == 45:
            cls, step = (SQL_COMMENT, 2) if nxt == 45 else (PUNCT, 1)
        elif c == 47:
            cls, step = (SQL_COMMENT, 2) if nxt == 42 else ((URL_SLASH if in_url else SLASH), 1)
        elif c == 42:
            cls, step = (SQL_COMMENT, 2) if nxt == 47 else (PUNCT, 1)
        elif c == 92:
            if (nxt == 120 or nxt == 117) and i + 2 < n and _is_hex(value[i + 2]):
                cls, step = ENCODED, 3
            else:
                cls = SLASH
        elif c == 46:
            if nxt == 46 and (i + 2 == n or value[i + 2] == 47 or value[i + 2] == 92):
                cls, step = TRAVERSAL, min(3, n - i)
            else:
                cls = DOT
        elif c == 44:
            cls = COMMA
        elif c == 35:
            cls, step = (TEMPLATE, 2) if nxt == 123 else ((URL_QUERY if in_url else HASH), 1)
        elif c == 123:
            cls, step = (TEMPLATE, 2) if nxt == 123 or nxt == 37 else (BRACE, 1)
        elif c == 125:
            cls, step = (TEMPLATE, 2) if nxt == 125 else (BRACE, 1)
        elif c == 37:
            if nxt == 62 or nxt == 125:
                cls, step = TEMPLATE, 2
            elif i + 2 < n and _is_hex(nxt) and _is_hex(value[i + 2]):
                cls, step = ENCODED, 3
            else:
                cls = PUNCT
        elif c == 64:
            cls, step = AT, (2 if nxt == 64 else 1)
        elif c == 58:
            cls = COLON
        else:
            cls = PUNCT
        classes[m] = cls
        m += 1
        i += step
        if authority:
            authority = False
            end, host, user_info = _authority(value, i)
            if user_info and m < classes.size:
                classes[m] = AT
                m += 1
            if m < classes.size:
                classes[m] = host
                m += 1
            i = end
    return m


@numba.njit(cache=True, nogil=True)
def _prepared(value):
    """The value lower-cased, decoded once more when it still holds %XX escapes (double encoding), and
    whether it did. A value that is a URL is not: its escapes are its own (see :func:`tokenize`)."""
    if _is_url(value):  # its escapes are its own (a query's values, a nested URL): read them inside the URL
        return _lower(value), False
    for i in range(value.size - 2):
        if value[i] == 37 and _is_hex(value[i + 1] | 32) and _is_hex(value[i + 2] | 32):
            return _lower(url_decode(value, False)), True
    return _lower(value), False


@numba.njit(cache=True, nogil=True)
def code_features(value, counts, bigrams, classes, seen):
    """Class counts (``counts``, N_CLASSES) and the distinct bigram ids (into ``bigrams``; returns how
    many) of a decoded value. Scratch: ``classes`` (MAX_TOKENS), ``seen`` (all False, N_BIGRAM_CLASSES**2)."""
    text, double = _prepared(value)
    m = tokenize(text, classes)
    counts[:] = 0
    if double:
        counts[ENCODED] += 1
    n_bigrams = 0
    previous = START
    for t in range(m + 1):
        cls = classes[t] if t < m else END
        if t < m:
            counts[cls] += 1
            if cls == SPACE:
                continue
        bigram = previous * N_BIGRAM_CLASSES + cls
        if not seen[bigram]:
            seen[bigram] = True
            bigrams[n_bigrams] = bigram
            n_bigrams += 1
        previous = cls
    for k in range(n_bigrams):
        seen[bigrams[k]] = False
    return n_bigrams


@numba.njit(cache=True, nogil=True)
def code_logit(value, weights, bias, counts, bigrams, classes, seen):
    """The value's code-likeness: the logistic model's logit (log-odds that it is an attack)."""
    n_bigrams = code_features(value, counts, bigrams, classes, seen)
    z = bias
    for c in range(N_CLASSES):
        if counts[c]:
            z += weights[c] * np.log1p(counts[c])
    for k in range(n_bigrams):
        z += weights[N_CLASSES + bigrams[k]]
    return z


@numba.njit(cache=True, nogil=True)
def request_code_likeness(path, query, body, weights, bias):
    """Highest code-likeness over the parameter values (NO_VALUES without any). Paths are left to the
    structural evidence: the model was fitted on values, and a path looks like traversal to it."""
    path_decoded, names, data, offsets, count = request_params(path, query, body)
    if count == 0:
        return NO_VALUES
    # scratch sized by the values (a value has at most as many tokens as bytes, twice that when decoded again)
    room = min(MAX_TOKENS + 1, 2 * offsets[count] + 2)
    counts = np.zeros(N_CLASSES, dtype=np.int64)
    classes = np.empty(room, dtype=np.int64)
    bigrams = np.empty(room + 1, dtype=np.int64)
    seen = np.zeros(N_BIGRAM_CLASSES * N_BIGRAM_CLASSES, dtype=np.bool_)
    best = NO_VALUES
    for k in range(count):
        if _is_marker(data[offsets[k]:offsets[k + 1]]):
            continue
        z = code_logit(data[offsets[k]:offsets[k + 1]], weights, bias, counts, bigrams, classes, seen)
        if z > best:
            best = z
    return best


@numba.njit(cache=True, nogil=True)
def value_code_logits(path, query, body, weights, bias, out):
    """Code-likeness of each parameter value, in order (into ``out``); returns how many. For explanations."""
    path_decoded, names, data, offsets, count = request_params(path, query, body)
    counts = np.zeros(N_CLASSES, dtype=np.int64)
    classes = np.empty(MAX_TOKENS + 1, dtype=np.int64)
    bigrams = np.empty(MAX_TOKENS + 2, dtype=np.int64)
    seen = np.zeros(N_BIGRAM_CLASSES * N_BIGRAM_CLASSES, dtype=np.bool_)
    n = min(count, out.size)
    for k in range(n):
        value = data[offsets[k]:offsets[k + 1]]
        out[k] = NO_VALUES if _is_marker(value) else code_logit(value, weights, bias, counts, bigrams, classes, seen)
    return n
