"""HTTP/1.1 on asyncio's transports: what `HttpClient` sends and reads (its pool of connections
is `actions.http.pool`).

A general client's per-request machinery (a request object with header multidicts rebuilt
several times, a response parser made per request, trace and timer hooks) costs several times
what the event loop and the sockets themselves cost per call (`python -m bench.io_path`). The
engine needs little of it: no cookies, redirects, auth helpers, uploads or websockets. So this
module does the one thing needed: a
request written as bytes on a kept-alive connection, and its answer framed and parsed by
`httptools` (llhttp, one parser per connection) under the engine's strict rules (`Answer`),
the body streamed to `read_capped` with the transport paused while a read chunk waits (memory
stays one chunk plus the cap).

An idempotent request that finds its kept-alive connection closed before any byte of an answer
came is sent once more on a new connection (RFC 9112 9.3.1); others fail as `ConnectionLost`
(sent).
"""

from __future__ import annotations

import asyncio
import re
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from actions.http.errors import BadResponse, ConnectionLost

# A response head larger than this is refused (aiohttp's limits were 8190 per line).
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADER_LINES = 128
# Buffered body bytes above which the transport stops reading until the reader catches up.
READ_HIGH_WATER = 256 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
# Methods whose request carries a Content-Length even without a body (as aiohttp did).
_LENGTH_ALWAYS = frozenset({"POST", "PUT", "PATCH"})

