"""consumer/logging.py: JSON lines, levels, redaction, the Kafka sink."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiokafka.partitioner import DefaultPartitioner

from consumer.broker.batches import RecordBatch
from consumer.ops.log_lines import render_line
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging, flush_logs, get_logger
from consumer.secrets.redaction import SECRETS, RedactionScope, current_scope


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


class Output:
    def __init__(self, level: str = "info") -> None:
        self.stream = io.StringIO()
        self.sink = KafkaLogSink()
        configure_logging(level, sink=self.sink, stream=self.stream)

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def sink_text(self) -> str:
        return "\n".join(value.decode() for _, value in self.sink._queue)


@pytest.fixture(autouse=True)
def record_scope() -> Iterator[RedactionScope]:
    """Each test runs as inside one record: `secret()` is a credential that record used."""
    scope = SECRETS.scope()
    with scope.active():
        yield scope
    scope.close()


def secret() -> str:
    value = "sk-live-" + uuid.uuid4().hex
    current_scope().hold(value)
    return value


def test_one_json_line_per_event() -> None:
    out = Output()
    log = get_logger(request_id="r1")
    log.info("action.started", attempt=1)
    log.warning("action.failed", error_code="x")
    lines = out.lines
    assert len(out.text.splitlines()) == 2
    first = lines[0]
    assert first["event"] == "action.started"
    assert first["level"] == "info"
    assert first["service"] == "execution-engine"
    assert first["request_id"] == "r1"
    assert first["attempt"] == 1
    assert first["timestamp"].endswith("Z") and len(first["timestamp"]) == 24
    assert lines[1]["level"] == "warning"


def test_the_sink_gets_the_same_lines_keyed_by_request_id() -> None:
    out = Output()
    get_logger(request_id="r1").info("a")
    get_logger().info("engine.started")
    queued = list(out.sink._queue)
    assert [key for key, _ in queued] == [b"r1", None]
    assert [value.decode() for _, value in queued] == out.text.splitlines()


def test_events_below_the_level_are_dropped() -> None:
    out = Output("warning")
    log = get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    assert [line["event"] for line in out.lines] == ["w", "e"]
    assert len(out.sink._queue) == 2


def test_debug_level_keeps_debug() -> None:
    out = Output("debug")
    get_logger().debug("d")
    assert out.lines[0]["level"] == "debug"


def test_exception_is_rendered_at_error_level() -> None:
    out = Output()
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger().exception("action.crashed")
    [line] = out.lines
    assert line["level"] == "error"
    assert "ValueError: boom" in line["exception"]


def test_registered_secret_in_fields_never_appears() -> None:
    token = secret()
    out = Output()
    log = get_logger(request_id="r1")
    log.info("a", detail=f"Bearer {token}", nested={"list": [token, {"deep": token}]})
    log.info(f"event with {token}")
    log.info("quoted", text=json.dumps({"t": token}))
    assert token not in out.text
    assert token not in out.sink_text()
    assert "[REDACTED]" in out.text


def test_registered_secret_in_a_traceback_never_appears() -> None:
    token = secret()
    out = Output()
    try:
        raise RuntimeError(f"call failed with token {token}")
    except RuntimeError:
        get_logger().exception("action.crashed")
    assert "RuntimeError" in out.text
    assert token not in out.text
    assert token not in out.sink_text()


def test_registered_secret_in_an_exception_object_field_never_appears() -> None:
    token = secret()
    out = Output()
    get_logger().warning("publish.retrying", error=RuntimeError(f"auth {token} refused"))
    assert "publish.retrying" in out.text
    assert token not in out.text
    assert token not in out.sink_text()


def test_registered_secret_as_a_nested_key_never_appears() -> None:
    token = secret()
    out = Output()
    get_logger().info("log_message", message="m", fields={token: "value"})
    assert "log_message" in out.text
    assert token not in out.text


def test_sensitive_names_are_masked() -> None:
    out = Output()
    get_logger().info("a", password="hunter2", headers={"Authorization": "Basic abc"})
    [line] = out.lines
    assert line["password"] == "[REDACTED]"
    assert line["headers"] == {"Authorization": "[REDACTED]"}
    assert "hunter2" not in out.text


def test_library_logging_goes_through_the_same_chain() -> None:
    token = secret()
    out = Output()
    logging.getLogger("some.library").warning("connecting with %s", token)
    logging.getLogger("some.library").debug("dropped")
    [line] = out.lines
    assert line["event"] == "library.log"
    assert line["logger"] == "some.library"
    assert line["level"] == "warning"
    assert line["message"] == "connecting with [REDACTED]"
    assert token not in out.sink_text()


def test_httpx_info_logging_is_silenced() -> None:
    out = Output("debug")
    logging.getLogger("httpx").info("HTTP Request: GET https://x.test/?token=abc")
    assert out.text == ""


def test_sink_is_bounded_and_counts_drops() -> None:
    sink = KafkaLogSink(max_queued=2)
    for n in range(5):
        sink.put(None, f"{n}".encode())
    assert sink.dropped == 3
    assert [value for _, value in sink._queue] == [b"3", b"4"]


class FakeBatch:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        timestamp: int | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> object | None:
        if len(self.records) >= self.capacity:
            return None
        assert value is not None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeProducer:
    """The batch API of AIOKafkaProducer, recording (topic, partition, key, value)."""

    def __init__(self, fail: bool = False, partitions: int = 3, batch_capacity: int = 100) -> None:
        self.sent: list[tuple[str, int, bytes | None, bytes]] = []
        self.batches = 0
        self.fail = fail
        self.partitions = partitions
        self.batch_capacity = batch_capacity

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> RecordBatch:
        return FakeBatch(self.batch_capacity)

    async def send_batch(
        self, batch: RecordBatch, topic: str, *, partition: int
    ) -> asyncio.Future[None]:
        assert isinstance(batch, FakeBatch)
        if self.fail:
            raise ConnectionError("broker away")
        self.batches += 1
        self.sent.extend((topic, partition, key, value) for key, value in batch.records)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def values(self) -> list[tuple[str, bytes | None, bytes]]:
        return [(topic, key, value) for topic, _, key, value in self.sent]


async def test_flush_sends_key_and_value() -> None:
    sink = KafkaLogSink()
    sink.put(b"r1", b'{"event":"a"}')
    sink.put(None, b'{"event":"b"}')
    producer = FakeProducer()
    await sink.flush(producer, "execution.logs")
    assert sorted(producer.values(), key=lambda sent: sent[2]) == [
        ("execution.logs", b"r1", b'{"event":"a"}'),
        ("execution.logs", None, b'{"event":"b"}'),
    ]
    assert sink.dropped == 0
    await sink.flush(producer, "execution.logs")
    assert len(producer.sent) == 2  # the queue was emptied


async def test_events_go_to_the_partition_of_their_key_in_order() -> None:
    sink = KafkaLogSink()
    for n in range(20):
        sink.put(f"request-{n % 4}".encode(), f"{n}".encode())
    producer = FakeProducer(partitions=3)
    await sink.flush(producer, "execution.logs")
    expected = DefaultPartitioner()
    for _, partition, key, _ in producer.sent:
        assert partition == expected(key, [0, 1, 2], [0, 1, 2])
    for key in {key for _, _, key, _ in producer.sent}:
        values = [int(value) for _, _, k, value in producer.sent if k == key]
        assert values == sorted(values), "one key's events keep their order"
    # Four keys on at most three partitions: one batch per partition, not one send per event.
    assert producer.batches <= 3


async def test_added_partitions_move_a_key_as_the_producer_would() -> None:
    sink = KafkaLogSink()
    producer = FakeProducer(partitions=2)
    keys = [f"request-{n}".encode() for n in range(30)]
    for key in keys:
        sink.put(key, b"before")
    await sink.flush(producer, "execution.logs")
    producer.partitions = 7
    producer.sent.clear()
    for key in keys:
        sink.put(key, b"after")
    await sink.flush(producer, "execution.logs")
    seven = list(range(7))
    assert {(key, partition) for _, partition, key, _ in producer.sent} == {
        (key, DefaultPartitioner()(key, seven, seven)) for key in keys
    }


async def test_a_full_batch_is_sent_and_a_new_one_started() -> None:
    sink = KafkaLogSink()
    for n in range(7):
        sink.put(b"same-key", f"{n}".encode())
    producer = FakeProducer(batch_capacity=3)
    await sink.flush(producer, "execution.logs")
    assert [value for _, _, _, value in producer.sent] == [f"{n}".encode() for n in range(7)]
    assert producer.batches == 3
    assert sink.dropped == 0


async def test_flush_with_a_failing_producer_does_not_raise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = KafkaLogSink()
    sink.put(None, b"a")
    sink.put(None, b"b")
    await sink.flush(FakeProducer(fail=True, partitions=1), "execution.logs")
    assert sink.dropped == 2
    assert "logs.send_failed" in capsys.readouterr().err


async def test_run_drains_as_events_arrive() -> None:
    sink = KafkaLogSink()
    producer = FakeProducer()
    task = asyncio.create_task(sink.run(producer, "execution.logs"))
    await asyncio.sleep(0)
    sink.put(b"k", b"v")
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert producer.values() == [("execution.logs", b"k", b"v")]


@pytest.mark.parametrize(
    "text", ["a\u2028b", "a\u2029b", "a\x85b", "\x9b[31m", "\x7f", "lone \ud800 surrogate", "é✓😀"]
)
def test_a_rendered_event_is_one_line_of_utf8_json(text: str) -> None:
    rendered = render_line({"event": "x", "message": text})
    line = rendered.decode("utf-8")
    assert line.splitlines() == [line]
    assert all(not (0x7F <= ord(c) < 0xA0) for c in line)
    assert json.loads(line)["message"] == text


REFERENCE = json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "event",
    [
        {"event": "a", "level": "info", "n": 1, "f": 1.5, "none": None, "ok": True},
        {"event": "nested", "fields": {"list": [1, "two", {"three": 3.0}], "empty": {}}},
        {"event": "when", "at": datetime(2026, 12, 1, 8, 0, tzinfo=UTC)},
        {"event": "big", "n": 2**70, "neg": -(2**65)},
        {"event": "keys", "fields": {1: "int key", "s": "str key"}},
        {"event": "odd", "value": {1, 2}, "path": Path("/tmp/x"), "exc": ValueError("bad")},
        {"event": "text", "message": "José ✓ \u2028 \x7f \ud800"},
    ],
)
def test_fast_rendering_equals_the_reference_rendering_field_for_field(
    event: dict[str, object],
) -> None:
    """orjson renders; where it cannot (big integers, non-string keys, lone surrogates) the
    reference encoder does. Either way the parsed line is what the reference encoder gives."""
    expected = json.loads(REFERENCE.encode(event).encode("utf-8", "surrogatepass"))
    assert json.loads(render_line(event)) == expected


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_inside_a_loop_lines_are_written_once_per_iteration() -> None:
    stream = CountingStream()
    configure_logging("info", stream=stream)
    log = get_logger(request_id="r1")
    for n in range(3):
        log.info("action.started", attempt=n)
    assert stream.getvalue() == ""  # not yet: at the end of this loop iteration
    await asyncio.sleep(0)
    assert [json.loads(line)["attempt"] for line in stream.getvalue().splitlines()] == [0, 1, 2]
    assert stream.writes == 1


def test_lines_of_a_loop_that_ended_come_out_with_the_next_line() -> None:
    stream = CountingStream()
    configure_logging("info", stream=stream)
    loop = asyncio.new_event_loop()

    def log_and_stop() -> None:
        get_logger().info("inside")  # its flush is scheduled for an iteration that never runs
        loop.stop()

    loop.call_soon(log_and_stop)
    loop.run_forever()
    loop.close()
    assert stream.getvalue() == ""
    get_logger().info("outside")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == [
        "inside",
        "outside",
    ]


class TerminalStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_console_lines_and_the_logs_topic_json() -> None:
    sink = KafkaLogSink()
    stream = TerminalStream()
    configure_logging("info", sink=sink, stream=stream)
    get_logger(request_id="r-1").info("request.received", action="log_message")
    flush_logs()
    written = stream.getvalue()
    assert "request.received" in written and "request_id=r-1" in written
    assert not written.lstrip().startswith("{"), "not JSON on a terminal"
    [(key, value)] = list(sink._queue)
    assert key == b"r-1" and json.loads(value)["event"] == "request.received"


def test_a_pipe_gets_json_lines() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    get_logger().info("engine.started")
    flush_logs()
    assert json.loads(stream.getvalue())["event"] == "engine.started"


@pytest.mark.parametrize(("level", "shown"), [("info", False), ("debug", True)])
def test_library_info_chatter_is_debug(level: str, shown: bool) -> None:
    stream = io.StringIO()
    configure_logging(level, stream=stream)
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group %s", "g")
    logging.getLogger("aiokafka").warning("Heartbeat failed")
    flush_logs()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    messages = {e["message"]: e["level"] for e in events}
    assert messages.get("Heartbeat failed") == "warning"
    assert ("Joined group g" in messages) is shown
    if shown:
        assert messages["Joined group g"] == "debug"
