"""The operations endpoints on EXECUTION_HTTP_PORT: /healthz, /readyz, /metrics.

A deliberately tiny HTTP/1.1 server on asyncio streams: three GET routes, one response per
connection, no framework. It runs on the engine's event loop, so /healthz answering means the
loop is not stuck, and /readyz and /metrics read the engine's state without locking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable

from consumer.ops.health import Readiness
from consumer.ops.logging import get_logger
from consumer.ops.metrics import EngineMetrics
from consumer.ops.settings import OpsSettings

# generate_latest() writes the classic text format (names escaped with underscores), which every
# Prometheus version reads under this type; newer clients label it 1.0.0, which 2.x rejects.
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_HEADER_BYTES = 8192
_READ_TIMEOUT_S = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"


class OpsServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        render_metrics: Callable[[], bytes],
        readiness: Callable[[], Readiness],
    ) -> None:
        self._host = host
        self._port = port
        self._render_metrics = render_metrics
        self._readiness = readiness
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (the one the OS chose when configured with 0)."""
        if self._server is None:
            raise RuntimeError("the ops server is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=_MAX_HEADER_BYTES
        )
        get_logger().info("ops.listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body = self._route(head)
            method = head.split(b" ", 1)[0]
            writer.write(_response(status, content_type, body, with_body=method != b"HEAD"))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sends nothing useful gets nothing
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _route(self, head: bytes) -> tuple[int, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return 400, "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if target not in (b"/healthz", b"/readyz", b"/metrics"):
            return 404, "text/plain", b"not found; try /healthz, /readyz or /metrics\n"
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if target == b"/healthz":
            return 200, "text/plain", b"ok\n"
        if target == b"/readyz":
            readiness = self._readiness()
            body = json.dumps({"ready": readiness.ready, "reason": readiness.reason}).encode()
            return (200 if readiness.ready else 503), "application/json", body + b"\n"
        return 200, METRICS_CONTENT_TYPE, self._render_metrics()


def _response(status: int, content_type: str, body: bytes, *, with_body: bool = True) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + (body if with_body else b"")


@contextlib.asynccontextmanager
async def serve_ops(
    settings: OpsSettings, metrics: EngineMetrics, readiness: Callable[[], Readiness]
) -> AsyncIterator[OpsServer | None]:
    """The ops server for the duration of the engine's run (None when disabled): it is handed
    what it observes, never the engine."""
    if not settings.http_enabled:
        yield None
        return
    server = OpsServer(
        settings.http_host,
        settings.http_port,
        render_metrics=metrics.render,
        readiness=readiness,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
