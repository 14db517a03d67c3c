"""HTTP/1.1 on asyncio's transports: what `HttpClient` sends and reads (its pool of connections
is `actions.http.pool`).

Measured at 200 calls in flight (`python -m bench.io_path`), aiohttp's per-request machinery
(a session request, a `ClientRequest` with its header multidicts rebuilt three times, a response
parser made per request, trace and timer hooks) cost three to four times what the event loop
and the sockets themselves cost per call. The client needs little of it: no proxies, cookies,
redirects, auth helpers, uploads or websockets. So this module does the one thing needed: a
request written as bytes on a kept-alive connection, the answer's head parsed strictly, its body
framed by Content-Length, chunked coding or the connection's end, streamed to `read_capped`
with the transport paused while a read chunk waits (memory stays one chunk plus the cap).

Connections are pooled per origin (scheme, host, port). An idempotent request that finds its
kept-alive connection closed before any byte of an answer came is sent once more on a new
connection (RFC 9112 9.3.1); others fail as `ConnectionLost` (sent).
"""

from __future__ import annotations

import asyncio
import re
from typing import cast

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

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\r\n]*))?")
# Header fields: lines of `token ":" value`, the value without control characters (HTAB aside).
_FIELDS = re.compile(
    rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\x00-\x08\x0a-\x1f\x7f]*"
    rb"(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\x00-\x08\x0a-\x1f\x7f]*)*"
)
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")

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


class Answer:
    """A response head, and its body as a `ChunkSource` (`readany`)."""

    def __init__(
        self,
        connection: Connection,
        status: int,
        headers: CIMultiDictProxy[str],
        keep_alive: bool,
        framing: tuple[str, int],
    ) -> None:
        self.status = status
        self.headers = headers
        self._connection = connection
        self._keep_alive = keep_alive
        self._mode, self._left = framing  # ("length", n) | ("chunked", 0) | ("close", 0)
        self._chunk_left = -1  # chunked: bytes left of the current chunk; -1 before a size
        self.complete = self._mode == "length" and self._left == 0

    @property
    def reusable(self) -> bool:
        return self.complete and self._keep_alive and not self._connection.ended

    async def readany(self) -> bytes:
        """Some of the body (b"" at its end); `ConnectionLost` when it is cut short."""
        if self.complete:
            return b""
        try:
            if self._mode == "length":
                return await self._read_length()
            if self._mode == "chunked":
                return await self._read_chunked()
            return await self._read_to_close()
        except Closed:
            raise ConnectionLost("the answer was cut short", sent=True) from None

    async def _read_length(self) -> bytes:
        connection = self._connection
        while not connection.buffer:
            await connection.more()
        data = connection.take(self._left)
        self._left -= len(data)
        self.complete = self._left == 0
        return data

    async def _read_to_close(self) -> bytes:
        connection = self._connection
        while not connection.buffer:
            if connection.ended:
                self.complete = True
                return b""
            try:
                await connection.more()
            except Closed:
                self.complete = True
                return b""
        return connection.take(len(connection.buffer))

    async def _read_chunked(self) -> bytes:
        connection = self._connection
        while True:
            if self._chunk_left > 0:
                while not connection.buffer:
                    await connection.more()
                data = connection.take(self._chunk_left)
                self._chunk_left -= len(data)
                return data
            if self._chunk_left == 0:  # the CRLF after a chunk's data
                while len(connection.buffer) < 2:
                    await connection.more()
                if connection.buffer[:2] != b"\r\n":
                    raise BadResponse("the chunked body is malformed (no CRLF after a chunk)")
                del connection.buffer[:2]
                self._chunk_left = -1
            line = await self._line()
            size_text = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise BadResponse("the chunked body is malformed (a bad chunk size)")
            size = int(size_text, 16)
            if size == 0:
                await self._skip_trailers()
                self.complete = True
                return b""
            self._chunk_left = size

    async def _skip_trailers(self) -> None:
        """The trailer section, up to its empty line, bounded like a head (never used)."""
        size = lines = 0
        while line := await self._line():
            size += len(line) + 2
            lines += 1
            if size > MAX_HEAD_BYTES or lines > MAX_HEADER_LINES:
                raise BadResponse("the chunked body's trailer section is too large")

    async def _line(self) -> bytes:
        connection = self._connection
        while True:
            end = connection.buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(connection.buffer[:end])
                del connection.buffer[: end + 2]
                return line
            if len(connection.buffer) > MAX_HEAD_BYTES:
                raise BadResponse("the chunked body is malformed (a line too long)")
            await connection.more()


