"""The logger of one record's events: the same events, fields and rendering as the structlog
chain in `consumer.ops.logging`, without the chain.

Every request logs at least four events (`request.received`, `action.started`, the action's
own, `action.succeeded`); through structlog's processor chain each cost ~10 us, most of a
pass-through record's budget. `RecordLogger` binds the record's fields once and renders each
event straight to the bytes that go to stdout and to the logs topic: level check, one dict,
redaction, orjson. It implements structlog's `FilteringBoundLogger`, so the runner and actions
(and plugins) see no difference. Exceptions go through structlog (formatting a traceback is
its job), and so does everything when logging was not configured (`configure_logging`).

The bound fields are the engine's own (ids, partition, offset, action, project: never
scrubbed), so they are rendered once per logger, to the head of every line: an event then
costs one orjson call on its own fields, joined to that head and to the level, timestamp and
service parts. The bytes are those `render_line` gives for the whole event (a test holds
them equal); an event whose fields would collide with the bound or added ones, a context with
other fields, or anything orjson cannot encode takes the whole-event path.
"""

from __future__ import annotations

from typing import Any

import orjson
from structlog.typing import FilteringBoundLogger

from consumer.ops import logging as engine_logging
from consumer.ops.redaction import ENGINE_EVENT_FIELDS, RedactionScope, current_scope

_NAMES = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}
# What follows an event's own fields on its line: the level, then the timestamp, then this.
_LEVEL_PARTS = {
    level: f',"level":"{name}","timestamp":"'.encode() for level, name in _NAMES.items()
}
_SERVICE_PART = f'","service":{orjson.dumps(engine_logging.SERVICE).decode()}}}'.encode()
# Fields an event's own must not name for its line to be assembled from parts: those added
# after them, and `request_id` (the line's key on the logs topic comes from the bound one).
_ADDED = frozenset({"event", "level", "timestamp", "service", "request_id"})
# Bound fields that may be rendered once: the engine's own, which redaction keeps verbatim.
_HEAD_FIELDS = ENGINE_EVENT_FIELDS - _ADDED
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_NO_HEAD = b""  # the context cannot be rendered once: every event takes the whole-event path


def record_logger(scope: RedactionScope | None = None, /, **context: Any) -> FilteringBoundLogger:
    """A logger bound to one record's fields, whose events are scrubbed with `scope` (the
    record's redaction scope; default: the one active where an event is emitted)."""
    if engine_logging._renderer is None:
        return engine_logging.get_logger(**context)
    return RecordLogger(context, engine_logging._min_level, scope)


class RecordLogger:
    __slots__ = ("_context", "_head", "_key", "_min_level", "_scope", "_taken")

    def __init__(
        self, context: dict[str, Any], min_level: int, scope: RedactionScope | None = None
    ) -> None:
        self._context = context
        self._min_level = min_level
        self._scope = scope
        self._head: bytes | None = None  # rendered at the first event
        self._key: bytes | None = None
        self._taken = _ADDED  # names an event's own fields must not have: the bound and added

    def _emit(self, level: int, event: str, kw: dict[str, Any]) -> None:
        if level < self._min_level:
            return
        renderer = engine_logging._renderer
        if renderer is None:  # logging was reset meanwhile (tests)
            engine_logging.get_logger(**self._context).log(level, event, **kw)
            return
        scope = current_scope() if self._scope is None else self._scope
        head = self._head if self._head is not None else self._render_head()
        level_part = _LEVEL_PARTS.get(level)
        if head and level_part is not None and renderer.writes_json and self._taken.isdisjoint(kw):
            kw["event"] = event  # `kw` is this call's own dict
            try:
                body = orjson.dumps(scope.scrub_event(kw), default=str, option=_ORJSON_OPTIONS)
            except (TypeError, orjson.JSONEncodeError):
                del kw["event"]  # what orjson refuses, `render_line` renders its own way
            else:
                line = b"".join(
                    (
                        head,
                        body[1:-1],
                        level_part,
                        engine_logging.timestamp_bytes(),
                        _SERVICE_PART,
                    )
                )
                renderer.emit_line(engine_logging.line_safe(line), self._key)
                return
        event_dict = {**self._context, **kw, "event": event}
        event_dict.setdefault("level", _NAMES.get(level, "info"))
        event_dict["timestamp"] = engine_logging.timestamp()
        event_dict.setdefault("service", engine_logging.SERVICE)
        renderer.emit(scope.scrub_event(event_dict))

    def _render_head(self) -> bytes:
        """`{` and the bound fields, each followed by a comma: the start of every line."""
        context = self._context
        head = _NO_HEAD
        request_id = context.get("request_id")
        if isinstance(request_id, str) and all(
            name in _HEAD_FIELDS or name == "request_id" for name in context
        ):
            try:
                fields = orjson.dumps(context)
            except (TypeError, orjson.JSONEncodeError):
                pass
            else:
                head = fields[:-1] + b","
                self._key = request_id.encode()
                self._taken = _ADDED | context.keys()
        self._head = head
        return head

    # -- binding ---------------------------------------------------------------------------

    def bind(self, **new_values: Any) -> RecordLogger:
        return RecordLogger({**self._context, **new_values}, self._min_level, self._scope)

    def unbind(self, *keys: str) -> RecordLogger:
        context = dict(self._context)
        for key in keys:
            del context[key]
        return RecordLogger(context, self._min_level, self._scope)

    def try_unbind(self, *keys: str) -> RecordLogger:
        context = {k: v for k, v in self._context.items() if k not in keys}
        return RecordLogger(context, self._min_level, self._scope)

    def new(self, **new_values: Any) -> RecordLogger:
        return RecordLogger(dict(new_values), self._min_level, self._scope)

    def is_enabled_for(self, level: int) -> bool:
        return level >= self._min_level

    def get_effective_level(self) -> int:
        return self._min_level

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
        kw.setdefault("exc_info", True)
        return engine_logging.get_logger(**self._context).exception(event, *args, **kw)

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