# Field names, one a line: each a token.
_FIELD_NAMES = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\n[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")
# Control characters but HTAB, and DEL: never in a field value (obs-fold and bare CR/LF are
# llhttp's to refuse).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

Origin = tuple[str, str, int]
# What a connection is pooled under: (partition, scheme, host, port); the partition is the
# project for a client that serves tenant-chosen URLs, "" otherwise.
PoolKey = tuple[str, str, str, int]


class Closed(Exception):
    """The connection ended; `answered`: some of an answer had arrived before it did."""

    def __init__(self, answered: bool) -> None:
        super().__init__("connection closed")
        self.answered = answered


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: bytes in a buffer, a waiter woken when more arrive."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.key: PoolKey = ("", *origin)
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        # Reads its answers (one parser per connection, as llhttp is made to be used).
        self.answer: Answer | None = None

    # -- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any event loop's transport (uvloop's are not asyncio.Transport subclasses).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_HIGH_WATER and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.transport = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- used by a request

    @property
    def usable(self) -> bool:
        """Idle and still open: nothing unread, no end seen."""
        return not self.ended and self.transport is not None and not self.buffer

    def close(self) -> None:
        self.ended = True
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    async def more(self) -> None:
        """Wait until more bytes arrived or the connection ended."""
        if self.ended:
            raise Closed(answered=bool(self.buffer))
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data


class _NoBody(Exception):
    """Stops the parser at the head of an answer to HEAD (httptools cannot be told that such
    an answer has no body; llhttp knows it for 1xx, 204 and 304 itself)."""


class _BytesAfter(Exception):
    """Stops the parser at bytes that follow a complete answer."""


class Answer:
    """An answer as `httptools` (llhttp) frames and parses it, under the engine's rules: every
    field a token name and a value without control characters, the head and the framing
    around the body (chunk lines, trailers) each within `MAX_HEAD_BYTES`, at most
    `MAX_HEADER_LINES` fields, no status below 100, no protocol switch, interim 1xx answers
    skipped. Its body comes out through `readany` (a `ChunkSource`)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._parser = httptools.HttpResponseParser(self)
        # An answer framed by Transfer-Encoding beside Content-Length is read as chunked
        # (RFC 9112 6.3) and its connection then closed (below), not refused.
        self._parser.set_dangerous_leniencies(lenient_chunked_length=True)
        # The parser is kept for the connection's next answer unless it was stopped.
        self.spent = False
        self._raw: list[bytes] = []
        self._body: list[bytes] = []

    def begin(self, method: str) -> None:
        """Ready for the answer to a `method` request."""
        self._head_only = method == "HEAD"
        self.status = self._lengths = self._codings = self._trailer_bytes = 0
        self.headers: CIMultiDictProxy[str] = _NO_HEADERS
        self._raw.clear()  # name, value, name, value...
        self._fed = self._fed_before = 0  # bytes fed to the parser (before the current feed)
        self._started_at = 0  # _fed_before when the current message began
        self._head_done = self._keep_alive = self.complete = False
        self._framing_fed = -1  # _fed after the feed that held the end of the head
        self._framing_body = 0  # _body_size then
        self._body.clear()
        self._body_size = self._chunks = 0

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            raise _BytesAfter  # never a second answer unasked
        self._started_at = self._fed_before

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._head_done:
            self._raw += (name, value)  # checked together when the head is complete
            return
        # A trailer field: checked, bounded like a head, never used.
        self._trailer_bytes += len(name) + len(value) + 4
        if self._trailer_bytes > MAX_HEAD_BYTES:
            raise BadResponse("the chunked body's trailer section is too large")
        if _FIELD_NAMES.fullmatch(name) is None or _CONTROL.search(value) is not None:
            raise BadResponse("a header field is malformed or holds a control character")

    def on_headers_complete(self) -> None:
        raw = self._raw
        if len(raw) > 2 * MAX_HEADER_LINES:
            raise BadResponse("the answer has too many header fields")
        if sum(map(len, raw)) + 2 * len(raw) > MAX_HEAD_BYTES:
            raise BadResponse("the answer's head is too large")
        names = b"\n".join(raw[0::2])
        values = raw[1::2]
        if raw and (
            _FIELD_NAMES.fullmatch(names) is None or _CONTROL.search(b"".join(values)) is not None
        ):
            raise BadResponse("a header field is malformed or holds a control character")
        status = self._parser.get_status_code()
        if status < 100:
            raise BadResponse("the answer's status code is below 100")
        if status < 200:  # interim (100 Continue, 103 Early Hints): the real answer follows
            raw.clear()
            return
        self.status = status
        texts = names.decode("ascii").split("\n") if raw else []
        lowered = names.lower()
        if b"content-length" in lowered or b"transfer-encoding" in lowered:
            for name in texts:
                lower = name.lower()
                self._lengths += lower == "content-length"
                self._codings += lower == "transfer-encoding"
        self.headers = CIMultiDictProxy(
            CIMultiDict(
                zip(
                    texts,
                    [v.decode("utf-8", "surrogateescape").strip(" \t") for v in values],
                    strict=True,
                )
            )
        )
        self._head_done = True
        if self._head_only:
            said = ",".join(self.headers.getall("Connection", ())).lower()
            if self._parser.get_http_version() == "1.1":
                self._keep_alive = "close" not in said
            else:
                self._keep_alive = "keep-alive" in said
            raise _NoBody

    def on_body(self, data: bytes) -> None:
        if not data:
            return
        self._body.append(data)
        self._body_size += len(data)

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_message_complete(self) -> None:
        if self._head_done:
            self.complete = True
            self._keep_alive = self._parser.should_keep_alive()

    # -- reading

    @property
    def reusable(self) -> bool:
        return (
            self.complete
            and self._keep_alive
            and not self._connection.ended
            and not self._connection.buffer
            # Transfer-Encoding beside a Content-Length may be an attempt at response
            # splitting; HTTP/1.0 has no Transfer-Encoding (RFC 9112 6.1, 6.3): either way
            # the connection is not used again.
            and not (self._codings and (self._lengths or self._parser.get_http_version() == "1.0"))
        )

    async def read_head(self) -> None:
        connection = self._connection
        while not self._head_done:
            if not connection.buffer:
                if self._fed - self._started_at > MAX_HEAD_BYTES:
                    raise BadResponse("the answer's head is too large")
                try:
                    await connection.more()
                except Closed:
                    raise Closed(answered=self._fed > 0) from None
                continue
            self._feed()

    def _feed(self) -> None:
        buffer = self._connection.buffer
        end = buffer.find(b"\r\n\r\n") if self._head_only else -1
        if end >= 0:
            # An answer to HEAD ends with its head (llhttp refuses a head ending otherwise):
            # one head at a time, so what follows stays unread and the connection unused.
            data = bytes(buffer[: end + 4])
            del buffer[: end + 4]
        else:
            data = bytes(buffer)
            buffer.clear()
        self._fed_before = self._fed
        self._fed += len(data)
        try:
            self._parser.feed_data(data)
        except _PARSER_ERRORS as exc:
            self.spent = True  # a parser stopped by a callback or an error is not used again
            cause = exc.__context__
            if isinstance(cause, _NoBody):
                self.complete = True
                return
            if isinstance(cause, _BytesAfter):
                self._keep_alive = False  # the answer stands; its connection is not used again
                return
            if isinstance(cause, BadResponse):
                raise cause from None
            if isinstance(exc, httptools.HttpParserUpgrade):
                raise BadResponse("the server switched protocols") from None
            raise BadResponse(f"the answer is malformed ({_reason(exc)})") from None
        if self._head_done and not self.complete:
            if self._framing_fed < 0:
                self._framing_fed, self._framing_body = self._fed, self._body_size
                return
            framing = (self._fed - self._framing_fed) - (self._body_size - self._framing_body)
            if framing > MAX_HEAD_BYTES + _CHUNK_LINE_BYTES * self._chunks:
                raise BadResponse("the chunked body's framing or trailer section is too large")

    async def readany(self) -> bytes:
        """Some of the body (b"" at its end); `ConnectionLost` when it is cut short."""
        connection = self._connection
        while not self._body:
            if self.complete:
                return b""
            if not connection.buffer:
                try:
                    await connection.more()
                except Closed:
                    if self._until_close():
                        self.complete = True
                        self._keep_alive = False
                        return b""
                    raise ConnectionLost("the answer was cut short", sent=True) from None
                continue
            self._feed()
        data = b"".join(self._body) if len(self._body) > 1 else self._body[0]
        self._body.clear()
        return data

    def _until_close(self) -> bool:
        """The body is framed by the connection's end: neither a length nor chunked coding."""
        if self._codings:
            codings = self.headers.getall("Transfer-Encoding")
            return ",".join(codings).rsplit(",", 1)[-1].strip().lower() != "chunked"
        return not self._lengths


_NO_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_PARSER_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)
# What a chunk's size line and CRLFs may take beside its data (16 hex digits and CRLFs).
_CHUNK_LINE_BYTES = 32


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text[:80] if text.isascii() and text.isprintable() else type(exc).__name__


