"""Access-log formats compiled into one regex that DuckDB (RE2) and Python ``re`` both run.

A format is a preset name (``combined``, ``common``, ``vhost_combined``, ``nginx``), an
Apache ``LogFormat`` string (``%``-directives) or an nginx ``log_format`` string
(``$variables``). The result is a :class:`LineFormat`: an anchored regex with one plain
capture group per field, and the canonical name of each field. Groups are unnamed
because ``regexp_extract`` takes the names as a separate list.

Only syntax both engines agree on is used: ``(...)``, ``(?:...)``, ``|``, explicit
ASCII character classes (not ``\\s``/``\\S``/``\\d``, which are Unicode-aware in Python
but ASCII in RE2), lazy ``*?`` and ``^ $``. Every regex ends with
``[\\t\\n\\v\\f\\r ]*$``, because real logs carry trailing spaces and CR remnants.

Apache directives (modifiers such as ``%>s``, ``%<s``, ``%400,501{User-agent}i`` and
``%!200r`` are accepted and ignored; ``%%`` is a literal percent sign):

    %h %a (%{c}a %{c}h)  client_ip        %l  ident           %u  remote_user
    %t                   time_clf         %{sec}t time_epoch  %{msec}t time_epoch_ms
    %r  request_line     %m  method       %U  path            %q  query (with its '?')
    %H  protocol         %s  status       %b %B %O  bytes
    %{usec}t time_epoch_us                 %{format}t  time_strftime:<format> (DuckDB strptime)
    %{usec_frac}t %{msec_frac}t  time_frac_us / time_frac_ms (added to a %{format}t or %t time)
    several %{format}t write one time in pieces ([%{%F %T}t.%{usec_frac}t %{%z}t]): read together
    %{Referer}i  referer %{User-Agent}i  user_agent           %{Name}i  header:name
    %{Name}C  cookie:Name                 %D %{us}T  duration_us
    %T %{s}T  duration_s %{ms}T  duration_ms                  %v %V  vhost
    %p %{canonical}p %{local}p  server_port
    ignored: %A %e %f %I %k %L %n %o %P %R %S %X %c %x %^ti %^to %^FB %^FU,
             %{remote}p

nginx variables:

    $remote_addr $realip_remote_addr  client_ip      $remote_user  remote_user
    $time_local  time_clf             $time_iso8601  time_iso8601  $msec  time_epoch
    $request  request_line            $request_method  method      $uri $document_uri  path
    $args $query_string  query        $request_uri  target         $server_protocol  protocol
    $status  status                   $body_bytes_sent $bytes_sent  bytes
    $http_referer  referer            $http_user_agent  user_agent $http_x_name  header:x-name
    $cookie_Name  cookie:Name         $request_time  duration_s    $host $server_name  vhost
    $server_port  server_port         any other variable  ignored

How a field's value is matched depends on where it sits in the spec: alone between
literal double quotes, ``(?:[^"\\\\]|\\\\.)*`` (servers escape ``"`` as ``\\"`` or
``\\x22``); sharing a quoted section with other fields (``"%m %U%q %H"``), one word
without spaces or quotes; between literal brackets, ``[^\\]]*``; elsewhere one word,
except free text (request line, referer, user agent, headers), which is a lazy
``.*?`` so an unquoted user agent with spaces still parses. A quoted request line also
tolerates raw ``"`` inside it (``"GET /a"b HTTP/1.1"``, old nginx, scanners): it is
tried strictly first and only widened when the strict reading fails, so well-formed
lines parse exactly as the strict regex would.

A group that takes no part in a match (COMBINED's optional vhost, referer, user agent,
trailing) is ``''`` in DuckDB's ``regexp_extract`` and ``None`` in Python's ``re``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from waflens.data.errors import ConfigError


class LineFormat(NamedTuple):
    name: str                 # "combined" (preset) or "apache" / "nginx" (compiled from a spec)
    spec: str                 # the format string it came from ("" for presets)
    regex: str                # anchored ^...$; one capture group per entry of `fields`
    fields: tuple[str, ...]   # canonical field name of each capture group, in order


_SPACE = r"[\t\n\v\f\r ]"
_WORD = r"[^\t\n\v\f\r ]"
_END = _SPACE + "*$"
_QUOTED = r'(?:[^"\\]|\\.)*'
_QUOTED_WORD = r'(?:[^"\\\t\n\v\f\r ]|\\.)*'
_QUOTED_PATH = r'(?:[^"\\?\t\n\v\f\r ]|\\.)*'
# Strict first; the lazy branch is only taken when the strict reading cannot match the line.
_REQUEST = _QUOTED + "|.*?"

# One regex for common, combined, vhost_combined (vhost or vhost:port first, kept whole in
# ``vhost``), IPv6 clients, '-' for status or bytes, and anything after the user agent
# (``trailing``: nginx extras such as '"-" 0.123 upstream=...'). Text after the bytes is
# only accepted behind a complete "referer" "user-agent" pair, so a line whose user agent
# lost its closing quote is rejected rather than parsed with the tail in ``trailing``.
_COMBINED_REGEX = (
    f"^(?:({_WORD}+) +)?({_WORD}+) +({_WORD}+) +({_WORD}+) +"
    r"\[([^\]]*)\] +"
    f'"({_REQUEST})" +([0-9]{{3}}|-) +([0-9]+|-)'
    f'(?: +"({_QUOTED})" +"({_QUOTED})" *(.*?))?'
    f"{_END}"
)

COMBINED = LineFormat(
    name="combined",
    spec="",
    regex=_COMBINED_REGEX,
    fields=("vhost", "client_ip", "ident", "remote_user", "time_clf", "request_line", "status", "bytes",
            "referer", "user_agent", "trailing"),
)

_NGINX_DEFAULT = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                  '"$http_referer" "$http_user_agent"')

_APACHE_FIELDS = {
    "a": "client_ip", "h": "client_ip", "l": "ident", "u": "remote_user", "r": "request_line",
    "m": "method", "U": "path", "q": "query", "H": "protocol", "s": "status", "b": "bytes",
    "B": "bytes", "O": "bytes", "D": "duration_us", "v": "vhost", "V": "vhost",
}
_APACHE_IGNORED = set("AefIkLnoPRSXcx") | {"^ti", "^to", "^FB", "^FU"}
_APACHE_DIRECTIVE = re.compile(r"%((?:[<>!,0-9]|\{[^}]*\})*)(\^[a-zA-Z]{2}|[a-zA-Z%])")

_NGINX_FIELDS = {
    "remote_addr": "client_ip", "realip_remote_addr": "client_ip", "remote_user": "remote_user",
    "time_local": "time_clf", "time_iso8601": "time_iso8601", "msec": "time_epoch",
    "request": "request_line", "request_method": "method", "uri": "path", "document_uri": "path",
    "args": "query", "query_string": "query", "request_uri": "target", "server_protocol": "protocol",
    "status": "status", "body_bytes_sent": "bytes", "bytes_sent": "bytes", "http_referer": "referer",
    "http_user_agent": "user_agent", "request_time": "duration_s", "host": "vhost",
    "server_name": "vhost", "server_port": "server_port",
}
_NGINX_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")

_FREE_TEXT = {"request_line", "referer", "user_agent"}
_PRESETS = ("combined", "common", "vhost_combined", "nginx")


class _Field(NamedTuple):
    name: str
    pattern: str = ""   # fixed pattern (with its own group) regardless of context, e.g. Apache %t


def compile_log_format(spec: str) -> LineFormat:
    """A preset name, Apache LogFormat or nginx log_format string -> :class:`LineFormat`."""
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise ConfigError("empty log format: pass a preset (combined, common, vhost_combined, nginx), "
                          "an Apache LogFormat such as '%h %l %u %t \"%r\" %>s %b' or an nginx log_format")
    if text.lower() in _PRESETS:
        if text.lower() == "nginx":
            return _compile("nginx", _NGINX_DEFAULT, _nginx_tokens(_NGINX_DEFAULT))
        return COMBINED
    apache, nginx = len(_APACHE_DIRECTIVE.findall(text)), len(_NGINX_VARIABLE.findall(text))
    if apache >= nginx and (apache or "%" in text):    # '%2F' in an nginx spec is not a directive
        return _compile("apache", spec, _apache_tokens(text))
    return _compile("nginx", spec, _nginx_tokens(text))


def _apache_tokens(text: str) -> list[str | _Field]:
    tokens: list[str | _Field] = []
    pos = 0
    while (start := text.find("%", pos)) >= 0:
        tokens.append(text[pos:start])
        match = _APACHE_DIRECTIVE.match(text, start)
        if match is None:
            if "{" in text[start:start + 2] and "}" not in text[start:]:
                raise ConfigError(f"unterminated '%{{' at position {start} of the LogFormat: close it with '}}'")
            raise ConfigError(f"unknown Apache LogFormat directive {text[start:start + 2]!r} at position {start}: "
                              "write %% for a literal %, see httpd.apache.org/docs/current/mod/mod_log_config.html")
        tokens.append("%" if match[2] == "%" else _apache_field(match[0], match[1], match[2]))
        pos = match.end()
    tokens.append(text[pos:])
    return tokens


def _apache_field(directive: str, modifiers: str, letter: str) -> _Field:
    braces = re.findall(r"\{([^}]*)\}", modifiers)
    param = braces[-1] if braces else None
    if letter in ("i", "C") and not param:
        example = "%{User-Agent}i" if letter == "i" else "%{JSESSIONID}C"
        raise ConfigError(f"Apache directive {directive!r} needs a name in braces, e.g. {example}")
    if letter == "i":
        header = param.lower()
        return _Field({"referer": "referer", "user-agent": "user_agent"}.get(header, "header:" + header))
    if letter == "C":
        return _Field("cookie:" + param)
    if letter == "t":
        return _apache_time(param)
    if letter == "T":
        unit = {None: "s", "s": "s", "ms": "ms", "us": "us"}.get(param)
        if unit is None:
            raise ConfigError(f"Apache directive {directive!r}: the unit must be s, ms or us, e.g. %{{ms}}T")
        return _Field("duration_" + unit)
    if letter == "p":
        return _Field("server_port" if param in (None, "canonical", "local") else "ignored")
    if letter in _APACHE_FIELDS:
        return _Field(_APACHE_FIELDS[letter])
    if letter in _APACHE_IGNORED:
        return _Field("ignored")
    raise ConfigError(f"unknown Apache LogFormat directive {directive!r}: see "
                      "httpd.apache.org/docs/current/mod/mod_log_config.html (write %% for a literal %)")


def _apache_time(param: str | None) -> _Field:
    """%t writes its own brackets; %{sec}t and friends are numbers; other %{...}t are strftime formats, read with
    DuckDB's strptime (a sub-second %{usec_frac}t / %{msec_frac}t beside one is added to it)."""
    if param is None:
        return _Field("time_clf", r"\[([^\]]*)\]")
    form = param.removeprefix("begin:").removeprefix("end:")
    if form in ("sec", "msec", "usec"):
        return _Field({"sec": "time_epoch", "msec": "time_epoch_ms", "usec": "time_epoch_us"}[form])
    if form in ("msec_frac", "usec_frac"):
        return _Field({"msec_frac": "time_frac_ms", "usec_frac": "time_frac_us"}[form], "([0-9]*)")
    if form.strip() == "%s":
        return _Field("time_epoch")
    strptime = strptime_format(form)
    words = len(form.split())       # a strftime format with spaces: as many words, no more
    return _Field(STRFTIME_PREFIX + strptime, "(" + " +".join([_WORD + "*"] * words) + ")" if words > 1 else "")


