"""One input partition's way out: its finished records' envelopes and its offsets, committed
together.

Each assigned partition has a `PartitionChannel`. A finished record hands it the records to
publish (`finish`, never awaits); every `interval_s`, or as soon as `max_batch` records are
ready, the channel publishes what is ready and commits the partition's offset in one step
(`flush`). With exactly-once on, that step is one Kafka transaction of a producer whose
transactional id belongs to this partition (`TransactionalSink`): initialising it fences the
partition's previous owner and finishes its open transaction, so a zombie can never commit
envelopes for records someone else now runs. With exactly-once off, envelopes are sent and then
the offset committed (`AtLeastOnceSink`): a crash between the two repeats them.

Results above the watermark are published at once; the commit's metadata lists them so a later
owner skips them (`partitions.offsets`, `partitions.commit_metadata`). When a failure leaves it
unknown whether a transaction committed, the channel re-initialises its producer (which settles
the transaction either way) and reads the committed offset back to decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import OffsetAndMetadata
from structlog.typing import FilteringBoundLogger

from consumer.broker.partitioner import FastPartitioner
from consumer.partitions.commit_metadata import MAX_METADATA_CHARS
from consumer.partitions.offsets import CommitPoint, PartitionOffsets
from consumer.pipeline.rendering import TOO_LARGE, OutcomeRenderer, OutMessage

ReadCommitted = Callable[[TopicPartition], Awaitable[CommitPoint | None]]

_STOP_TIMEOUT_S = 5.0


class PartitionFenced(Exception):
    """Another engine initialised this partition's transactional producer: it owns it now."""


class DeliveryFailed(Exception):
    def __init__(self, message: OutMessage, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__} on {message.topic}")
        self.message = message
        self.error = error


class CommitSink(Protocol):
    async def open(self) -> None: ...

    async def publish(
        self, tp: TopicPartition, messages: list[OutMessage], point: CommitPoint
    ) -> bool:
        """Publish `messages` and commit `point`; True when the offset commit went through.
        Raises `PartitionFenced`, `DeliveryFailed`, or anything else for an unknown outcome."""
        ...

    async def settle(self) -> bool:
        """After a failed `publish`: True if it certainly did not commit; False if unknown."""
        ...

    async def close(self) -> None: ...


class TransactionalSink:
    """A transactional producer owned by one input partition."""

    def __init__(self, make_producer: Callable[[], AIOKafkaProducer], group_id: str) -> None:
        self._make_producer = make_producer
        self._group_id = group_id
        self._producer: AIOKafkaProducer | None = None

    async def open(self) -> None:
        producer = self._make_producer()
        try:
            # InitProducerId: bumps the epoch (fencing the previous owner's producer) and
            # completes or aborts that owner's open transaction before it returns.
            await producer.start()
        except BaseException:
            await _stop_quietly(producer)
            raise
        self._producer = producer

    async def publish(
        self, tp: TopicPartition, messages: list[OutMessage], point: CommitPoint
    ) -> bool:
        if self._producer is None:  # a re-initialisation failed earlier
            await self.open()
        producer = self._producer
        assert producer is not None
        try:
            await producer.begin_transaction()
            await _send_all(producer, messages)
            await producer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(point.offset, point.metadata)}, self._group_id
            )
            await producer.commit_transaction()
        except ProducerFenced as exc:
            raise PartitionFenced(str(tp)) from exc
        except DeliveryFailed as exc:
            if isinstance(exc.error, ProducerFenced):
                raise PartitionFenced(str(tp)) from exc
            raise
        return True

    async def settle(self) -> bool:
        producer = self._producer
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.abort_transaction(), _STOP_TIMEOUT_S)
                return True
        # The producer is stuck or dead (e.g. its commit is still in flight): a new one with the
        # same transactional id settles the open transaction, committed or aborted.
        self._producer = None
        if producer is not None:
            asyncio.get_running_loop().create_task(_stop_quietly(producer))
        try:
            await self.open()
        except ProducerFenced as exc:
            raise PartitionFenced("while re-initialising") from exc
        return False

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_quietly(producer)