async def read_answer(connection: Connection, method: str) -> Answer:
    """The next answer's head (interim 1xx answers skipped); raises `Closed` if the
    connection ends first, `BadResponse` for what is not an HTTP/1.x answer."""
    while True:
        buffer = connection.buffer
        end = buffer.find(b"\r\n\r\n")
        while end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise BadResponse("the answer's head is too large")
            await connection.more()
            end = buffer.find(b"\r\n\r\n")
        if end > MAX_HEAD_BYTES:
            raise BadResponse("the answer's head is too large")
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        answer = _parse_head(connection, head, method)
        if answer is not None:
            return answer


def _parse_head(connection: Connection, head: bytes, method: str) -> Answer | None:
    line_end = head.find(b"\r\n")
    status_line, block = (head, b"") if line_end < 0 else (head[:line_end], head[line_end + 2 :])
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise BadResponse("not an HTTP/1.x status line")
    minor, status = match.group(1), int(match.group(2))
    pairs: list[tuple[str, str]] = []
    lengths: list[str] = []
    codings: list[str] = []
    tokens: list[str] = []
    if block:
        # One pass checks every field: a token name, a colon, a value without controls (no
        # folded lines: a line cannot start with a space).
        if _FIELDS.fullmatch(block) is None:
            raise BadResponse("a header field is malformed or holds a control character")
        lines = block.split(b"\r\n")
        if len(lines) > MAX_HEADER_LINES:
            raise BadResponse("the answer has too many header fields")
        for line in lines:
            raw_name, _, raw_value = line.partition(b":")
            name = raw_name.decode("ascii")
            value = raw_value.strip(b" \t").decode("utf-8", "surrogateescape")
            pairs.append((name, value))
            lower = name.lower()
            if lower == "content-length":
                lengths.append(value)
            elif lower == "transfer-encoding":
                codings.append(value)
            elif lower == "connection":
                tokens.append(value.lower())
    if status < 100:
        raise BadResponse("the answer's status code is below 100")
    if 100 <= status < 200:
        if status == 101:
            raise BadResponse("the server switched protocols")
        return None  # interim (100 Continue, 103 Early Hints): the real answer follows
    said = ",".join(tokens)
    keep_alive = "close" not in said if minor == b"1" else "keep-alive" in said
    framing = _framing(lengths, codings, status, method)
    # Transfer-Encoding beside a Content-Length frames the answer (RFC 9112 6.3) but may be an
    # attempt at response splitting: the connection is not used again.
    # HTTP/1.0 has no Transfer-Encoding: an answer framed with it ends its connection (RFC
    # 9112 6.1).
    if framing[0] == "close" or (codings and (lengths or minor == b"0")):
        keep_alive = False
    return Answer(connection, status, CIMultiDictProxy(CIMultiDict(pairs)), keep_alive, framing)


def _framing(lengths: list[str], codings: list[str], status: int, method: str) -> tuple[str, int]:
    if method == "HEAD" or status in (204, 304):
        return ("length", 0)
    if codings:
        last = ",".join(codings).split(",")[-1].strip().lower()
        return ("chunked", 0) if last == "chunked" else ("close", 0)
    if len(lengths) == 1 and lengths[0].isdigit() and lengths[0].isascii():
        return ("length", int(lengths[0]))  # the usual case
    values = {v.strip() for v in ",".join(lengths).split(",")}
    values.discard("")
    if not values:
        return ("close", 0)
    if len(values) > 1 or not all(v.isdigit() and v.isascii() for v in values):
        raise BadResponse("the answer's Content-Length is invalid")
    return ("length", int(values.pop()))


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
