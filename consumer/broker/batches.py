"""`RecordBatches`: many records produced as aiokafka record batches, one per topic partition.

The one way the engine produces many records at once (a block's envelopes in its transaction,
the queued log events): each record is appended to its partition's batch in place and a batch
is sent when full, ~1-3 us a record instead of `send()`'s ~4-10 us.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

M = TypeVar("M")


class RecordBatch(Protocol):
    """aiokafka's `BatchBuilder`: records appended in place, sent as one."""

    def append(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        timestamp: int | None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Any: ...

    def record_count(self) -> int: ...


class BatchProducer(Protocol):
    def create_batch(self) -> RecordBatch: ...

    async def send_batch(self, batch: RecordBatch, topic: str, *, partition: int) -> Any: ...


class RecordBatches(Generic[M]):
    """Records appended per (topic, partition), each with a `member` the caller tracks (the
    message it came from): `sent` pairs the members of every batch sent with its delivery
    future. A failure to send a batch raises from `append` or `flush`."""

    def __init__(self, producer: BatchProducer) -> None:
        self._producer = producer
        self._open: dict[tuple[str, int], tuple[RecordBatch, list[M]]] = {}
        self.sent: list[tuple[list[M], Any]] = []

    async def append(
        self,
        topic: str,
        partition: int,
        member: M,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> bool:
        """False when the record is larger than a whole batch (nothing appended)."""
        entry = self._open.get((topic, partition))
        if entry is None:
            entry = self._open[(topic, partition)] = (self._producer.create_batch(), [])
        appended = entry[0].append(key=key, value=value, timestamp=None, headers=headers or [])
        if appended is None:
            if entry[0].record_count():  # full: send it, start the next one
                await self._send(topic, partition)
                return await self.append(
                    topic, partition, member, key=key, value=value, headers=headers
                )
            return False
        entry[1].append(member)
        return True

    async def flush(self) -> list[tuple[list[M], Any]]:
        """Send every open batch; all the (members, delivery future) pairs sent so far."""
        for topic, partition in list(self._open):
            await self._send(topic, partition)
        return self.sent

    async def _send(self, topic: str, partition: int) -> None:
        batch, members = self._open.pop((topic, partition))
        if members:
            future = await self._producer.send_batch(batch, topic, partition=partition)
            self.sent.append((members, future))
