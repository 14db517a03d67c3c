"""Where a block's transactions go: the sinks that publish envelopes and commit offsets.

With exactly-once on, a `TransactionalSink` holds the transactional producer of one block of
input partitions (`partitions.blocks`): initialising it fences the block's previous owner and
finishes its open transaction, so a zombie can never commit envelopes for records someone else
now runs; one transaction publishes the envelopes and commits the offsets of every partition of
the block. With exactly-once off, envelopes are sent and then the offsets committed
(`AtLeastOnceSink`): a crash between the two repeats them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    ProducerFenced,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from aiokafka.structs import OffsetAndMetadata
from structlog.typing import FilteringBoundLogger

from consumer.broker.batches import RecordBatches
from consumer.broker.partitioner import FastPartitioner
from consumer.partitions.offsets import CommitPoint
from consumer.pipeline.rendering import TOO_LARGE, OutMessage

_STOP_TIMEOUT_S = 5.0
# How long a flush waits for a reply topic's metadata before dropping its copy: a requester
# may name a topic that does not exist, and the block's transaction waits meanwhile.
_REPLY_METADATA_TIMEOUT_S = 5.0
# Why a reply copy cannot be published, whatever the retries: it is dropped (and logged).
UNDELIVERABLE_REPLY = (*TOO_LARGE, UnknownTopicOrPartitionError, TopicAuthorizationFailedError)
# aiokafka waits for a producer id without end (the broker away, the coordinator moving).
_OPEN_TIMEOUT_S = 30.0


class PartitionFenced(Exception):
    """Another engine initialised this block's transactional producer: it owns it now."""


class DeliveryFailed(Exception):
    def __init__(self, message: OutMessage, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__} on {message.topic}")
        self.message = message
        self.error = error


class CommitSink(Protocol):
    async def open(self) -> None: ...

    async def publish(
        self, messages: list[OutMessage], points: Mapping[TopicPartition, CommitPoint]
    ) -> bool:
        """Publish `messages` and commit `points`; True when the offset commit went through.
        Raises `PartitionFenced`, `DeliveryFailed`, or anything else for an unknown outcome."""
        ...

    async def settle(self) -> bool:
        """After a failed `publish`: True if it certainly did not commit; False if unknown."""
        ...

    async def close(self) -> None: ...


class TransactionalSink:
    """The transactional producer of one block of input partitions, named `name`."""

    def __init__(
        self, make_producer: Callable[[], AIOKafkaProducer], group_id: str, name: str
    ) -> None:
        self._make_producer = make_producer
        self._name = name
        self._group_id = group_id
        self._producer: AIOKafkaProducer | None = None

    async def open(self) -> None:
        producer = self._make_producer()
        try:
            # InitProducerId: bumps the epoch (fencing the previous owner's producer) and
            # completes or aborts that owner's open transaction before it returns.
            await asyncio.wait_for(producer.start(), _OPEN_TIMEOUT_S)
        except BaseException:
            await _stop_quietly(producer)
            raise
        self._producer = producer

    async def publish(
        self, messages: list[OutMessage], points: Mapping[TopicPartition, CommitPoint]
    ) -> bool:
        if self._producer is None:  # a re-initialisation failed earlier
            await self.open()
        producer = self._producer
        assert producer is not None
        try:
            await producer.begin_transaction()
            await _send_all(producer, messages)
            await producer.send_offsets_to_transaction(_offsets(points), self._group_id)
            await producer.commit_transaction()
        except ProducerFenced as exc:
            raise PartitionFenced(self._name) from exc
        except DeliveryFailed as exc:
            if isinstance(exc.error, ProducerFenced):
                raise PartitionFenced(self._name) from exc
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
        self, messages: list[OutMessage], points: Mapping[TopicPartition, CommitPoint]
    ) -> bool:
        await _send_all(self._producer, messages)
        try:
            await self._consumer.commit(_offsets(points))
        except KafkaError as exc:
            # A rebalance in progress or a broker away: the next flush commits again.
            self._log.warning(
                "commit.failed",
                partitions=sorted(tp.partition for tp in points),
                error=type(exc).__name__,
            )
            return False
        return True

    async def settle(self) -> bool:
        return True  # nothing was committed: the sends are repeated (at-least-once)

    async def close(self) -> None:
        return None


# Larger messages are sent one by one (`send()` checks them against `max_request_size`); the
# rest are appended to record batches, which hold far more than this.
_BATCHED_MAX_BYTES = 64 * 1024


async def _send_all(producer: AIOKafkaProducer, messages: list[OutMessage]) -> None:
    """Send every message, then wait for all acknowledgements; the first failure raises.

    Messages go into record batches (`RecordBatches`), on the partition `send()` would choose
    (murmur2 of the key) unless a reply names its own."""
    singles: list[tuple[list[OutMessage], Any]] = []
    batches: RecordBatches[OutMessage] = RecordBatches(producer)
    partitions_of: dict[str, list[int]] = {}
    for message in messages:
        if message.size > _BATCHED_MAX_BYTES:
            if message.reply and message.partition not in (
                None,
                *await _partitions_for(producer, message),
            ):
                error = UnknownTopicOrPartitionError(f"no partition {message.partition}")
                raise DeliveryFailed(message, error)
            try:
                future = await producer.send(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=message.headers,
                    partition=message.partition,
                )
            except TOO_LARGE as exc:  # refused before sending: larger than max_request_size
                raise DeliveryFailed(message, exc) from exc
            singles.append(([message], future))
            continue
        topic = message.topic
        partitions = partitions_of.get(topic)
        if partitions is None:
            partitions = partitions_of[topic] = await _partitions_for(producer, message)
        partition = message.partition
        if partition is None:
            partition = _PARTITIONER(message.key, partitions, partitions)
        elif partition not in partitions:
            error = UnknownTopicOrPartitionError(f"{topic} has no partition {partition}")
            raise DeliveryFailed(message, error)
        if not await batches.append(
            topic,
            partition,
            message,
            key=message.key,
            value=message.value,
            headers=message.headers,
        ):  # larger than a whole record batch
            raise DeliveryFailed(message, MessageSizeTooLargeError())
    deliveries = [*singles, *await batches.flush()]
    outcomes = await asyncio.gather(*(f for _, f in deliveries), return_exceptions=True)
    for (members, _), outcome in zip(deliveries, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            raise DeliveryFailed(members[0], outcome)


_PARTITIONER = FastPartitioner()


async def _partitions_for(producer: AIOKafkaProducer, message: OutMessage) -> list[int]:
    if not message.reply:
        return sorted(await producer.partitions_for(message.topic))
    try:  # a topic the requester named: it may not exist
        found = await asyncio.wait_for(
            producer.partitions_for(message.topic), _REPLY_METADATA_TIMEOUT_S
        )
    except (TimeoutError, KafkaError) as exc:
        error = exc if isinstance(exc, KafkaError) else UnknownTopicOrPartitionError(message.topic)
        raise DeliveryFailed(message, error) from exc
    return sorted(found)


def _offsets(points: Mapping[TopicPartition, CommitPoint]) -> dict[TopicPartition, Any]:
    return {tp: OffsetAndMetadata(p.offset, p.metadata) for tp, p in points.items()}


async def _stop_quietly(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), _STOP_TIMEOUT_S)
