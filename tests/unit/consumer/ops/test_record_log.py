"""RecordLogger: a record's events rendered without structlog's chain, field for field the
events the chain renders."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from consumer.ops import logging as engine_logging
from consumer.ops.logging import KafkaLogSink, configure_logging, flush_logs, get_logger
from consumer.ops.record_log import RecordLogger, record_logger
from consumer.ops.redaction import SECRETS

CONTEXT = {"request_id": "r-1", "partition": 3, "offset": 41}


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    flush_logs()
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    stream.seek(0)
    stream.truncate()
    for event in parsed:
        assert event.pop("timestamp").endswith("Z")
    return parsed


@pytest.mark.parametrize(
    ("method", "args", "kw"),
    [
        ("info", ("request.received",), {}),
        ("warning", ("action.failed",), {"error_code": "x", "attempts": 2, "duration_ms": 1.5}),
        ("log", (20, "log_message"), {"message": "hi", "fields": {"n": [1, {"deep": None}]}}),
        ("error", ("oops",), {"level": "custom"}),
        ("debug", ("hidden",), {}),
    ],
)
def test_the_same_event_as_the_structlog_chain(
    method: str, args: tuple[Any, ...], kw: dict[str, Any]
) -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    fast = record_logger(**CONTEXT).bind(action="log_message", project="p")
    assert isinstance(fast, RecordLogger)
    getattr(fast, method)(*args, **kw)
    got = lines(stream)
    getattr(get_logger(**CONTEXT).bind(action="log_message", project="p"), method)(*args, **kw)
    assert got == lines(stream)


def test_the_same_bytes_go_to_stdout_and_the_logs_topic() -> None:
    sink = KafkaLogSink()
    stream = io.StringIO()
    configure_logging("info", sink=sink, stream=stream)
    record_logger(**CONTEXT).info("request.received")
    flush_logs()
    [(key, value)] = list(sink._queue)
    assert key == b"r-1" and stream.getvalue() == value.decode() + "\n"


def test_secrets_are_redacted_as_in_the_chain() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    scope = SECRETS.scope()
    scope.hold("record-log-secret-0123456789")
    record_logger(scope, **CONTEXT).info("x", message="token record-log-secret-0123456789 here")
    with scope.active():  # a logger without a scope of its own uses the active one
        record_logger(**CONTEXT).info("y", message="token record-log-secret-0123456789 here")
    record_logger(**CONTEXT).info("z", message="token record-log-secret-0123456789 here")
    scope.close()
    x, y, z = lines(stream)
    assert "record-log-secret" not in json.dumps(x) + json.dumps(y)
    # Outside the record, its credential is no pattern: another record's text is its own.
    assert z["message"] == "token record-log-secret-0123456789 here"


def test_exceptions_keep_their_traceback() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        record_logger(**CONTEXT).exception("engine.bug")
    [event] = lines(stream)
    assert event["level"] == "error" and "ValueError: boom" in event["exception"]


def test_without_configured_logging_structlog_is_used() -> None:
    assert not isinstance(record_logger(**CONTEXT), RecordLogger)


class _FixedTime:
    """One timestamp for every event, so lines can be compared byte for byte."""

    def now(self) -> str:
        return "2026-12-01T10:00:00.000Z"

    def now_bytes(self) -> bytes:
        return b"2026-12-01T10:00:00.000Z"


@pytest.mark.parametrize(
    ("context", "level", "kw"),
    [
        ({**CONTEXT, "action": "log_message", "project": "p"}, 20, {}),
        (CONTEXT, 30, {"error_code": "x", "attempts": 2, "duration_ms": 1.5}),
        (CONTEXT, 20, {"message": "héllo\u2028\x7f", "fields": {"n": [1, {"deep": None}]}}),
        (CONTEXT, 20, {"fields": {"big": 2**70}}),  # orjson refuses: the whole-event path
        (CONTEXT, 40, {"level": "custom", "service": "other"}),  # collides with added fields
        (CONTEXT, 20, {"offset": 7}),  # collides with a bound field
        ({**CONTEXT, "tenant_note": "x"}, 20, {"a": 1}),  # a bound field redaction scrubs
        ({"partition": 1}, 20, {"a": 1}),  # no request_id: keyless, the whole-event path
        ({**CONTEXT, "project": "ünïcode"}, 50, {"api_token": "abc", "n": None}),
    ],
)
def test_lines_assembled_from_parts_are_the_whole_events_bytes(
    monkeypatch: pytest.MonkeyPatch, context: dict[str, Any], level: int, kw: dict[str, Any]
) -> None:
    monkeypatch.setattr(engine_logging, "_timestamps", _FixedTime())
    sink = KafkaLogSink()
    configure_logging("info", sink=sink, stream=io.StringIO())
    scope = SECRETS.scope()
    scope.hold("parts-secret-0123456789")
    name = {20: "info", 30: "warning", 40: "error", 50: "critical"}[level]
    getattr(record_logger(scope, **context), name)(
        "some.event", **kw, note="parts-secret-0123456789"
    )
    scope_event = {**context, **kw, "note": "parts-secret-0123456789", "event": "some.event"}
    scope_event.setdefault("level", name)
    scope_event["timestamp"] = "2026-12-01T10:00:00.000Z"
    scope_event.setdefault("service", engine_logging.SERVICE)
    expected = engine_logging.render_line(scope.scrub_event(scope_event))
    scope.close()
    [(key, line)] = list(sink._queue)
    assert line == expected
    assert b"parts-secret" not in line
    request_id = context.get("request_id")
    assert key == (request_id.encode() if isinstance(request_id, str) else None)
