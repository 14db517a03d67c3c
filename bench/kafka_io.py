"""Kafka plumbing for the benchmarks: topics, bulk loading, and the results-topic watcher."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from consumer.broker.topics import partitions_of


@dataclass(frozen=True)
class RunTopics:
    """A fresh set of output topics and a group per run, so runs never see each other."""

    requests: str
    results: str
    logs: str
    dead_letter: str
    group: str

    @classmethod
    def fresh(cls, requests: str, label: str) -> RunTopics:
        suffix = f"{label}.{uuid.uuid4().hex[:8]}"
        return cls(
            requests=requests,
            results=f"bench.results.{suffix}",
            logs=f"bench.logs.{suffix}",
            dead_letter=f"bench.dead-letter.{suffix}",
            group=f"bench-{suffix}",
        )


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


def request_bytes(
    request_id: str, action: str, params: dict[str, Any], project: str = "bench"
) -> bytes:
    body = {
        "request_id": request_id,
        "action": action,
        "project": project,
        "params": params,
    }
    return json.dumps(body, separators=(",", ":")).encode()


Record = tuple[bytes | None, bytes]  # (key, value)


async def load(bootstrap: str, topic: str, records: Iterable[Record]) -> int:
    """Produce `records` as fast as the client allows (big batches, no per-record wait)."""
    # Idempotent: a send retried after a timeout must not put a request in the topic twice
    # (it would get two envelopes, and look like a duplicate the engine made).
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, enable_idempotence=True
    )
    await producer.start()
    count = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            count += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


@dataclass
class Seen:
    """Envelopes as a read_committed consumer saw them, with the wall time it saw each."""

    first_seen: float | None = None
    last_seen: float | None = None
    ids: set[bytes] = field(default_factory=set)
    duplicates: int = 0
    # (key, partition, offset) of every envelope seen a second time, for diagnosis.
    duplicate_records: list[tuple[bytes, int, int]] = field(default_factory=list)
    # (seen at, key, value); kept only when the scenario needs the envelope bodies.
    records: list[tuple[float, bytes, bytes]] = field(default_factory=list)
    # (seen at, distinct envelopes seen so far), one point per fetched batch.
    progress: list[tuple[float, int]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.ids)

    def rate_between(self, low: float, high: float) -> float:
        """Envelopes per second between the moments `low` and `high` (fractions of the count
        finally seen) were reached: the steady part of a run, without its ramp-up and tail."""
        total = self.count
        start = next((t, n) for t, n in self.progress if n >= low * total)
        end = next((t, n) for t, n in self.progress if n >= high * total)
        if end[0] <= start[0]:
            return float("nan")
        return (end[1] - start[1]) / (end[0] - start[0])

    def envelopes(self) -> list[tuple[float, dict[str, Any]]]:
        return [(seen, json.loads(value)) for seen, _, value in self.records]


class ResultsWatcher:
    """Reads a results topic from the beginning, read_committed, counting distinct envelopes.

    It runs in the benchmark's own process, so it does as little per record as it can (the
    key is the request id; bodies are parsed after the run, if at all)."""

    def __init__(self, bootstrap: str, topic: str, *, keep_values: bool = False) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._keep_values = keep_values
        self.seen = Seen()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self.first_envelope = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait(
            [asyncio.ensure_future(self._ready.wait()), self._task],
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._task.done():
            self._task.result()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for(
        self, count: int, timeout_s: float, alive: Callable[[], bool] = lambda: True
    ) -> bool:
        """True once `count` distinct envelopes were seen; False on timeout or `alive()` false."""
        deadline = time.monotonic() + timeout_s
        while self.seen.count < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not alive():
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        return True

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Latency is what is measured: do not let the fetch sit on the broker.
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=4 << 20,
        )
        await consumer.start()
        try:
            partitions = await partitions_of(consumer, self._topic, wait_s=60)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self._ready.set()
            seen, ids, keep = self.seen, self.seen.ids, self._keep_values
            while True:
                batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
                if not batch:
                    continue
                now = time.time()
                for records in batch.values():
                    for record in records:
                        if record.key in ids:
                            seen.duplicates += 1
                            seen.duplicate_records.append(
                                (record.key, record.partition, record.offset)
                            )
                            continue
                        ids.add(record.key)
                        if keep:
                            seen.records.append((now, record.key, record.value))
                if seen.first_seen is None:
                    seen.first_seen = now
                    self.first_envelope.set()
                seen.last_seen = now
                seen.progress.append((now, len(ids)))
                self._changed.set()
        finally:
            await consumer.stop()


async def recount(bootstrap: str, topic: str, quiet_s: float = 3.0) -> tuple[int, int]:
    """(distinct request ids, records) on `topic` as a fresh read_committed consumer reads it
    from the beginning: a second opinion when the watcher saw duplicates."""
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
        ids: set[bytes] = set()
        records = 0
        while batch := await consumer.getmany(timeout_ms=int(quiet_s * 1000), max_records=10_000):
            for chunk in batch.values():
                records += len(chunk)
                ids.update(record.key for record in chunk)
        return len(ids), records
    finally:
        await consumer.stop()
