"""ResultPublisher: what goes out, and that no record can pin its partition by being too large."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from consumer.intake import Rejected
from consumer.publisher import ResultPublisher, dead_letter_headers
from consumer.redaction import REDACTOR
from schemas import ErrorCode, success_envelope

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class FakeProducer:
    """Fails the first sends as scripted, then records what was sent."""

    def __init__(self, failures: list[Exception] | None = None, max_bytes: int | None = None):
        self.failures = list(failures or [])
        self.max_bytes = max_bytes
        self.sent: list[dict[str, Any]] = []

    async def send(self, topic: str, **record: Any) -> asyncio.Future[None]:
        if self.failures:
            raise self.failures.pop(0)
        if self.max_bytes is not None and len(record["value"] or b"") > self.max_bytes:
            raise MessageSizeTooLargeError()
        self.sent.append({"topic": topic, **record})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def envelope(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> Any:
    return success_envelope(
        "req-1",
        data,
        action="log_message",
        project="p",
        started_at=NOW,
        finished_at=NOW,
        attempts=1,
        metadata=metadata,
    )


async def test_envelope_is_keyed_by_request_id_with_traceparent() -> None:
    producer = FakeProducer()
    publisher = ResultPublisher(producer, "results", "dead")
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    await publisher.publish(envelope({"logged": True}), traceparent=trace)
    [sent] = producer.sent
    assert sent["topic"] == "results" and sent["key"] == b"req-1"
    assert ("traceparent", trace.encode()) in sent["headers"]


async def test_transient_errors_are_retried_until_delivered() -> None:
    producer = FakeProducer(failures=[KafkaConnectionError(), KafkaConnectionError()])
    publisher = ResultPublisher(producer, "results", "dead")
    await publisher.publish(envelope({"logged": True}), traceparent=None)
    assert len(producer.sent) == 1


async def test_an_envelope_too_large_is_replaced_not_retried_forever() -> None:
    producer = FakeProducer(max_bytes=2_000)
    publisher = ResultPublisher(producer, "results", "dead")
    big = envelope({"logged": True}, metadata={"blob": "x" * 5_000})
    await asyncio.wait_for(publisher.publish(big, traceparent=None), 5)
    [sent] = producer.sent
    assert b"blob" not in sent["value"]
    assert b'"internal_error"' in sent["value"] and b'"original_status":"success"' in sent["value"]


async def test_a_dead_letter_too_large_still_lets_the_envelope_out() -> None:
    producer = FakeProducer(max_bytes=2_000)
    publisher = ResultPublisher(producer, "results", "dead")
    await asyncio.wait_for(
        publisher.publish(envelope({}), traceparent=None, dead_letter=(None, b"y" * 5_000, [])), 5
    )
    assert [s["topic"] for s in producer.sent] == ["results"]


async def test_envelopes_and_dead_letter_headers_are_scrubbed_of_secrets() -> None:
    REDACTOR.add("sk-publisher-secret-123")
    producer = FakeProducer()
    publisher = ResultPublisher(producer, "results", "dead")
    await publisher.publish(envelope({"echo": "Bearer sk-publisher-secret-123"}), traceparent=None)
    assert b"sk-publisher-secret-123" not in producer.sent[0]["value"]
    rejected = Rejected("r", ErrorCode.INVALID_JSON, "saw sk-publisher-secret-123", None)
    headers = dict(dead_letter_headers([], rejected, topic="t", partition=1, offset=7))
    assert b"sk-publisher-secret-123" not in headers["error-message"]
    assert headers["source-offset"] == b"7" and headers["error-code"] == b"invalid_json"


async def test_an_envelope_pydantic_cannot_render_is_replaced() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}
    producer = FakeProducer()
    publisher = ResultPublisher(producer, "results", "dead")
    await publisher.publish(envelope({"deep": deep}), traceparent=None)
    [sent] = producer.sent
    assert b'"internal_error"' in sent["value"] and b"could not be rendered" in sent["value"]
