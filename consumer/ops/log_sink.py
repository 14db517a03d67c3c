"""The logs topic's side of logging: a bounded queue of rendered events, drained in batches.

Logging never awaits the broker: a slow or absent broker costs dropped log events (counted),
never a stalled envelope.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Protocol

from consumer.broker.batches import BatchProducer, RecordBatches
from consumer.broker.partitioner import FastPartitioner


class LogProducer(BatchProducer, Protocol):
    async def partitions_for(self, topic: str) -> set[int]: ...


_PARTITION_CACHE_SIZE = 10_000


class KafkaLogSink:
    """Bounded queue of rendered events, drained to the logs topic by `run()`.

    Events go into record batches (`RecordBatches`), on the partitions `send()` would choose
    (the default partitioner: murmur2 of the key)."""

    def __init__(self, max_queued: int = 10_000) -> None:
        self._queue: deque[tuple[bytes | None, bytes]] = deque(maxlen=max_queued)
        self._wakeup: asyncio.Event | None = None
        self._partitioner = FastPartitioner()
        # A request's events share its key: murmur2 (pure Python) once per key, not per event.
        self._partition_of: dict[bytes, int] = {}
        self._partitions: list[int] = []
        self.dropped = 0

    def put(self, key: bytes | None, value: bytes) -> None:
        self.put_many([(key, value)])

    def put_many(self, events: list[tuple[bytes | None, bytes]]) -> None:
        """Queue events (key, rendered line); past the bound, the oldest are dropped."""
        queue = self._queue
        overflow = len(queue) + len(events) - (queue.maxlen or 0)
        if overflow > 0:
            self.dropped += overflow
        queue.extend(events)
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self, producer: LogProducer, topic: str) -> None:
        """Drain until cancelled; `flush()` sends what is left at shutdown."""
        self._wakeup = asyncio.Event()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await self.flush(producer, topic)

    async def flush(self, producer: LogProducer, topic: str) -> None:
        if not self._queue:
            return
        try:
            partitions = sorted(await producer.partitions_for(topic))
        except Exception as exc:
            self._lost(len(self._queue), exc)
            self._queue.clear()
            return
        if partitions != self._partitions or len(self._partition_of) > _PARTITION_CACHE_SIZE:
            self._partitions = partitions
            self._partition_of.clear()
        batches: RecordBatches[None] = RecordBatches(producer)
        appended = 0
        try:
            while self._queue:
                key, value = self._queue.popleft()
                appended += 1  # counted before: a send that fails here loses this one too
                if not await batches.append(
                    topic, self._partition(key), None, key=key, value=value
                ):
                    appended -= 1
                    self.dropped += 1  # larger than a whole batch: cannot be sent
            sent = await batches.flush()
        except Exception as exc:  # the broker is away: count, never raise into the engine
            on_their_way = sum(len(members) for members, _ in batches.sent)
            self._lost(appended - on_their_way + len(self._queue), exc)
            self._queue.clear()
            return
        outcomes = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        self.dropped += sum(
            len(members)
            for (members, _), outcome in zip(sent, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        )

    def _partition(self, key: bytes | None) -> int:
        if key is None:  # spread keyless events, as the producer does
            chosen: int = self._partitioner(None, self._partitions, self._partitions)
            return chosen
        partition = self._partition_of.get(key)
        if partition is None:
            partition = self._partition_of[key] = self._partitioner(
                key, self._partitions, self._partitions
            )
        return partition

    def _lost(self, count: int, exc: Exception) -> None:
        self.dropped += count
        print(f'{{"event": "logs.send_failed", "error": "{type(exc).__name__}"}}', file=sys.stderr)
