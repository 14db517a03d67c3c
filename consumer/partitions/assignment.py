"""The partitions this engine owns: one `PartitionChannel` each, opened on assignment, released
on revocation, reopened after fencing, paused when they must not be fetched.

A partition's life: assigned -> opening (its producer is initialised, which fences the previous
owner; then the committed offset is read back and the consumer seeks to it) -> open (records
are fetched, run, and committed through its channel) -> released (revoked or shutdown: running
work drains within a bound, the last transaction is flushed, the producer closed). A partition
that is fenced while open (another engine initialised its producer) drops its work; if it is
still ours a session timeout later, it is opened again.

Per-partition state lives in one `Partition` object; this class is the only one that creates,
reads or drops them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from structlog.typing import FilteringBoundLogger

from consumer.partitions.channel import CommitSink, PartitionChannel
from consumer.partitions.offsets import CommitPoint, PartitionOffsets
from consumer.pipeline.rendering import OutcomeRenderer

# Shutdown and revoke: how long the last transactions may take once running work has drained.
FINAL_FLUSH_TIMEOUT_S = 5.0


class Drainable(Protocol):
    """What releasing a partition needs of the scheduler: drop its queued work, wait for (or
    abandon) its running work."""

    def discard_queued(self, partitions: set[Hashable]) -> int: ...

    async def drain(self, partitions: set[Hashable] | None, timeout_s: float) -> int: ...


class CommittedOffsets:
    """Reads a partition's committed offset (and the ranges done above it) from the group."""

    def __init__(self, admin: AIOKafkaAdminClient, group_id: str) -> None:
        self._admin = admin
        self._group_id = group_id

    async def read(self, tp: TopicPartition) -> CommitPoint | None:
        found = await self._admin.list_consumer_group_offsets(self._group_id, partitions=[tp])
        committed = found.get(tp)
        if committed is None or committed.offset < 0:
            return None
        return CommitPoint.parse(committed.offset, committed.metadata)


@dataclass(frozen=True)
class ChannelOptions:
    interval_s: float
    max_batch: int
    max_uncommitted_span: int
    session_timeout_s: float
    on_flushed: Callable[[float], None] | None = None  # ops: transaction latency
    on_failed: Callable[[], None] | None = None  # ops: failed transactions


@dataclass(eq=False)
class Partition:
    """One assigned partition: opening (its producer initialising, or waiting to reopen after
    fencing), then open (its channel: offsets, finished records, sink; and its flush loop)."""

    tp: TopicPartition
    opening: asyncio.Task[None] | None = field(default=None, repr=False)
    channel: PartitionChannel | None = None
    flushing: asyncio.Task[None] | None = field(default=None, repr=False)
    paused: bool = False  # as told to the consumer