STRFTIME_PREFIX = "time_strftime:"   # the field of an Apache %{format}t: the rest of its name is the strptime format
# glibc's composite conversions, which Apache's strftime writes and DuckDB's strptime does not read
_STRFTIME_COMPOSITES = {"%F": "%Y-%m-%d", "%T": "%H:%M:%S", "%D": "%m/%d/%y", "%R": "%H:%M", "%r": "%I:%M:%S %p",
                        "%h": "%b", "%e": "%-d", "%k": "%-H", "%l": "%-I"}


def strptime_format(form: str) -> str:
    """The DuckDB strptime format of an Apache ``%{form}t`` (glibc composites such as %F %T spelled out), checked by
    DuckDB itself: a conversion it cannot read is refused here, not at the first line."""
    import duckdb

    converted = re.sub(r"%.", lambda m: _STRFTIME_COMPOSITES.get(m[0], m[0]), form)
    try:
        with duckdb.connect(":memory:") as con:
            con.execute("SELECT try_strptime('', $format)", {"format": converted})
    except duckdb.Error as error:
        raise ConfigError(f"Apache time format %{{{form}}}t: DuckDB's strptime cannot read it "
                          f"({str(error).splitlines()[0]}); use the conversions of "
                          "duckdb.org/docs/sql/functions/dateformat, or %t / %{sec}t") from None
    return converted


