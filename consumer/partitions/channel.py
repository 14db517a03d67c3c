"""One block of input partitions' way out: their finished records' envelopes and their offsets,
committed together.

Each assigned partition has a `PartitionChannel`: its offsets and its finished records. A
finished record hands it the records to publish (`finish`, never awaits). The partitions of one
block (`partitions.blocks`) share a `BlockChannel` and its sink: once something finished it
waits `interval_s` (or less, when `max_batch` records are ready) to gather more, then publishes
what is ready in every partition of the block and commits their offsets in one step (`flush`),
one Kafka transaction with exactly-once on (`partitions.sinks`). An idle block has no timer.

Results above the watermark are published at once; the commit's metadata lists them so a later
owner skips them (`partitions.offsets`, `partitions.commit_metadata`). When a failure leaves it
unknown whether a transaction committed, the sink re-initialises its producer (which settles
the transaction either way) and the committed offsets are read back to decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping

from aiokafka import TopicPartition
from structlog.typing import FilteringBoundLogger

from consumer.partitions.commit_metadata import MAX_METADATA_CHARS
from consumer.partitions.offsets import CommitPoint, PartitionOffsets
from consumer.partitions.sinks import (
    UNDELIVERABLE_REPLY,
    CommitSink,
    DeliveryFailed,
    PartitionFenced,
)
from consumer.pipeline.rendering import TOO_LARGE, OutcomeRenderer, OutMessage

ReadCommitted = Callable[
    [Collection[TopicPartition]], Awaitable[Mapping[TopicPartition, CommitPoint | None]]
]

__all__ = ["BlockChannel", "DeliveryFailed", "PartitionChannel", "PartitionFenced"]


class PartitionChannel:
    """One partition of a block: its offsets and the finished records not yet committed."""

    def __init__(self, tp: TopicPartition, offsets: PartitionOffsets, block: BlockChannel):
        self.tp = tp
        self.offsets = offsets
        self._block = block
        self._ready: dict[int, list[OutMessage]] = {}
        self.closed = False

    @property
    def held(self) -> int:
        """Finished records whose envelopes are not committed yet."""
        return len(self._ready)

    def finish(self, offset: int, messages: list[OutMessage]) -> None:
        if self.closed:  # revoked meanwhile: the next owner runs the record again
            return
        self._ready[offset] = messages
        self._block.ready()

    def skipped(self) -> None:
        """A fetched record a previous owner finished: the watermark may move, commit it."""
        self._block.ready()

    def _prepared(self) -> tuple[list[int], CommitPoint] | None:
        """What this partition adds to the next transaction (None: nothing)."""
        finished = list(self._ready)
        point = self.offsets.point(finished)
        if point is None or (not finished and point == self.offsets.committed):
            return None
        if len(point.metadata) > MAX_METADATA_CHARS:
            # Too many scattered results above the watermark to record: publish only those
            # that move the watermark; the rest wait until it passes them.
            finished = [o for o in finished if o < point.offset]
            point = self.offsets.point(finished)
            assert point is not None
            point = _fit(point)
        return finished, point

    def _messages(self, finished: list[int]) -> list[OutMessage]:
        ready = self._ready
        return [m for offset in sorted(finished) for m in ready[offset]]

    def _done(self, finished: list[int], point: CommitPoint, *, committed: bool) -> None:
        self.offsets.apply(finished)
        if committed:
            self.offsets.committed = point
        for offset in finished:
            del self._ready[offset]

    def _replace(
        self,
        message: OutMessage,
        error: BaseException,
        renderer: OutcomeRenderer,
        log: FilteringBoundLogger,
    ) -> bool:
        for offset, messages in self._ready.items():
            for index, candidate in enumerate(messages):
                if candidate is message:
                    if message.reply and not isinstance(error, TOO_LARGE):
                        # No such topic or partition: the results topic still gets its envelope.
                        log.error(
                            "reply.undeliverable",
                            partition=self.tp.partition,
                            offset=offset,
                            topic=message.topic,
                            reply_partition=message.partition,
                            error=type(error).__name__,
                        )
                        del messages[index]
                    elif message.envelope is None:  # a dead letter: the envelope still goes out
                        log.error(
                            "dead_letter.too_large", partition=self.tp.partition, offset=offset
                        )
                        del messages[index]
                    else:  # an envelope, or its reply copy: its smaller stand-in goes out
                        messages[index] = renderer.shrink(message)
                    return True
        return False


_Prepared = tuple[PartitionChannel, list[int], CommitPoint]


class BlockChannel:
    """The partitions of one block and their shared sink: one transaction for all of them."""

    def __init__(
        self,
        name: str,
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
        self.name = name
        self.partitions: dict[TopicPartition, PartitionChannel] = {}
        self._sink = sink
        self._renderer = renderer
        self._read_committed = read_committed
        self._log = log.bind(block=name)
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._on_flushed = on_flushed
        self._on_failed = on_failed
        self._waiting = 0  # records finished since the last flush began
        self._wake = asyncio.Event()  # something to commit
        self._full = asyncio.Event()  # max_batch records wait: commit without lingering
        self._flush_lock = asyncio.Lock()
        self.closed = False
        self.fenced = False
        self._stopping = False

    def add(self, tp: TopicPartition, offsets: PartitionOffsets) -> PartitionChannel:
        channel = self.partitions[tp] = PartitionChannel(tp, offsets, self)
        if offsets.committed is not None and offsets.committed.done_above:
            self.ready()  # the watermark may pass the inherited ranges: worth a commit
        return channel

    @property
    def held(self) -> int:
        return sum(p.held for p in self.partitions.values())

    def ready(self) -> None:
        self._waiting += 1
        self._wake.set()
        if self._waiting >= self._max_batch:
            self._full.set()

    async def run(self) -> None:
        """Commit what finished, `interval_s` after the first of it, until closed. Failures
        back off; fencing ends the loop (with `fenced` set: the owner decides what follows)."""
        backoff = 0.0
        while not self.closed and not self._stopping:
            await self._wake.wait()
            if not self._full.is_set() or backoff:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._interval_s + backoff)
            if self.closed or self._stopping:
                return
            self._wake.clear()
            self._full.clear()
            self._waiting = 0
            try:
                flushed = await self.flush()
            except PartitionFenced:
                self.fenced = True
                self._log.error("partition.fenced", partitions=sorted(self._partition_numbers()))
                return
            except Exception as exc:  # the broker is away, or a bug: never end the loop for it
                self._log.warning("flush.failed", error=type(exc).__name__)
                flushed = False
            if not flushed:
                self._wake.set()  # what failed is still there: try again after the backoff
                if self._on_failed is not None:
                    self._on_failed()
            backoff = 0.0 if flushed else min(max(backoff * 2, 0.2), 5.0)

    async def flush(self) -> bool:
        """Publish what is ready and commit; False after a failure (retried later)."""
        async with self._flush_lock:
            return await self._flush()

    async def _flush(self) -> bool:
        batch: list[_Prepared] = []
        for channel in self.partitions.values():
            prepared = channel._prepared()
            if prepared is not None:
                batch.append((channel, *prepared))
        if not batch:
            return True
        messages = [m for channel, finished, _ in batch for m in channel._messages(finished)]
        points = {channel.tp: point for channel, _, point in batch}
        started = time.monotonic()
        try:
            committed = await self._sink.publish(messages, points)
        except PartitionFenced:
            raise
        except Exception as exc:
            if isinstance(exc, DeliveryFailed):
                self._log.warning("publish.retrying", topic=exc.message.topic, error=str(exc))
                if isinstance(exc.error, TOO_LARGE) or (
                    exc.message.reply and isinstance(exc.error, UNDELIVERABLE_REPLY)
                ):
                    for channel, _, _ in batch:
                        if channel._replace(exc.message, exc.error, self._renderer, self._log):
                            break
            else:
                self._log.warning("publish.retrying", error=type(exc).__name__)
            if not await self._sink.settle() and await self._went_through(points):
                return self._done(batch, committed=True, started=started)
            return False
        return self._done(batch, committed=committed, started=started)

    def _done(self, batch: list[_Prepared], *, committed: bool, started: float) -> bool:
        for channel, finished, point in batch:
            channel._done(finished, point, committed=committed)
        if self._on_flushed is not None:
            self._on_flushed(time.monotonic() - started)
        return True

    async def _went_through(self, points: Mapping[TopicPartition, CommitPoint]) -> bool:
        """After a failure of unknown outcome, the committed offsets tell what happened. Until
        they can be read nothing is decided: guessing would lose or duplicate envelopes."""
        delay = 0.2
        while not self.closed:
            try:
                committed = await self._read_committed(list(points))
            except Exception as exc:
                self._log.warning("commit.read_failed", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            # One transaction: it committed every point or none.
            went_through = all(committed.get(tp) == point for tp, point in points.items())
            self._log.info("transaction.settled", committed=went_through)
            return went_through
        return False  # closing: nothing more is published from here; the next owner decides

    def stop_flushing(self) -> None:
        """End `run` after the flush in progress, if any: the owner flushes one last time."""
        self._stopping = True
        self._wake.set()
        self._full.set()

    async def close(self) -> None:
        self.closed = True
        for channel in self.partitions.values():
            channel.closed = True
        self._wake.set()
        self._full.set()
        await self._sink.close()

    def _partition_numbers(self) -> list[int]:
        return [tp.partition for tp in self.partitions]


def _fit(point: CommitPoint) -> CommitPoint:
    """Drop the highest ranges until the metadata fits: those records may run twice after a
    crash (logged), which beats a commit the broker refuses."""
    ranges = list(point.done_above)
    while ranges and len(CommitPoint(point.offset, tuple(ranges)).metadata) > MAX_METADATA_CHARS:
        ranges.pop()
    return CommitPoint(point.offset, tuple(ranges))