async def read_answer(connection: Connection, method: str) -> Answer:
    """The next answer's head (interim 1xx answers skipped); raises `Closed` if the
    connection ends first, `BadResponse` for what is not an HTTP/1.x answer."""
    answer = connection.answer
    if answer is None or answer.spent:
        answer = connection.answer = Answer(connection)
    answer.begin(method)
    await answer.read_head()
    return answer


def request_head(
    method: str,
    target: str,
    host: str,
    headers: list[tuple[str, str]],
    body: bytes | None,
    *,
    defaults: list[tuple[str, str]],
) -> bytes:
    """The request line and header fields, as sent: Host first (a caller's Host replaces it),
    the caller's fields in their order, then each default the caller did not give. A
    Content-Length the caller gave is replaced by the body's own; Transfer-Encoding is never
    sent (the body is always whole)."""
    given = set()
    host_value = host
    fields: list[str] = []
    for name, value in headers:
        lower = name.lower()
        if lower == "host":
            host_value = value
        elif lower not in ("content-length", "transfer-encoding"):
            fields.append(f"{name}: {value}\r\n")
        given.add(lower)
    for name, value in defaults:
        if name.lower() not in given:
            fields.append(f"{name}: {value}\r\n")
    if body is not None:
        fields.append(f"Content-Length: {len(body)}\r\n")
    elif method in _LENGTH_ALWAYS:
        fields.append("Content-Length: 0\r\n")
    head = f"{method} {target} HTTP/1.1\r\nHost: {host_value}\r\n{''.join(fields)}\r\n"
    return head.encode("utf-8")
