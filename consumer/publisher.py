"""Kafka out: result envelopes (keyed by request_id) and dead letters (original bytes).

Delivery is retried until it succeeds or the job is cancelled (shutdown, revoke): an offset is
marked done only after its envelope is acknowledged, so a lost envelope means an uncommitted
offset, and the record runs again (at-least-once; exactly-once comes with transactions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from consumer.intake import Rejected
from consumer.logging import get_logger
from consumer.redaction import REDACTOR
from schemas import ErrorCode, ResultEnvelope, error_envelope

Headers = list[tuple[str, bytes]]
# (original key, original value, headers)
DeadLetter = tuple[bytes | None, bytes | None, Headers]

# Retrying these cannot help: the record itself is too large for the producer or the broker.
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


class RecordTooLarge(Exception):
    """Raised by `_deliver` for a record no retry will get through."""


def envelope_bytes(envelope: ResultEnvelope) -> bytes:
    return REDACTOR.scrub(envelope.model_dump_json()).encode()


def dead_letter_headers(
    original: Sequence[tuple[str, bytes]],
    rejected: Rejected,
    *,
    topic: str,
    partition: int,
    offset: int,
) -> Headers:
    return [
        *original,
        ("error-code", rejected.code.value.encode()),
        ("error-message", REDACTOR.scrub(rejected.message).encode()),
        ("source-topic", topic.encode()),
        ("source-partition", str(partition).encode()),
        ("source-offset", str(offset).encode()),
    ]


class ResultPublisher:
    def __init__(
        self, producer: AIOKafkaProducer, results_topic: str, dead_letter_topic: str
    ) -> None:
        self._producer = producer
        self._results_topic = results_topic
        self._dead_letter_topic = dead_letter_topic
        self._log = get_logger()

    async def publish(
        self,
        envelope: ResultEnvelope,
        *,
        traceparent: str | None,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        """Publish the envelope (and the dead letter first, if any); return once acknowledged.

        Nothing here may fail for good: the record's offset waits for this. A record too large
        to publish is replaced by what can be (never retried forever, which would pin the
        partition's watermark)."""
        if dead_letter is not None:
            try:
                await self._deliver(self._dead_letter_topic, *dead_letter)
            except RecordTooLarge as exc:
                self._log.error(
                    "dead_letter.too_large", request_id=envelope.request_id, error=str(exc)
                )
        result_headers: Headers = [("request-id", envelope.request_id.encode())]
        if traceparent is not None:
            result_headers.append(("traceparent", traceparent.encode()))
        key = envelope.request_id.encode()
        try:
            value = envelope_bytes(envelope)
        except ValueError as exc:  # pydantic cannot render it (e.g. nested past its limit)
            self._log.error("envelope.unrenderable", request_id=envelope.request_id, error=str(exc))
            value = envelope_bytes(_replacement(envelope, "could not be rendered as JSON"))
        try:
            await self._deliver(self._results_topic, key, value, result_headers)
        except RecordTooLarge as exc:
            self._log.error("envelope.too_large", request_id=envelope.request_id, error=str(exc))
            value = envelope_bytes(_replacement(envelope, "was too large to publish"))
            await self._deliver(self._results_topic, key, value, result_headers)

    async def _deliver(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        delay = 0.2
        while True:
            try:
                delivery = await self._producer.send(topic, value=value, key=key, headers=headers)
                await delivery
                return
            except _TOO_LARGE as exc:
                raise RecordTooLarge(f"{type(exc).__name__}: {len(value or b'')} bytes") from exc
            except KafkaError as exc:
                self._log.warning(
                    "publish.retrying", topic=topic, error=type(exc).__name__, delay_s=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _replacement(envelope: ResultEnvelope, problem: str) -> ResultEnvelope:
    """The envelope that replaces one that cannot be published: same request, no data or
    metadata, and the outcome the action had, so nobody re-runs a side effect that happened."""
    return error_envelope(
        envelope.request_id,
        ErrorCode.INTERNAL_ERROR,
        f"the result {problem}; the action's outcome was {envelope.status!r}",
        started_at=envelope.started_at,
        finished_at=envelope.finished_at,
        action=envelope.action,
        project=envelope.project,
        attempts=envelope.attempts,
        details={
            "original_status": envelope.status,
            "original_error_code": envelope.error.code.value if envelope.error else None,
        },
        environment=envelope.environment,
    )
