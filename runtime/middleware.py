"""Score every request in front of a Python web app: WSGI and ASGI middleware, stdlib only.

``mode="block"`` answers 403 when the score class reaches ``block_class``
(clean < likely_clean < likely_attack < attack); ``mode="monitor"`` never blocks and
adds the score as a response header. Either way the result is left for the app in
``environ["waflens.result"]`` / ``scope["waflens.result"]``. Up to ``max_body_bytes``
of the body are read for scoring and replayed, so the app still reads all of it.

A scoring error (an exception, or ``score_class == "error"`` from a fail-open scorer)
follows ``on_error``: ``"allow"`` (default, fail open) or ``"block"``; the first one
is logged with its traceback, all are counted in ``errors``.

Block mode sends no score header: a score in every response is an oracle an
attacker can tune payloads against. In monitor mode strip it at the edge if
clients are untrusted.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

from waflens.runtime.hot_swap import ModelWatcher
from waflens.runtime.scorer import DEFAULT_MAX_BODY_BYTES, ScoreResult, Scorer

log = logging.getLogger("waflens.middleware")

CLASS_RANK = {"clean": 0, "likely_clean": 1, "likely_attack": 2, "attack": 3}
BLOCK_BODY = b"Forbidden: request blocked by the web application firewall.\n"
RESULT_KEY = "waflens.result"
_PATH_SAFE = "/!$&'()*+,;=:@~"   # RFC 3986 pchar (besides unreserved): kept as sent by clients


class _Policy:
    """Options, validation and the verdict, shared by both middlewares."""

    def __init__(self, watcher_or_scorer, block_class: str, mode: str, header: str | None,
                 max_body_bytes: int, on_error: str):
        if block_class not in CLASS_RANK:
            raise ValueError(f"block_class={block_class!r}: use one of {', '.join(CLASS_RANK)}")
        if mode not in ("block", "monitor"):
            raise ValueError(f"mode={mode!r}: use 'block' or 'monitor'")
        if on_error not in ("allow", "block"):
            raise ValueError(f"on_error={on_error!r}: use 'allow' (fail open) or 'block'")
        if not isinstance(max_body_bytes, int) or max_body_bytes < 0:
            raise ValueError(f"max_body_bytes={max_body_bytes!r}: use a number of bytes >= 0")
        if isinstance(watcher_or_scorer, ModelWatcher):
            self.watcher, self.scorer = watcher_or_scorer, None
        elif callable(getattr(watcher_or_scorer, "score_request", None)):
            self.watcher, self.scorer = None, watcher_or_scorer
        else:
            raise TypeError(f"expected a ModelWatcher or a Scorer, got {type(watcher_or_scorer).__name__}")
        self.block_rank = CLASS_RANK[block_class]
        self.block_class, self.mode, self.header = block_class, mode, header
        self.max_body_bytes, self.on_error = max_body_bytes, on_error
        self.errors = 0
        self._error_lock = threading.Lock()

    def score(self, method, target, headers, body) -> tuple[ScoreResult | None, bool]:
        """(result, whether to block); (None, on_error == "block") when scoring fails."""
        try:
            if self.watcher is not None:
                self.watcher.maybe_reload()
                scorer = self.watcher.scorer
            else:
                scorer = self.scorer
            result = scorer.score_request(method, target, headers, body)
            if result.score_class == "error":
                raise RuntimeError("the scorer returned score_class='error' (its errors counter has the count)")
        except Exception:
            return self.failed()
        return result, self.mode == "block" and CLASS_RANK.get(result.score_class, -1) >= self.block_rank

    def failed(self) -> tuple[None, bool]:
        """Count a failure, log the first one, and apply ``on_error``."""
        with self._error_lock:
            self.errors += 1
            first = self.errors == 1
        if first:
            log.warning("waflens: scoring failed, %s requests while it fails (on_error=%r); later failures "
                        "are only counted", "letting through" if self.on_error == "allow" else "blocking",
                        self.on_error, exc_info=True)
        return None, self.on_error == "block"

    def header_value(self, result: ScoreResult | None) -> str | None:
        if self.mode != "monitor" or not self.header or result is None:
            return None
        return f"{result.score:.4f}"


def _wire(text: str) -> bytes | str:
    """A WSGI native string (bytes decoded as Latin-1) back to the bytes the client sent."""
    if text.isascii():
        return text
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:   # a server that decoded as UTF-8 already
        return text


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def wsgi_target(environ) -> bytes:
    """The request target as sent: RAW_URI / REQUEST_URI, else SCRIPT_NAME + PATH_INFO re-quoted + query."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return _as_bytes(_wire(raw))
    # PATH_INFO is percent-decoded by the server; quoting it again lets the scorer's decoding see it once
    path = _as_bytes(_wire(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")))
    target = quote(path, safe=_PATH_SAFE).encode("ascii")
    query = environ.get("QUERY_STRING")
    return target + b"?" + _as_bytes(_wire(query)) if query else target


def wsgi_headers(environ) -> dict:
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").title()
        else:
            continue
        headers[name] = _wire(value) if isinstance(value, str) else value
    return headers


class ReplayInput:
    """``wsgi.input`` that serves the bytes already read for scoring, then the rest of the stream.

    With a known Content-Length it never reads past the body (a bare ``read()`` on a
    socket stream would otherwise wait for the client to close).
    """

    def __init__(self, prefix: bytes, stream, remaining: int | None):
        self._prefix = prefix
        self._stream = stream
        self._remaining = remaining   # bytes of the body still in the stream; None = unknown (read to EOF)

    def _from_stream(self, size: int, method: str = "read") -> bytes:
        """read/readline on the stream, never past the body's declared length."""
        if self._remaining is not None:
            size = self._remaining if size < 0 else min(size, self._remaining)
            if size == 0:
                return b""
        call = getattr(self._stream, method)
        data = call(size) if size >= 0 else call()
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        if self._prefix:
            if 0 <= size <= len(self._prefix):
                data, self._prefix = self._prefix[:size], self._prefix[size:]
                return data
            data, self._prefix = self._prefix, b""
            return data + self._from_stream(-1 if size < 0 else size - len(data))
        return self._from_stream(size)

    def readline(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        if self._prefix:
            end = self._prefix.find(b"\n") + 1 or len(self._prefix)
            if 0 <= size < end:
                end = size
            line, self._prefix = self._prefix[:end], self._prefix[end:]
            if line.endswith(b"\n") or self._prefix or len(line) == size:
                return line
            return line + self._from_stream(-1 if size < 0 else size - len(line), "readline")
        return self._from_stream(size, "readline")


    def readlines(self, hint: int = -1) -> list[bytes]:
        lines, total = [], 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        while line := self.readline():
            yield line


def _read_wsgi_body(environ, limit: int) -> bytes:
    """Up to ``limit`` body bytes, re-injected into ``environ["wsgi.input"]``."""
    stream = environ.get("wsgi.input")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    known = length > 0
    if stream is None or (not known and not environ.get("wsgi.input_terminated")):
        return b""   # no body, or no length and no server promise of EOF: reading could block
    want = min(length, limit) if known else limit
    chunks, got = [], 0
    try:
        while got < want:
            chunk = stream.read(want - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    finally:
        prefix = b"".join(chunks)
        environ["wsgi.input"] = ReplayInput(prefix, stream, length - got if known else None)
    return prefix


class _Middleware:
    """What both middlewares hold: the wrapped app and the scoring policy."""

    def __init__(self, app, watcher_or_scorer: ModelWatcher | Scorer, *, block_class: str = "attack",
                 mode: str = "block", header: str | None = "X-Waflens-Score",
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, on_error: str = "allow"):
        self.app = app
        self.policy = _Policy(watcher_or_scorer, block_class, mode, header, max_body_bytes, on_error)

    @property
    def errors(self) -> int:
        return self.policy.errors


class WaflensWSGIMiddleware(_Middleware):
    """WSGI middleware: ``app = WaflensWSGIMiddleware(app, ModelWatcher("models/production"))``."""

    def __call__(self, environ, start_response):
        policy = self.policy
        try:
            body = _read_wsgi_body(environ, policy.max_body_bytes) if policy.max_body_bytes else b""
            method, target, headers = environ.get("REQUEST_METHOD"), wsgi_target(environ), wsgi_headers(environ)
        except Exception:
            result, blocked = policy.failed()
        else:
            result, blocked = policy.score(method, target, headers, body)
        environ[RESULT_KEY] = result
        if blocked:
            start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(BLOCK_BODY)))])
            return [BLOCK_BODY]
        value = policy.header_value(result)
        if value is None:
            return self.app(environ, start_response)

        def start_with_score(status, response_headers, exc_info=None):
            return start_response(status, [*response_headers, (policy.header, value)], exc_info)

        return self.app(environ, start_with_score)


