"""structlog, configured once: JSON lines on stdout, the same events on the logs topic.

The processor chain is the whole behaviour, top to bottom. Redaction runs last before rendering,
so nothing added by an earlier processor can escape it; it scrubs with the scope of the record
being processed (`consumer.ops.redaction`), so a record's events carry none of its secrets and
no other tenant's secret is ever a pattern in them. Events bound for Kafka go into a bounded
queue that a background task drains in batches: logging never awaits the broker, and a slow or
absent broker costs dropped log events (counted), never a stalled envelope.

Logging is on every record's path (four events per request), so it is kept cheap: stdout lines
are written once per event-loop iteration, not flushed one by one, and the timestamp's
formatted second is reused within that second.
"""

from __future__ import annotations

import asyncio
import asyncio.events as asyncio_events
import atexit
import contextlib
import json
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, TextIO

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from consumer.ops.broker_events import BROKERS
from consumer.ops.redaction import current_scope
from consumer.partitions.partitioner import FastPartitioner

SERVICE = "execution-engine"
# The event a library's (aiokafka's, httpx's) own log record becomes: stdout only.
LIBRARY_EVENT = "library.log"
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class LogBatch(Protocol):
    """aiokafka's `BatchBuilder`: records appended in place, sent as one."""

    def append(self, *, key: bytes | None, value: bytes, timestamp: int | None) -> Any: ...

    def record_count(self) -> int: ...


class LogProducer(Protocol):
    async def partitions_for(self, topic: str) -> set[int]: ...

    def create_batch(self) -> LogBatch: ...

    async def send_batch(self, batch: LogBatch, topic: str, *, partition: int) -> Any: ...


_PARTITION_CACHE_SIZE = 10_000


class KafkaLogSink:
    """Bounded queue of rendered events, drained to the logs topic by `run()`.

    Events are appended to one record batch per partition and sent batch by batch: ~3 us per
    event instead of ~10 us for `producer.send()` each (four events per request). Partitions
    are chosen as `send()` would (the default partitioner: murmur2 of the key)."""

    def __init__(self, max_queued: int = 10_000) -> None:
        self._queue: deque[tuple[bytes | None, bytes]] = deque(maxlen=max_queued)
        self._wakeup: asyncio.Event | None = None
        self._partitioner = FastPartitioner()
        # A request's events share its key: murmur2 (pure Python) once per key, not per event.
        self._partition_of: dict[bytes, int] = {}
        self._partitions: list[int] = []
        self.dropped = 0

    def put(self, key: bytes | None, value: bytes) -> None:
        self.put_many([(key, value)])

    def put_many(self, events: list[tuple[bytes | None, bytes]]) -> None:
        """Queue events (key, rendered line); past the bound, the oldest are dropped."""
        queue = self._queue
        overflow = len(queue) + len(events) - (queue.maxlen or 0)
        if overflow > 0:
            self.dropped += overflow
        queue.extend(events)
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
        if not self._queue:
            return
        sent: list[tuple[int, Any]] = []  # (records in the batch, delivery future)

        async def send(batch: LogBatch, partition: int) -> None:
            try:
                sent.append(
                    (
                        batch.record_count(),
                        await producer.send_batch(batch, topic, partition=partition),
                    )
                )
            except Exception as exc:  # the broker is away: count, never raise into the engine
                self._lost(batch.record_count(), exc)

        try:
            partitions = sorted(await producer.partitions_for(topic))
        except Exception as exc:
            self._lost(len(self._queue), exc)
            self._queue.clear()
            return
        if partitions != self._partitions or len(self._partition_of) > _PARTITION_CACHE_SIZE:
            self._partitions = partitions
            self._partition_of.clear()
        batches: dict[int, LogBatch] = {}
        while self._queue:
            key, value = self._queue.popleft()
            partition = self._partition(key)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                await send(batch, partition)
                batch = batches[partition] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    self.dropped += 1  # larger than a whole batch: cannot be sent
        for partition, batch in batches.items():
            if batch.record_count():
                await send(batch, partition)
        if sent:
            outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
            self.dropped += sum(
                count
                for (count, _), outcome in zip(sent, outcomes, strict=True)
                if isinstance(outcome, BaseException)
            )

    def _partition(self, key: bytes | None) -> int:
        if key is None:  # spread keyless events, as the producer does
            chosen: int = self._partitioner(None, self._partitions, self._partitions)
            return chosen
        partition = self._partition_of.get(key)
        if partition is None:
            partition = self._partition_of[key] = self._partitioner(
                key, self._partitions, self._partitions
            )
        return partition

    def _lost(self, count: int, exc: Exception) -> None:
        self.dropped += count
        print(f'{{"event": "logs.send_failed", "error": "{type(exc).__name__}"}}', file=sys.stderr)


