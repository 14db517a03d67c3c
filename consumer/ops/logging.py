"""Logging, configured once: JSON lines on stdout, the same events on the logs topic.

Two sources, one rendering (`consumer.ops.log_lines.Renderer.emit`):

- a record's events (its outcome, its retries, what its action logs) come from its
  `RecordLogger` (`record_logger`): the record's fields bound once, its redaction scope a
  required argument, one dict and one scrub per event. Every request logs at least one event,
  so this path is the cheap one, and the only one for a record;
- the engine's lifecycle events and the libraries' records go through structlog's processor
  chain below, read top to bottom, scrubbed with the scope active where they were emitted.

Events bound for Kafka go into a bounded queue that a background task drains in batches
(`consumer.ops.log_sink`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, WrappedLogger

from consumer.ops.broker_events import BROKERS
from consumer.ops.log_lines import LIBRARY_EVENT, SERVICE, Renderer, timestamp
from consumer.ops.log_sink import KafkaLogSink
from consumer.secrets.redaction import RedactionScope, current_scope

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_NAMES = {number: name for name, number in _LEVELS.items()}


def add_timestamp(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event["timestamp"] = timestamp()
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


# Where events are written: stdout until `configure_logging` says otherwise.
_renderer = Renderer(None, None)
_min_level = _LEVELS["info"]


@atexit.register
def flush_logs() -> None:
    """Write out lines still waiting for their loop iteration (shutdown, a loop that ended)."""
    with contextlib.suppress(ValueError, OSError):  # stdout already closed at exit
        _renderer.flush()


def reset_logging() -> None:
    """Back to the defaults, as before `configure_logging` (tests)."""
    global _renderer, _min_level  # noqa: PLW0603 (one logging configuration per process)
    flush_logs()
    _renderer = Renderer(None, None)
    _min_level = _LEVELS["info"]
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def configure_logging(
    level: str = "info", *, sink: KafkaLogSink | None = None, stream: TextIO | None = None
) -> None:
    global _renderer, _min_level  # noqa: PLW0603 (one logging configuration per process)
    flush_logs()
    _renderer = Renderer(stream, sink)
    _min_level = _LEVELS[level]
    processors: list[Callable[[WrappedLogger, str, EventDict], EventDict | str]] = [
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
    """The engine's logger (lifecycle events; not a record's: see `record_logger`)."""
    logger: FilteringBoundLogger = structlog.get_logger(**bound)
    return logger


def record_logger(scope: RedactionScope, /, **fields: Any) -> FilteringBoundLogger:
    """The logger of one record's events: bound to its fields, scrubbed with its `scope`."""
    return RecordLogger(fields, scope)


class RecordLogger:
    """A record's logger: structlog's `FilteringBoundLogger` interface (actions and plugins
    get it as `ctx.log`), each event one dict, one scrub with the record's scope, one
    rendering. The level is the configuration's when the event is emitted."""

    __slots__ = ("_context", "_scope")

    def __init__(self, context: dict[str, Any], scope: RedactionScope) -> None:
        self._context = context
        self._scope = scope

    def _emit(self, level: int, event: str, kw: dict[str, Any]) -> None:
        if level < _min_level:
            return
        line = {**self._context, **kw, "event": event}
        line.setdefault("level", _NAMES.get(level, "info"))
        line["timestamp"] = timestamp()
        line.setdefault("service", SERVICE)
        _renderer.emit(self._scope.scrub_event(line))

    # -- binding ---------------------------------------------------------------------------

    def bind(self, **new_values: Any) -> RecordLogger:
        return RecordLogger({**self._context, **new_values}, self._scope)

    def unbind(self, *keys: str) -> RecordLogger:
        context = dict(self._context)
        for key in keys:
            del context[key]
        return RecordLogger(context, self._scope)

    def try_unbind(self, *keys: str) -> RecordLogger:
        return RecordLogger({k: v for k, v in self._context.items() if k not in keys}, self._scope)

    def new(self, **new_values: Any) -> RecordLogger:
        return RecordLogger(dict(new_values), self._scope)

    def is_enabled_for(self, level: int) -> bool:
        return level >= _min_level

    def get_effective_level(self) -> int:
        return _min_level

    # -- events ----------------------------------------------------------------------------

    def log(self, level: int, event: str, *args: Any, **kw: Any) -> Any:
        self._emit(level, event % args if args else event, kw)

    def debug(self, event: str, *args: Any, **kw: Any) -> Any:
        self._emit(10, event % args if args else event, kw)

    def info(self, event: str, *args: Any, **kw: Any) -> Any:
        self._emit(20, event % args if args else event, kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> Any:
        self._emit(30, event % args if args else event, kw)

    def error(self, event: str, *args: Any, **kw: Any) -> Any:
        self._emit(40, event % args if args else event, kw)

    def critical(self, event: str, *args: Any, **kw: Any) -> Any:
        self._emit(50, event % args if args else event, kw)

    def exception(self, event: str, *args: Any, **kw: Any) -> Any:
        """An error event with the traceback being handled, as text (scrubbed like the rest)."""
        kw.pop("exc_info", None)
        kind, error, trace = sys.exc_info()
        if error is not None:
            kw["exception"] = "".join(traceback.format_exception(kind, error, trace)).rstrip()
        self._emit(40, event % args if args else event, kw)

    warn = warning
    err = error
    fatal = critical
    msg = info

    async def alog(self, level: int, event: str, *args: Any, **kw: Any) -> Any:
        self.log(level, event, *args, **kw)

    async def adebug(self, event: str, *args: Any, **kw: Any) -> Any:
        self.debug(event, *args, **kw)

    async def ainfo(self, event: str, *args: Any, **kw: Any) -> Any:
        self.info(event, *args, **kw)

    async def awarning(self, event: str, *args: Any, **kw: Any) -> Any:
        self.warning(event, *args, **kw)

    async def aerror(self, event: str, *args: Any, **kw: Any) -> Any:
        self.error(event, *args, **kw)

    async def acritical(self, event: str, *args: Any, **kw: Any) -> Any:
        self.critical(event, *args, **kw)

    async def aexception(self, event: str, *args: Any, **kw: Any) -> Any:
        self.exception(event, *args, **kw)

    awarn = awarning
    afatal = acritical
    amsg = ainfo
