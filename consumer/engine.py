"""The engine: the consume loop. A record's whole path is `Engine.take`.

fetch (`getmany`) -> intake (bytes -> a request or the reason it is not one) -> schedule (into
its key's lane; a record that waits on nothing and whose lane is idle is processed at once,
without a task) -> process (run the action, render exactly one envelope) -> hand to its
partition, whose channel publishes it and commits the offset in one Kafka transaction
(`consumer.partitions`).

The parts are built by `consumer.app`; the engine only drives them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from structlog.typing import FilteringBoundLogger

from actions.base import NO_SLOT
from consumer.ops.metrics import EngineMetrics
from consumer.partitions.assignment import Partitions
from consumer.partitions.channel import PartitionChannel
from consumer.pipeline.intake import project_of
from consumer.pipeline.processing import RecordProcessor, Work
from consumer.pipeline.scheduler import KeyedScheduler

_FETCH_TIMEOUT_MS = 200
_MAX_FETCH_RECORDS = 1000
# Records processed at once before the loop gives other tasks a turn.
_IMMEDIATE_PER_TURN = 400

T = TypeVar("T")


class Engine:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        partitions: Partitions,
        scheduler: KeyedScheduler[Work],
        processor: RecordProcessor,
        *,
        max_buffered: int,
        drain_timeout_s: float,
        metrics: EngineMetrics,
        log: FilteringBoundLogger,
    ) -> None:
        self._consumer = consumer
        self._partitions = partitions
        self._scheduler = scheduler
        self._processor = processor
        self._max_buffered = max_buffered
        self._drain_timeout_s = drain_timeout_s
        self._metrics = metrics
        self._log = log

    @property
    def held(self) -> int:
        """Records accepted and not yet published: queued, running, or finished and waiting
        for their partition's next transaction."""
        return self._scheduler.held + self._partitions.held

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then drain, commit and let go of every partition."""
        consumer, partitions, limit = self._consumer, self._partitions, self._max_buffered
        while not stop.is_set():
            held = self.held
            # Backpressure: a full buffer pauses fetching instead of growing without bound.
            # getmany() keeps being called so the consumer stays in its group.
            if held >= limit:
                partitions.buffer_full = True
            elif partitions.buffer_full and held <= limit // 2:
                partitions.buffer_full = False
            partitions.apply_pauses()
            batch = await consumer.getmany(
                timeout_ms=_FETCH_TIMEOUT_MS,
                max_records=max(1, min(limit - held, _MAX_FETCH_RECORDS)),
            )
            for tp, records in batch.items():
                channel = partitions.channel(tp)
                if channel is None:
                    # Revoked, fenced or still opening: not ours to run. Fetched records are
                    # not tracked, so they are neither committed nor lost.
                    continue
                self._metrics.consumed(tp.topic, tp.partition, len(records))  # ops
                await self.take(tp, channel, records)
        await self._shutdown()

    async def take(self, tp: TopicPartition, channel: PartitionChannel, records: list[Any]) -> None:
        """A fetched batch of one partition, record by record, in offset order."""
        scheduler, processor, offsets = self._scheduler, self._processor, channel.offsets
        consumed_at = time.time()
        immediate = 0
        for record in records:
            if offsets.add(record.offset):
                channel.skipped()  # a previous owner published its envelope already
                continue
            key = record.key or None
            try:
                decoded = processor.intake(record)
            except Exception:  # a bug: the record still gets its envelope, in its lane
                self._log.exception("engine.bug", partition=tp.partition, offset=record.offset)
                decoded = None
            work = Work(record, decoded, channel, consumed_at)
            if (
                decoded is not None
                and processor.is_immediate(decoded)
                and scheduler.lane_idle(tp, key)
            ):
                try:
                    messages = _completed(processor.process(work, NO_SLOT))
                except _Suspended:  # a bug: the record still gets its envelope, in its lane
                    self._log.exception("engine.bug", partition=tp.partition, offset=record.offset)
                    bug = Work(record, None, channel, consumed_at)
                    scheduler.submit(tp, key, project_of(decoded), bug)
                    continue
                channel.finish(record.offset, messages)
                immediate += 1
                if immediate % _IMMEDIATE_PER_TURN == 0:
                    # Let the log sink, the transactions and the running actions have a
                    # turn: a batch processed in one go piled up its log events (memory,
                    # and events dropped from the sink's bounded queue).
                    await asyncio.sleep(0)
                continue
            scheduler.submit(tp, key, project_of(decoded), work)

    async def _shutdown(self) -> None:
        self._log.info("engine.stopping", in_flight=self._scheduler.running, held=self.held)
        partitions = self._partitions
        dropped, abandoned = await partitions.release(partitions.owned(), self._drain_timeout_s)
        self._log.info("engine.drained", not_started=dropped, abandoned=abandoned)


class _Suspended(RuntimeError):
    """A coroutine driven by `_completed` waited on something after all."""


def _completed(coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that `RecordProcessor.is_immediate` said waits on nothing,
    driven to its end here instead of in a task (no task, no loop turn per record)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise _Suspended("an immediate record's processing waited on something")