def _nginx_tokens(text: str) -> list[str | _Field]:
    tokens: list[str | _Field] = []
    pos = 0
    for match in _NGINX_VARIABLE.finditer(text):
        tokens.append(text[pos:match.start()])
        variable = match[1] or match[2]
        tokens.append(_Field(_nginx_field(variable)))
        pos = match.end()
    if "${" in text[pos:]:
        raise ConfigError(f"unterminated nginx variable at position {text.index('${', pos)}: "
                          "close '${name' with '}'")
    tokens.append(text[pos:])
    return tokens


def _nginx_field(variable: str) -> str:
    if variable in _NGINX_FIELDS:
        return _NGINX_FIELDS[variable]
    if variable.startswith("http_") and len(variable) > 5:
        return "header:" + variable[5:].lower().replace("_", "-")
    if variable.startswith("cookie_") and len(variable) > 7:
        return "cookie:" + variable[7:]
    return "ignored"


def _compile(name: str, spec: str, tokens: list[str | _Field]) -> LineFormat:
    """Join literals and fields; a field's pattern depends on the literals around it."""
    tokens = _merge_literals(tokens)
    fields = [t for t in tokens if isinstance(t, _Field)]
    if not fields:
        raise ConfigError(f"log format {spec[:60]!r} has no field: use %-directives (Apache, e.g. %h) "
                          "or $variables (nginx, e.g. $remote_addr), or a preset such as combined")
    parts = ["^"]
    in_quotes = False
    for i, token in enumerate(tokens):
        if isinstance(token, str):
            parts.append(_literal(token))
            in_quotes ^= token.count('"') % 2 == 1
            continue
        before = tokens[i - 1] if i > 0 and isinstance(tokens[i - 1], str) else ""
        after = tokens[i + 1] if i + 1 < len(tokens) and isinstance(tokens[i + 1], str) else ""
        parts.append(token.pattern or "(" + _value_pattern(token.name, in_quotes, before, after) + ")")
    parts.append(_END)
    return LineFormat(name=name, spec=spec, regex="".join(parts), fields=tuple(f.name for f in fields))