class _Timestamps:
    """RFC 3339 UTC with milliseconds (as `schemas.format_timestamp`), formatting each second's
    prefix once instead of once per event."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._millisecond = -1
        self._last = ""
        self._last_bytes = b""

    def now(self) -> str:
        millisecond = int(time.time() * 1000)
        if millisecond != self._millisecond:  # a busy loop logs many events per millisecond
            self._advance(millisecond)
        return self._last

    def now_bytes(self) -> bytes:
        """`now()` as the UTF-8 bytes a pre-rendered line is assembled from."""
        millisecond = int(time.time() * 1000)
        if millisecond != self._millisecond:
            self._advance(millisecond)
        return self._last_bytes

    def _advance(self, millisecond: int) -> None:
        second = millisecond // 1000
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._second = second
        self._millisecond = millisecond
        self._last = f"{self._prefix}{millisecond % 1000:03d}Z"
        self._last_bytes = self._last.encode()


_timestamps = _Timestamps()


def timestamp() -> str:
    return _timestamps.now()


def timestamp_bytes() -> bytes:
    return _timestamps.now_bytes()


def add_timestamp(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["timestamp"] = _timestamps.now()
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
    """Scrubbed of the engine's secrets and, inside a record (`RedactionScope.active`), of the
    credentials that record used; the engine's own fields and every key are kept."""
    return current_scope().scrub_event(event)


