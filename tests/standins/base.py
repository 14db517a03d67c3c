"""Shared machinery for loopback HTTP stand-ins.

Integration tests exercise the engine's real HTTP clients against these servers over real
sockets, so the stand-ins speak genuine HTTP/1.1 (keep-alive, Content-Length on every answer)
instead of being mocked at the transport level. Only the standard library is used so the
stand-ins can also run inside a bare Python container (see ``__main__``).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# Methods routed to ``StandInServer.handle``; every stand-in sees every verb so that
# "wrong method" behaviour is decided by the stand-in, not by http.server's default 501.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it (kept for assertions in tests)."""

    method: str
    # Raw path as sent on the wire (percent-encoding preserved), without the query string:
    # tests can then assert exactly how the client encoded it.
    path: str
    query: dict[str, list[str]]
    # Lower-cased names because HTTP header names are case-insensitive; duplicates are joined
    # with ", " as RFC 9110 allows.
    headers: dict[str, str]
    body: bytes
    # Wall-clock arrival (time.time()): lets tests measure spacing, e.g. rate limits.
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        """Parse the body as JSON (raises ``ValueError`` if it is not JSON)."""
        return json.loads(self.body)

    def bearer_token(self) -> str | None:
        """The token from ``Authorization: Bearer <token>``, or None if absent/malformed."""
        return parse_bearer(self.headers.get("authorization"))


@dataclass
class Response:
    """An answer a stand-in sends back."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Scripted:
    """One scripted answer: `response` (None: the normal answer), after applying the request's
    effect first (`apply_first`), held back `delay_s` seconds after the effect."""

    response: Response | None
    apply_first: bool = False
    delay_s: float = 0.0


def parse_bearer(value: str | None) -> str | None:
    """Extract a bearer token; the scheme is case-insensitive per RFC 6750/9110."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def json_response(
    status: int,
    payload: object,
    headers: Mapping[str, str] | None = None,
    content_type: str = JSON_CONTENT_TYPE,
) -> Response:
    """Build a JSON answer with the Content-Type real JSON APIs send."""
    merged = {"Content-Type": content_type}
    if headers:
        merged.update(headers)
    return Response(status, json.dumps(payload).encode("utf-8"), merged)


def _to_response(
    status: int, headers: Mapping[str, str] | None, body: bytes | dict[str, Any] | None
) -> Response:
    if isinstance(body, dict):
        return json_response(status, body, headers)
    return Response(status, body or b"", dict(headers or {}))


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that remembers live connections so ``stop()`` can cut them.

    Without this, keep-alive connections would keep their handler threads blocked in
    ``readline`` after shutdown and clients would not notice the stand-in went away.
    """

    daemon_threads = True
    # Lets a stopped stand-in be restarted on the same port (outage/recovery tests).
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: StandInServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer (timeouts, stop()) are expected in fault tests; only
        # report genuinely unexpected errors.
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # resets, broken pipes, socket timeouts
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so clients can reuse connections; every answer therefore carries Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # would add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
        self.server.owner._connection_opened()

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        # The peer or stop() may already have closed the socket; nothing left to flush then.
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        # Silence per-request access logs; tests inspect ``requests`` instead.
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Consume optional trailers up to the blank line ending the message.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=self._read_body(),
        )
        response = self.server.owner._answer(request)
        self._write(response)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        has_length = False
        for name, value in response.headers.items():
            if name.lower() == "content-length":
                has_length = True
            self.send_header(name, value)
        # 1xx/204/304 must not carry a body (RFC 9110), so never send one for them.
        no_body_status = response.status < 200 or response.status in (204, 304)
        body = b"" if no_body_status else response.body
        if not has_length and response.status != 204 and not response.status < 200:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._dispatch)


class StandInServer:
    """Base class: a threaded loopback HTTP server that records requests.

    Subclasses implement :meth:`handle`. Use as a context manager or call ``start``/``stop``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        # Seconds every answer is held back (slow-dependency tests); read on each request.
        self.delay_s: float = 0.0
        self._lock = threading.Lock()
        self._requests_changed = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        # Scripted answers consumed in FIFO order before normal handling.
        self._injected: list[_Scripted] = []
        self._server: _Server | None = None
        self._connections_opened = 0
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread. Restarting after ``stop()`` reuses the port."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), self)
        # Remember the actual port so a restart comes back at the same base_url.
        self._requested_port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self._requested_port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open keep-alive connections so clients see the outage."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        with server.connections_lock:
            connections = list(server.connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Run in the foreground until interrupted (used by ``python -m tests.standins``)."""
        self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- recording -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot (copy) of all requests received so far, including failed/injected ones."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests arrived (engine calls are asynchronous)."""
        with self._requests_changed:
            if not self._requests_changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(
                    f"{type(self).__name__}: expected {count} requests, got {len(self._requests)}"
                )
            return list(self._requests)

    @property
    def connection_count(self) -> int:
        """TCP connections accepted so far; lets tests prove keep-alive reuse."""
        with self._lock:
            return self._connections_opened

    def _connection_opened(self) -> None:
        with self._lock:
            self._connections_opened += 1

    def clear(self) -> None:
        """Forget recorded requests and pending injected failures (subclasses extend)."""
        with self._lock:
            self._requests.clear()
            self._injected.clear()

    # -- fault injection -----------------------------------------------------------------

    def fail_next(
        self,
        count: int,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes | dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``count`` requests with this response instead of the normal one.

        Calls queue up in order, so ``fail_next(1, 503); fail_next(1, 429)`` yields a 503 and
        then a 429. A dict body is sent as JSON.
        """
        self.inject(count, _to_response(status, headers, body))

    def inject(self, count: int, response: Response, *, apply_first: bool = False) -> None:
        """Queue ``count`` copies of an arbitrary response (base of ``fail_next``);
        ``apply_first``: the request's effect is applied (``handle``) before it is answered."""
        self._script(
            count,
            lambda: _Scripted(
                Response(response.status, response.body, dict(response.headers)), apply_first
            ),
        )

    def fail_after_applying(
        self,
        count: int,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes | dict[str, Any] | None = None,
    ) -> None:
        """The next ``count`` requests take effect (the row is written, the page created) and
        are then answered with this failure, as a provider whose 5xx came after the work."""
        self.inject(count, _to_response(status, headers, body), apply_first=True)

    def answer_late(self, count: int, delay_s: float) -> None:
        """The next ``count`` requests take effect at once, and their answer comes
        ``delay_s`` later: a client that times out first never learns that it worked."""
        self._script(count, lambda: _Scripted(None, apply_first=True, delay_s=delay_s))

    def _script(self, count: int, make: Callable[[], _Scripted]) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._lock:
            self._injected.extend(make() for _ in range(count))

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return len(self._injected)

    # -- request handling ----------------------------------------------------------------

    def _answer(self, request: RecordedRequest) -> Response:
        with self._requests_changed:
            self._requests.append(request)
            injected = self._injected.pop(0) if self._injected else None
            self._requests_changed.notify_all()
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        if injected is None:
            return self._handled(request)
        applied = self._handled(request) if injected.apply_first else None
        if injected.delay_s > 0:
            time.sleep(injected.delay_s)
        return injected.response or applied or self._handled(request)

    def _handled(self, request: RecordedRequest) -> Response:
        try:
            return self.handle(request)
        except Exception as exc:  # a stand-in bug must surface as a visible 500, not a hang
            return json_response(500, {"error": "stand-in crashed", "detail": repr(exc)})

    def handle(self, request: RecordedRequest) -> Response:
        """Produce the normal answer; runs on a server thread (guard shared state)."""
        return json_response(404, {"error": "not found"})