def _merge_literals(tokens: list[str | _Field]) -> list[str | _Field]:
    merged: list[str | _Field] = []
    for token in tokens:
        if isinstance(token, str) and merged and isinstance(merged[-1], str):
            merged[-1] += token
        elif token != "":
            merged.append(token)
    return merged


def _value_pattern(field: str, in_quotes: bool, before: str, after: str) -> str:
    free = field in _FREE_TEXT or field.startswith("header:")
    if in_quotes:
        if before.endswith('"') and after.startswith('"'):
            return _REQUEST if field == "request_line" else _QUOTED
        if free:
            return _QUOTED + "?"
        return _QUOTED_PATH if field == "path" else _QUOTED_WORD
    if before.endswith("[") and after.startswith("]"):
        return r"[^\]]*"
    if free:
        return ".*?"
    if field == "time_clf":                       # unbracketed $time_local: '10/Oct/2000:13:55:36 -0700'
        return f"{_WORD}* +{_WORD}*"
    if field == "path":
        return r"[^?\t\n\v\f\r ]*"
    if field == "status":
        return "[0-9]{3}|-"
    if field == "bytes":
        return "[0-9]+|-"
    return _WORD + "*"


def _literal(text: str) -> str:
    """Regex for literal spec text: metacharacters escaped, each run of spaces as ' +'."""
    out = []
    for run in re.split("( +)", text):
        out.append(" +" if run.startswith(" ") else re.sub(r"([\\.^$*+?{}\[\]|()])", r"\\\1", run))
    return "".join(out)