class Partitions:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        committed: CommittedOffsets,
        make_sink: Callable[[TopicPartition], CommitSink],
        *,
        scheduler: Drainable,
        renderer: OutcomeRenderer,
        options: ChannelOptions,
        log: FilteringBoundLogger,
    ) -> None:
        self._consumer = consumer
        self._committed = committed
        self._make_sink = make_sink
        self._scheduler = scheduler
        self._renderer = renderer
        self._options = options
        self._log = log
        self._owned: dict[TopicPartition, Partition] = {}
        self.buffer_full = False  # set by the consume loop: pause every partition

    @property
    def assigned(self) -> set[TopicPartition]:
        return set(self._owned)

    def channel(self, tp: TopicPartition) -> PartitionChannel | None:
        """The channel of an open partition; None while it opens, or once it is revoked or
        fenced (its fetched records are then not ours to run)."""
        partition = self._owned.get(tp)
        if partition is None or partition.channel is None or partition.channel.closed:
            return None
        return partition.channel

    @property
    def held(self) -> int:
        """Finished records waiting for their partition's next transaction."""
        return sum(p.channel.held for p in self._owned.values() if p.channel is not None)

    def apply_pauses(self) -> None:
        """Pause what must not be fetched: everything while the buffer is full; otherwise the
        partitions still opening and those whose uncommitted span reached its bound."""
        span_limit = self._options.max_uncommitted_span
        pause: list[TopicPartition] = []
        resume: list[TopicPartition] = []
        for tp in self._consumer.assignment():
            channel = self.channel(tp)
            wanted = self.buffer_full or channel is None or channel.offsets.span >= span_limit
            partition = self._owned.get(tp)
            if partition is None:  # assigned by the group, not yet handed to us
                pause.append(tp)
            elif wanted != partition.paused:
                partition.paused = wanted
                (pause if wanted else resume).append(tp)
        if pause:
            self._consumer.pause(*pause)
        if resume:
            self._consumer.resume(*resume)

    # -- assignment ------------------------------------------------------------------------

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            partition = self._owned.setdefault(tp, Partition(tp))
            if partition.channel is None and partition.opening is None:
                partition.opening = asyncio.create_task(self._open(partition))
        self.apply_pauses()  # nothing of theirs is fetched before their channel is open
        self._log.info("partitions.assigned", partitions=_names(assigned))

    async def _open(self, partition: Partition) -> None:
        """Initialise the partition's producer (fencing its previous owner), then read where
        that owner left off and continue from there. Retried until it works or is revoked."""
        tp = partition.tp
        delay = 0.2
        try:
            while True:
                sink = self._make_sink(tp)
                try:
                    await sink.open()
                    start = await self._committed.read(tp)
                    break
                except asyncio.CancelledError:  # revoked while opening
                    await sink.close()
                    raise
                except Exception as exc:
                    await sink.close()
                    self._log.warning(
                        "partition.open_failed", partition=tp.partition, error=type(exc).__name__
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if start is not None:
                self._consumer.seek(tp, start.offset)
            options = self._options
            channel = PartitionChannel(
                tp,
                PartitionOffsets(start),
                sink,
                renderer=self._renderer,
                read_committed=self._committed.read,
                log=self._log,
                interval_s=options.interval_s,
                max_batch=options.max_batch,
                on_flushed=options.on_flushed,
                on_failed=options.on_failed,
            )
            partition.channel = channel
            partition.flushing = asyncio.create_task(self._flush_loop(partition, channel))
            if start is not None and start.done_above:
                self._log.info(
                    "partition.resumed",
                    partition=tp.partition,
                    offset=start.offset,
                    done_above=len(start.done_above),
                )
        finally:
            if partition.opening is asyncio.current_task():
                partition.opening = None

    async def _flush_loop(self, partition: Partition, channel: PartitionChannel) -> None:
        """The channel's flush loop; when it ends because the partition was fenced, another
        engine took the partition over while we thought we had it (we were too slow to rejoin
        the group): drop its work; the group tells us about the new owner soon."""
        await channel.run()
        if not channel.fenced or partition.channel is not channel:
            return
        partition.channel = partition.flushing = None
        self._scheduler.discard_queued({partition.tp})
        await channel.close()
        if self._owned.get(partition.tp) is partition:
            partition.opening = asyncio.create_task(self._reopen_if_still_ours(partition))

    async def _reopen_if_still_ours(self, partition: Partition) -> None:
        """Fencing usually means another engine owns the partition, and the group revokes it
        from us within a session timeout. If it is still ours after that (the broker timed our
        own transaction out), take it up again rather than leave it idle."""
        await asyncio.sleep(self._options.session_timeout_s)
        partition.opening = None
        tp = partition.tp
        if tp in self._consumer.assignment() and self._owned.get(tp) is partition:
            self._log.warning("partition.reopening", partition=tp.partition)
            partition.opening = asyncio.create_task(self._open(partition))

    # -- revocation and shutdown -----------------------------------------------------------

    async def on_revoked(
        self, revoked: set[TopicPartition], drain_s: float, flush_s: float
    ) -> None:
        if not revoked:
            return
        self._log.info("partitions.revoked", partitions=_names(revoked))
        dropped, abandoned = await self.release(revoked, drain_s, flush_s)
        if dropped or abandoned:
            self._log.info("partitions.released", not_started=dropped, abandoned=abandoned)

    def owned(self) -> set[TopicPartition]:
        """Every partition open or opening: what a shutdown releases."""
        return set(self._owned)

    async def release(
        self,
        partitions: set[TopicPartition],
        drain_s: float,
        flush_s: float = FINAL_FLUSH_TIMEOUT_S,
    ) -> tuple[int, int]:
        """Stop intake for `partitions`, let their running actions finish within `drain_s`,
        publish and commit what finished, close their producers. Returns (not started,
        abandoned): those run again on the next owner."""
        released = [p for tp in partitions if (p := self._owned.pop(tp, None)) is not None]
        for partition in released:
            if partition.opening is not None:
                partition.opening.cancel()
        scope: set[Hashable] = set(partitions)
        dropped = self._scheduler.discard_queued(scope)
        abandoned = await self._scheduler.drain(scope, drain_s)
        channels = [p.channel for p in released if p.channel is not None]
        for channel in channels:
            channel.stop_flushing()  # a flush in progress completes; none starts after it
        if channels:
            await asyncio.wait(
                [asyncio.create_task(self._final_flush(c, flush_s)) for c in channels]
            )
        for partition in released:
            if partition.flushing is not None and not partition.flushing.done():
                partition.flushing.cancel()
        return dropped, abandoned

    async def _final_flush(self, channel: PartitionChannel, bound_s: float) -> None:
        try:
            if not channel.fenced:
                await asyncio.wait_for(channel.flush(), bound_s)
        except Exception as exc:  # uncommitted records simply run again on the next owner
            self._log.warning(
                "partition.final_flush_failed",
                partition=channel.tp.partition,
                error=type(exc).__name__,
            )
        finally:
            await channel.close()


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands the group's decisions to `Partitions`. aiokafka logs and swallows exceptions
    raised here: handle them ourselves."""

    def __init__(
        self,
        partitions: Partitions,
        *,
        drain_timeout_s: float,
        rebalance_timeout_s: float,
        log: FilteringBoundLogger,
    ) -> None:
        self._partitions = partitions
        # Revoking must end well inside the rebalance timeout, or the group goes on without
        # us: half of it for running actions, a quarter for the last transactions.
        self._drain_s = min(drain_timeout_s, rebalance_timeout_s / 2)
        self._flush_s = min(FINAL_FLUSH_TIMEOUT_S, rebalance_timeout_s / 4)
        self._log = log

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self._partitions.on_revoked(set(revoked), self._drain_s, self._flush_s)
        except Exception:
            self._log.exception("partitions.revoke_failed")

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._partitions.on_assigned(set(assigned))
        except Exception:
            self._log.exception("partitions.assign_failed")


def _names(partitions: set[TopicPartition]) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)
