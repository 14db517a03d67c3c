"""One log event -> one line of JSON, written to stdout and handed to the logs sink.

The same bytes go to both. Lines are written once per event-loop iteration, and the
timestamp's formatted second is reused within that second: logging is on every record's path.
"""

from __future__ import annotations

import asyncio
import asyncio.events as asyncio_events
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from consumer.ops.log_sink import KafkaLogSink

SERVICE = "execution-engine"
# The event a library's (aiokafka's, httpx's) own log record becomes: stdout only.
LIBRARY_EVENT = "library.log"


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

    def __init__(self, stream: TextIO | None, sink: KafkaLogSink | None) -> None:
        """`stream`: where lines go (None: whatever `sys.stdout` is when they are written)."""
        self._stream = stream
        self.sink = sink
        # A person at a terminal reads structlog's console lines; the logs topic (and a pipe
        # or file) always gets JSON.
        self._console = _console_renderer(self.stream)
        self._pending: list[bytes] = []  # lines for stdout
        self._pending_events: list[tuple[bytes | None, bytes]] = []  # (key, line) for the sink
        # The loop a flush is scheduled on; None when nothing waits. A loop that ended before
        # running the flush leaves its lines to the next write, wherever it happens.
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def stream(self) -> TextIO:
        return sys.stdout if self._stream is None else self._stream

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> str:
        """The chain's last processor: what it returns is what the (returning) logger returns."""
        self.emit(event)
        return ""

    def emit(self, event: EventDict) -> None:
        """Write one event that has been redacted already. A library's record goes to stdout
        only: the logs topic carries the engine's events."""
        line = render_line(event)
        request_id = event.get("request_id")
        key = request_id.encode() if isinstance(request_id, str) else None
        to_topic = line if event.get("event") != LIBRARY_EVENT else None
        if self._console is None:
            self._write(line, key, to_topic)
        else:
            text = self._console(None, "", dict(event)).encode("utf-8", "backslashreplace")
            self._write(text, key, to_topic)

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
            stream = self.stream
            binary = getattr(stream, "buffer", None)
            if binary is not None:
                stream.flush()  # whatever was written as text goes first
                binary.write(data)
                binary.flush()
            else:
                stream.write(data.decode())
                stream.flush()


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