class AtLeastOnceSink:
    """The shared idempotent producer, then a consumer commit: a crash between the two can
    publish an envelope twice (exactly-once off)."""

    def __init__(
        self, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer, log: FilteringBoundLogger
    ) -> None:
        self._producer = producer
        self._consumer = consumer
        self._log = log

    async def open(self) -> None:
        return None

    async def publish(
        self, tp: TopicPartition, messages: list[OutMessage], point: CommitPoint
    ) -> bool:
        await _send_all(self._producer, messages)
        try:
            await self._consumer.commit({tp: OffsetAndMetadata(point.offset, point.metadata)})
        except KafkaError as exc:
            # A rebalance in progress or a broker away: the next flush commits again.
            self._log.warning("commit.failed", partition=tp.partition, error=type(exc).__name__)
            return False
        return True

    async def settle(self) -> bool:
        return True  # nothing was committed: the sends are repeated (at-least-once)

    async def close(self) -> None:
        return None


class PartitionChannel:
    def __init__(
        self,
        tp: TopicPartition,
        offsets: PartitionOffsets,
        sink: CommitSink,
        *,
        renderer: OutcomeRenderer,
        read_committed: ReadCommitted,
        log: FilteringBoundLogger,
        interval_s: float,
        max_batch: int,
        on_flushed: Callable[[float], None] | None = None,
        on_failed: Callable[[], None] | None = None,
    ) -> None:
        self.tp = tp
        self.offsets = offsets
        self._sink = sink
        self._renderer = renderer
        self._read_committed = read_committed
        self._log = log.bind(partition=tp.partition)
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._on_flushed = on_flushed
        self._on_failed = on_failed
        self._ready: dict[int, list[OutMessage]] = {}
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self.closed = False
        self.fenced = False
        self._stopping = False

    @property
    def held(self) -> int:
        """Finished records whose envelopes are not committed yet."""
        return len(self._ready)

    def finish(self, offset: int, messages: list[OutMessage]) -> None:
        if self.closed:  # revoked meanwhile: the next owner runs the record again
            return
        self._ready[offset] = messages
        if len(self._ready) >= self._max_batch:
            self._wake.set()

    async def run(self) -> None:
        """Flush every interval until closed. Failures back off; fencing ends the loop (with
        `fenced` set: the partition's owner decides what follows)."""
        backoff = 0.0
        while not self.closed and not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval_s + backoff)
            self._wake.clear()
            if self.closed or self._stopping:
                return
            try:
                flushed = await self.flush()
            except PartitionFenced:
                self.fenced = True
                self._log.error("partition.fenced")
                return
            except Exception as exc:  # the broker is away, or a bug: never end the loop for it
                self._log.warning("flush.failed", error=type(exc).__name__)
                flushed = False
            if not flushed and self._on_failed is not None:
                self._on_failed()
            backoff = 0.0 if flushed else min(max(backoff * 2, 0.2), 5.0)

    async def flush(self) -> bool:
        """Publish what is ready and commit; False after a failure (retried later)."""
        async with self._flush_lock:
            return await self._flush()

    async def _flush(self) -> bool:
        finished = list(self._ready)
        point = self.offsets.point(finished)
        if point is None or (not finished and point == self.offsets.committed):
            return True
        if len(point.metadata) > MAX_METADATA_CHARS:
            # Too many scattered results above the watermark to record: publish only those
            # that move the watermark; the rest wait until it passes them.
            finished = [o for o in finished if o < point.offset]
            point = self.offsets.point(finished)
            assert point is not None
            point = _fit(point)
        messages = [m for offset in sorted(finished) for m in self._ready[offset]]
        started = time.monotonic()
        try:
            committed = await self._sink.publish(self.tp, messages, point)
        except PartitionFenced:
            raise
        except Exception as exc:
            if isinstance(exc, DeliveryFailed):
                self._log.warning("publish.retrying", topic=exc.message.topic, error=str(exc))
                if isinstance(exc.error, TOO_LARGE):
                    self._replace(exc.message)
            else:
                self._log.warning("publish.retrying", error=type(exc).__name__)
            if not await self._sink.settle() and await self._went_through(point):
                return self._done(finished, point, committed=True, started=started)
            return False
        return self._done(finished, point, committed=committed, started=started)

    def _done(
        self, finished: list[int], point: CommitPoint, *, committed: bool, started: float
    ) -> bool:
        self.offsets.apply(finished)
        if committed:
            self.offsets.committed = point
        for offset in finished:
            del self._ready[offset]
        if self._on_flushed is not None:
            self._on_flushed(time.monotonic() - started)
        return True

    async def _went_through(self, point: CommitPoint) -> bool:
        """After a failure of unknown outcome, the committed offset tells what happened. Until
        it can be read nothing is decided: guessing would lose or duplicate envelopes."""
        delay = 0.2
        while not self.closed:
            try:
                committed = await self._read_committed(self.tp)
            except Exception as exc:
                self._log.warning("commit.read_failed", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            went_through = committed == point
            self._log.info("transaction.settled", committed=went_through)
            return went_through
        return False  # closing: nothing more is published from here; the next owner decides

    def _replace(self, message: OutMessage) -> None:
        for offset, messages in self._ready.items():
            for index, candidate in enumerate(messages):
                if candidate is message:
                    if message.envelope is None:  # a dead letter: the envelope still goes out
                        self._log.error("dead_letter.too_large", offset=offset)
                        del messages[index]
                    else:
                        messages[index] = self._renderer.shrink(message)
                    return

    def stop_flushing(self) -> None:
        """End `run` after the flush in progress, if any: the owner flushes one last time."""
        self._stopping = True
        self._wake.set()

    async def close(self) -> None:
        self.closed = True
        self._wake.set()
        await self._sink.close()


def _fit(point: CommitPoint) -> CommitPoint:
    """Drop the highest ranges until the metadata fits: those records may run twice after a
    crash (logged), which beats a commit the broker refuses."""
    ranges = list(point.done_above)
    while ranges and len(CommitPoint(point.offset, tuple(ranges)).metadata) > MAX_METADATA_CHARS:
        ranges.pop()
    return CommitPoint(point.offset, tuple(ranges))


# Larger messages are sent one by one (`send()` checks them against `max_request_size`); the
# rest are appended to record batches, which hold far more than this.
_BATCHED_MAX_BYTES = 64 * 1024


async def _send_all(producer: AIOKafkaProducer, messages: list[OutMessage]) -> None:
    """Send every message, then wait for all acknowledgements; the first failure raises.

    Messages are appended to one record batch per topic partition, on the partition `send()`
    would choose (murmur2 of the key): ~1 us a message instead of `send()`'s ~4 us."""
    deliveries: list[tuple[OutMessage, Any]] = []
    batches: dict[tuple[str, int], tuple[Any, list[OutMessage]]] = {}
    partitions_of: dict[str, list[int]] = {}

    async def submit(topic: str, partition: int) -> None:
        batch, members = batches.pop((topic, partition))
        future = await producer.send_batch(batch, topic, partition=partition)
        deliveries.extend((member, future) for member in members)

    for message in messages:
        if message.size > _BATCHED_MAX_BYTES:
            try:
                future = await producer.send(
                    message.topic, value=message.value, key=message.key, headers=message.headers
                )
            except TOO_LARGE as exc:  # refused before sending: larger than max_request_size
                raise DeliveryFailed(message, exc) from exc
            deliveries.append((message, future))
            continue
        topic = message.topic
        partitions = partitions_of.get(topic)
        if partitions is None:
            partitions = partitions_of[topic] = sorted(await producer.partitions_for(topic))
        partition = _PARTITIONER(message.key, partitions, partitions)
        entry = batches.get((topic, partition))
        if entry is None:
            entry = batches[(topic, partition)] = (producer.create_batch(), [])
        if (
            entry[0].append(
                key=message.key, value=message.value, timestamp=None, headers=message.headers
            )
            is None
        ):  # full: send it, start the next one
            await submit(topic, partition)
            entry = batches[(topic, partition)] = (producer.create_batch(), [])
            entry[0].append(
                key=message.key, value=message.value, timestamp=None, headers=message.headers
            )
        entry[1].append(message)
    for topic, partition in list(batches):
        await submit(topic, partition)
    outcomes = await asyncio.gather(*(f for _, f in deliveries), return_exceptions=True)
    for (message, _), outcome in zip(deliveries, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            raise DeliveryFailed(message, outcome)


_PARTITIONER = FastPartitioner()


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), _STOP_TIMEOUT_S)
