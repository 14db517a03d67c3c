"""structlog, configured once: JSON lines on stdout, the same events on the logs topic.

The processor chain is the whole behaviour, top to bottom. Redaction runs last before rendering,
so nothing added by an earlier processor can escape it. Events bound for Kafka go into a bounded
queue that a background task drains in batches: logging never awaits the broker, and a slow or
absent broker costs dropped log events (counted), never a stalled envelope.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from consumer.redaction import REDACTOR
from schemas import format_timestamp

SERVICE = "execution-engine"
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class LogProducer(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes | None) -> Any: ...


class KafkaLogSink:
    """Bounded queue of rendered events, drained to the logs topic by `run()`."""

    def __init__(self, max_queued: int = 10_000) -> None:
        self._queue: deque[tuple[bytes | None, bytes]] = deque(maxlen=max_queued)
        self._wakeup: asyncio.Event | None = None
        self.dropped = 0

    def put(self, key: bytes | None, value: bytes) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append((key, value))
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self, producer: LogProducer, topic: str) -> None:
        """Drain until cancelled; `flush()` sends what is left at shutdown."""
        self._wakeup = asyncio.Event()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self.flush(producer, topic)

    async def flush(self, producer: LogProducer, topic: str) -> None:
        pending = []
        while self._queue:
            key, value = self._queue.popleft()
            try:
                pending.append(await producer.send(topic, value, key))
            except Exception as exc:  # the broker is away: count, never raise into the engine
                self.dropped += 1
                print(
                    f'{{"event": "logs.send_failed", "error": "{type(exc).__name__}"}}',
                    file=sys.stderr,
                )
        if pending:
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
            self.dropped += sum(isinstance(o, BaseException) for o in outcomes)


def add_timestamp(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["timestamp"] = format_timestamp(datetime.now(UTC))
    return event


def add_service(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event.setdefault("service", SERVICE)
    return event


def normalise_level(_: WrappedLogger, method: str, event: EventDict) -> EventDict:
    level = event.get("level", method)
    event["level"] = "warning" if level in ("warn", "exception") else level
    if method == "exception":
        event["level"] = "error"
    return event


def redact(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    scrubbed: dict[str, Any] = REDACTOR.scrub_value(event)
    return scrubbed


# Characters JSON leaves raw that line-based tools treat as line breaks (U+2028, U+2029, NEL),
# terminals as control sequences (DEL, C1 such as CSI), or UTF-8 cannot encode (lone
# surrogates): escaped, so one event is always one line of valid UTF-8.
_LINE_SAFE = str.maketrans(
    {c: f"\\u{c:04x}" for c in [0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000)]}
)


def render_line(event: EventDict) -> str:
    line = json.dumps(event, default=str, separators=(",", ":"), ensure_ascii=False)
    return line.translate(_LINE_SAFE)


class Renderer:
    """Final processor: render once, write to stdout, queue for Kafka, and stop the chain."""

    def __init__(self, stream: TextIO, sink: KafkaLogSink | None) -> None:
        self.stream = stream
        self.sink = sink

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> str:
        line = render_line(event)
        self.stream.write(line + "\n")
        self.stream.flush()
        if self.sink is not None:
            request_id = event.get("request_id")
            self.sink.put(
                request_id.encode() if isinstance(request_id, str) else None, line.encode()
            )
        raise structlog.DropEvent


def configure_logging(
    level: str = "info", *, sink: KafkaLogSink | None = None, stream: TextIO | None = None
) -> None:
    processors: list[Callable[[WrappedLogger, str, EventDict], EventDict | str]] = [
        structlog.contextvars.merge_contextvars,
        normalise_level,
        add_timestamp,
        add_service,
        structlog.processors.format_exc_info,
        redact,
        Renderer(stream or sys.stdout, sink),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _route_library_logging(level)


class _StructlogHandler(logging.Handler):
    """Library loggers (aiokafka, httpx) go through the same chain, redaction included."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            get_logger().log(
                record.levelno, "library.log", logger=record.name, message=record.getMessage()
            )
        except Exception:
            self.handleError(record)


def _route_library_logging(level: str) -> None:
    root = logging.getLogger()
    root.handlers = [_StructlogHandler()]
    root.setLevel(max(_LEVELS[level], logging.INFO))
    # httpx and httpcore log every request's full URL at INFO/DEBUG: noise, and URLs may carry
    # query-string secrets.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(**bound: Any) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(**bound)
    return logger
