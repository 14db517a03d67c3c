"""RecordLogger: a record's events rendered without structlog's chain, field for field the
events the chain renders."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

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