class WaflensASGIMiddleware(_Middleware):
    """ASGI middleware for ``http`` scopes (others pass through): same options as the WSGI one.

    Scoring runs inline on the event loop: it is CPU-only and takes microseconds.
    """

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        policy = self.policy
        buffered, size, more = [], 0, True
        while more and size < policy.max_body_bytes:
            message = await receive()
            buffered.append(message)
            if message.get("type") != "http.request":
                break   # http.disconnect: replay it, the app handles it
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            body = b"".join(m.get("body", b"") for m in buffered if m.get("type") == "http.request")
            path = scope.get("raw_path") or quote(scope.get("path", ""), safe=_PATH_SAFE).encode("ascii")
            query = scope.get("query_string", b"")
            target = path + b"?" + query if query else path
        except Exception:
            result, blocked = policy.failed()
        else:
            result, blocked = policy.score(scope.get("method"), target, scope.get("headers", ()),
                                           body[:policy.max_body_bytes])
        scope = {**scope, RESULT_KEY: result}
        if blocked:
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(BLOCK_BODY)).encode())]})
            await send({"type": "http.response.body", "body": BLOCK_BODY})
            return

        async def replay():
            return buffered.pop(0) if buffered else await receive()

        value = policy.header_value(result)
        if value is None:
            return await self.app(scope, replay, send)
        extra = (policy.header.lower().encode("latin-1"), value.encode("latin-1"))

        async def send_with_score(message):
            if message.get("type") == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), extra]}
            await send(message)

        return await self.app(scope, replay, send_with_score)