# Characters JSON leaves raw that line-based tools treat as line breaks (U+2028, U+2029, NEL),
# terminals as control sequences (DEL, C1 such as CSI), or UTF-8 cannot encode (lone
# surrogates): escaped, so one event is always one line of valid UTF-8.
_LINE_SAFE = str.maketrans(
    {c: f"\\u{c:04x}" for c in [0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000)]}
)
# The reference rendering, and the fallback for what orjson refuses (integers beyond 64 bits,
# lone surrogates, keys that are not strings). Built once: json.dumps with options builds a new
# encoder on every call.
_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False)
# Datetimes and dataclasses go through `default=str`, as with the reference encoder.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def render_line(event: EventDict) -> bytes:
    """One event as one line of JSON (UTF-8, no line break, no terminal control)."""
    try:
        line = orjson.dumps(event, default=str, option=_ORJSON_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        text = _ENCODER.encode(event)
        if not text.isascii():
            text = text.translate(_LINE_SAFE)
        return text.encode("utf-8", "backslashreplace")
    return line_safe(line)


def line_safe(line: bytes) -> bytes:
    """orjson's rendering of an event, with what must not reach a line raw escaped."""
    # Nearly every line is ASCII without DEL: nothing to escape.
    if line.isascii() and b"\x7f" not in line:
        return line
    return line.decode().translate(_LINE_SAFE).encode()


class Renderer:
    """Final processor: render once, write to stdout, queue for Kafka, and stop the chain.

    The same bytes go to stdout and to the logs topic. Inside an event loop, lines are
    collected and written (and flushed), and handed to the sink, once at the end of the loop
    iteration: one write and one hand-over per iteration instead of per event. Outside one
    (start-up, other threads, tests) each line is written at once."""

    def __init__(self, stream: TextIO, sink: KafkaLogSink | None) -> None:
        self.stream = stream
        self.sink = sink
        # A person at a terminal reads structlog's console lines; the logs topic (and a pipe
        # or file) always gets JSON.
        self._console = _console_renderer(stream)
        # Whether stdout gets the JSON line itself (not a console line made from the event),
        # so a line rendered elsewhere may be handed over as it is (`emit_line`).
        self.writes_json = self._console is None
        self._pending: list[bytes] = []  # lines for stdout
        self._pending_events: list[tuple[bytes | None, bytes]] = []  # (key, line) for the sink
        # The loop a flush is scheduled on; None when nothing waits. A loop that ended before
        # running the flush leaves its lines to the next write, wherever it happens.
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> str:
        self.emit(event)
        raise structlog.DropEvent

    def emit(self, event: EventDict) -> None:
        """Write one event that has been redacted already. A library's record goes to stdout
        only: the logs topic carries the engine's events."""
        line = render_line(event)
        request_id = event.get("request_id")
        key = request_id.encode() if isinstance(request_id, str) else None
        to_topic = event.get("event") != LIBRARY_EVENT
        if self._console is None:
            self._write(line, key, line if to_topic else None)
        else:
            text = self._console(None, "", dict(event)).encode("utf-8", "backslashreplace")
            self._write(text, key, line if to_topic else None)

    def emit_line(self, line: bytes, key: bytes | None) -> None:
        """Write one event already redacted and rendered as `render_line` renders it (only
        while `writes_json`), keyed on the logs topic by its request_id."""
        self._write(line, key, line)

    def _write(self, text: bytes, key: bytes | None, line: bytes | None) -> None:
        """`text` to stdout, (`key`, `line`) to the sink (unless None): both at the next
        flush."""
        loop = _running_loop()
        with self._lock:
            self._pending.append(text)
            if self.sink is not None and line is not None:
                self._pending_events.append((key, line))
            if loop is not None and self._flush_loop is loop:
                return
            if loop is not None:
                self._flush_loop = loop
        if loop is None:
            self.flush()
        else:
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self._lock:
            self._flush_loop = None
            if not self._pending:
                return
            lines, self._pending = self._pending, []
            events, self._pending_events = self._pending_events, []
            if events and self.sink is not None:  # first: a closed stdout must not lose them
                self.sink.put_many(events)
            data = b"\n".join(lines) + b"\n"
            binary = getattr(self.stream, "buffer", None)
            if binary is not None:
                self.stream.flush()  # whatever was written as text goes first
                binary.write(data)
                binary.flush()
            else:
                self.stream.write(data.decode())
                self.stream.flush()


# asyncio's own lookup (C), None outside a loop instead of raising.
_running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio_events._get_running_loop


def _console_renderer(stream: TextIO) -> Callable[[Any, str, EventDict], str] | None:
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        interactive = False
    if not interactive:
        return None
    renderer: Callable[[Any, str, EventDict], str] = structlog.dev.ConsoleRenderer(
        colors=False, sort_keys=False
    )
    return renderer


_renderer: Renderer | None = None
_min_level = _LEVELS["info"]


@atexit.register
def flush_logs() -> None:
    """Write out lines still waiting for their loop iteration (shutdown, a loop that ended)."""
    if _renderer is not None:
        with contextlib.suppress(ValueError, OSError):  # stdout already closed at exit
            _renderer.flush()


def reset_logging() -> None:
    """Back to structlog's defaults, as before `configure_logging` (tests)."""
    global _renderer  # noqa: PLW0603 (one logging configuration per process)
    flush_logs()
    _renderer = None
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def configure_logging(
    level: str = "info", *, sink: KafkaLogSink | None = None, stream: TextIO | None = None
) -> None:
    global _renderer, _min_level  # noqa: PLW0603 (one logging configuration per process)
    flush_logs()
    _renderer = Renderer(stream or sys.stdout, sink)
    _min_level = _LEVELS[level]
    processors: list[Callable[[WrappedLogger, str, EventDict], EventDict | str]] = [
        structlog.contextvars.merge_contextvars,
        normalise_level,
        add_timestamp,
        add_service,
        structlog.processors.format_exc_info,
        redact,
        _renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _route_library_logging(level)


class _StructlogHandler(logging.Handler):
    """Library loggers (aiokafka, httpx) go through the same chain, redaction included. What
    they say below WARNING (aiokafka's coordinator chatter at INFO) is debug for us."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelno if record.levelno >= logging.WARNING else logging.DEBUG
        # aiokafka's reconnect chatter is debug; an outage is reported once, as our own event.
        level = BROKERS.level_for(record, level)
        try:
            get_logger().log(level, LIBRARY_EVENT, logger=record.name, message=record.getMessage())
        except Exception:
            self.handleError(record)


def _route_library_logging(level: str) -> None:
    root = logging.getLogger()
    root.handlers = [_StructlogHandler()]
    # Library INFO records would only be dropped as debug: at level info they are not made.
    root.setLevel(logging.INFO if level == "debug" else max(_LEVELS[level], logging.WARNING))
    # httpx and httpcore log every request's full URL at INFO/DEBUG: noise, and URLs may carry
    # query-string secrets.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(**bound: Any) -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger(**bound)
    return logger
