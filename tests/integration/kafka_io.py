"""Plain Kafka I/O for integration tests: produce records, read what a topic holds."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from consumer.broker.topics import partitions_of

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Outgoing:
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def request(cls, body: dict[str, Any], key: str | None = None) -> Outgoing:
        return cls(json.dumps(body).encode(), key.encode() if key else None)


async def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, records: list[Outgoing]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        deliveries = [
            await producer.send(topic, value=r.value, key=r.key, headers=list(r.headers))
            for r in records
        ]
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float = 60.0, grace_s: float = 1.5
) -> list[Any]:
    """Everything a read_committed consumer sees on `topic`: waits for `expect` records, then
    keeps reading for `grace_s` so that a duplicate would be seen too."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        quiet_until: float | None = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for chunk in batch.values():
                records.extend(chunk)
            if len(records) >= expect and quiet_until is None:
                quiet_until = time.monotonic() + grace_s
            if quiet_until is not None and time.monotonic() >= quiet_until:
                break
        return records
    finally:
        await consumer.stop()


async def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Sum over partitions of the group's committed offsets on `topic`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        total = 0
        for tp in await partitions_of(consumer, topic):
            total += await consumer.committed(tp) or 0
        return total
    finally:
        await consumer.stop()


def envelopes_by_id(records: list[Any]) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        envelope = json.loads(record.value)
        by_id.setdefault(envelope["request_id"], []).append(envelope)
    return by_id
