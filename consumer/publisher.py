"""Kafka out: result envelopes (keyed by request_id) and dead letters (original bytes).

Delivery is retried until it succeeds or the job is cancelled (shutdown, revoke): an offset is
marked done only after its envelope is acknowledged, so a lost envelope means an uncommitted
offset, and the record runs again (at-least-once; exactly-once comes with transactions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from consumer.intake import Rejected
from consumer.logging import get_logger
from consumer.redaction import REDACTOR
from schemas import ResultEnvelope

Headers = list[tuple[str, bytes]]


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
        dead_letter: tuple[bytes | None, bytes | None, Headers] | None = None,
    ) -> None:
        """Publish the envelope (and the dead letter first, if any); return once acknowledged."""
        if dead_letter is not None:
            await self._deliver(self._dead_letter_topic, *dead_letter)
        result_headers: Headers = [("request-id", envelope.request_id.encode())]
        if traceparent is not None:
            result_headers.append(("traceparent", traceparent.encode()))
        await self._deliver(
            self._results_topic,
            envelope.request_id.encode(),
            envelope_bytes(envelope),
            result_headers,
        )

    async def _deliver(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        delay = 0.2
        while True:
            try:
                delivery = await self._producer.send(topic, value=value, key=key, headers=headers)
                await delivery
                return
            except KafkaError as exc:
                self._log.warning(
                    "publish.retrying", topic=topic, error=type(exc).__name__, delay_s=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
