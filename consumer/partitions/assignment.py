"""The partitions this engine owns, by block: one `BlockChannel` a block (`partitions.blocks`),
opened on assignment, released on revocation, reopened after fencing; partitions paused when
they must not be fetched.

A block's life: assigned -> opening (its producer is initialised, which fences the previous
owner; then its partitions' committed offsets are read back and the consumer seeks to them) ->
open (records are fetched, run, and committed through its channel) -> released (revoked or
shutdown: running work drains within a bound, the last transaction is flushed, the producer
closed). A block that cannot open is retried with backoff (counted, and named by `/readyz`);
one that is fenced while open (another engine initialised its producer) drops its work; if it
is still ours a session timeout later, it is opened again.

Per-block state lives in one `OwnedBlock` object; this class is the only one that creates,
reads or drops them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from structlog.typing import FilteringBoundLogger

from consumer.partitions.blocks import Block, block_of
from consumer.partitions.channel import BlockChannel, PartitionChannel
from consumer.partitions.offsets import CommitPoint, PartitionOffsets
from consumer.partitions.sinks import CommitSink
from consumer.pipeline.rendering import OutcomeRenderer

# Shutdown and revoke: how long the last transactions may take once running work has drained.
FINAL_FLUSH_TIMEOUT_S = 5.0
# Opening a block (its producer's InitProducerId, its offsets) is retried after this long:
# aiokafka's own wait for a producer id has no end.
OPEN_TIMEOUT_S = 30.0
_OPEN_BACKOFF_MAX_S = 30.0


class Drainable(Protocol):
    """What releasing a partition needs of the scheduler: drop its queued work, wait for (or
    abandon) its running work."""

    def discard_queued(self, partitions: set[Hashable]) -> int: ...

    async def drain(self, partitions: set[Hashable] | None, timeout_s: float) -> int: ...


class CommittedOffsets:
    """Reads partitions' committed offsets (and the ranges done above them) from the group."""

    def __init__(self, admin: AIOKafkaAdminClient, group_id: str) -> None:
        self._admin = admin
        self._group_id = group_id

    async def read(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, CommitPoint | None]:
        found = await self._admin.list_consumer_group_offsets(
            self._group_id, partitions=list(partitions)
        )
        points: dict[TopicPartition, CommitPoint | None] = {}
        for tp in partitions:
            committed = found.get(tp)
            points[tp] = (
                None
                if committed is None or committed.offset < 0
                else CommitPoint.parse(committed.offset, committed.metadata)
            )
        return points


@dataclass(frozen=True)
class ChannelOptions:
    interval_s: float
    max_batch: int
    max_uncommitted_span: int
    session_timeout_s: float
    blocks: int = 1  # partition p belongs to block p % blocks
    open_timeout_s: float = OPEN_TIMEOUT_S
    on_flushed: Callable[[float], None] | None = None  # ops: transaction latency
    on_failed: Callable[[], None] | None = None  # ops: failed transactions
    on_open_failed: Callable[[], None] | None = None  # ops: failed block openings


@dataclass(eq=False)
class OwnedBlock:
    """One block of assigned partitions: opening (its producer initialising, or waiting to
    reopen after fencing), then open (its channel and its flush loop)."""

    block: Block
    members: set[TopicPartition] = field(default_factory=set)
    opening: asyncio.Task[None] | None = field(default=None, repr=False)
    channel: BlockChannel | None = None
    flushing: asyncio.Task[None] | None = field(default=None, repr=False)
    open_error: str | None = None  # why the last attempt to open failed; None once open


class Partitions:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        committed: CommittedOffsets,
        make_sink: Callable[[Block], CommitSink],
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
        self._blocks: dict[Block, OwnedBlock] = {}
        self._owned: dict[TopicPartition, OwnedBlock] = {}
        self._paused: set[TopicPartition] = set()  # as told to the consumer
        self.buffer_full = False  # set by the consume loop: pause every partition

    @property
    def assigned(self) -> set[TopicPartition]:
        return set(self._owned)

    def channel(self, tp: TopicPartition) -> PartitionChannel | None:
        """The channel of an open partition; None while it opens, or once it is revoked or
        fenced (its fetched records are then not ours to run)."""
        owned = self._owned.get(tp)
        if owned is None or owned.channel is None or owned.channel.closed:
            return None
        return owned.channel.partitions.get(tp)

    @property
    def held(self) -> int:
        """Finished records waiting for their block's next transaction."""
        return sum(b.channel.held for b in self._blocks.values() if b.channel is not None)

    def not_open(self) -> str | None:
        """Why some assigned partitions cannot be worked on, when a block failed to open (None:
        every block is open or opening for the first time)."""
        failing = [b for b in self._blocks.values() if b.channel is None and b.open_error]
        if not failing:
            return None
        partitions = sum(len(b.members) for b in failing)
        return (
            f"{partitions} partitions ({len(failing)} blocks) cannot open: {failing[0].open_error}"
        )

    def apply_pauses(self) -> None:
        """Pause what must not be fetched: everything while the buffer is full; otherwise the
        partitions still opening and those whose uncommitted span reached its bound."""
        span_limit = self._options.max_uncommitted_span
        paused, buffer_full = self._paused, self.buffer_full
        pause: list[TopicPartition] = []
        resume: list[TopicPartition] = []
        for tp in self._consumer.assignment():
            if tp not in self._owned:  # assigned by the group, not yet handed to us
                pause.append(tp)
                paused.add(tp)
                continue
            channel = self.channel(tp)
            wanted = buffer_full or channel is None or channel.offsets.span >= span_limit
            if wanted != (tp in paused):
                if wanted:
                    paused.add(tp)
                    pause.append(tp)
                else:
                    paused.discard(tp)
                    resume.append(tp)
        if pause:
            self._consumer.pause(*pause)
        if resume:
            self._consumer.resume(*resume)

    # -- assignment ------------------------------------------------------------------------

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        # The consumer holds a newly assigned partition's state afresh, unpaused: a pause of an
        # earlier assignment says nothing about it (records fetched before its channel opens
        # would be dropped past their offset).
        self._paused -= assigned
        touched: set[OwnedBlock] = set()
        for tp in assigned:
            block = block_of(tp, self._options.blocks)
            owned = self._blocks.get(block)
            if owned is None:
                owned = self._blocks[block] = OwnedBlock(block)
            owned.members.add(tp)
            self._owned[tp] = owned
            touched.add(owned)
        for owned in touched:
            if owned.opening is None:
                owned.opening = asyncio.create_task(self._open(owned))
        self.apply_pauses()  # nothing of theirs is fetched before their channel is open
        self._log.info("partitions.assigned", partitions=_names(assigned))

    async def _open(self, owned: OwnedBlock) -> None:
        """Initialise the block's producer (fencing its previous owner), then read where that
        owner left off and continue from there. Retried until it works or is revoked."""
        delay = 0.5
        try:
            while True:
                try:
                    await asyncio.wait_for(self._open_once(owned), self._options.open_timeout_s)
                    owned.open_error = None
                    return
                except Exception as exc:
                    owned.open_error = _describe(exc)
                    if self._options.on_open_failed is not None:
                        self._options.on_open_failed()
                    self._log.warning(
                        "partition.open_failed",
                        partitions=sorted(tp.partition for tp in owned.members),
                        error=owned.open_error,
                        retry_in_s=delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _OPEN_BACKOFF_MAX_S)
        finally:
            if owned.opening is asyncio.current_task():
                owned.opening = None

    async def _open_once(self, owned: OwnedBlock) -> None:
        """Open the block's sink if it is not open, then take up every member not taken up."""
        options = self._options
        channel = owned.channel
        if channel is None:
            sink = self._make_sink(owned.block)
            try:
                await sink.open()
            except BaseException:  # revoked (cancelled) while opening, or failed
                await sink.close()
                raise
            channel = BlockChannel(
                f"{owned.block.topic}:{owned.block.number}",
                sink,
                renderer=self._renderer,
                read_committed=self._committed.read,
                log=self._log,
                interval_s=options.interval_s,
                max_batch=options.max_batch,
                on_flushed=options.on_flushed,
                on_failed=options.on_failed,
            )
            owned.channel = channel
            owned.flushing = asyncio.create_task(self._flush_loop(owned, channel))
        while missing := owned.members - channel.partitions.keys():
            starts = await self._committed.read(missing)
            for tp in missing:
                start = starts.get(tp)
                if start is not None:
                    self._consumer.seek(tp, start.offset)
                    if start.done_above:
                        self._log.info(
                            "partition.resumed",
                            partition=tp.partition,
                            offset=start.offset,
                            done_above=len(start.done_above),
                        )
                channel.add(tp, PartitionOffsets(start))

    async def _flush_loop(self, owned: OwnedBlock, channel: BlockChannel) -> None:
        """The channel's flush loop; when it ends because the block was fenced, another engine
        took the block over while we thought we had it (we were too slow to rejoin the group):
        drop its work; the group tells us about the new owner soon."""
        await channel.run()
        if not channel.fenced or owned.channel is not channel:
            return
        owned.channel = owned.flushing = None
        self._scheduler.discard_queued(set(owned.members))
        await channel.close()
        if self._blocks.get(owned.block) is owned:
            owned.opening = asyncio.create_task(self._reopen_if_still_ours(owned))

    async def _reopen_if_still_ours(self, owned: OwnedBlock) -> None:
        """Fencing usually means another engine owns the block, and the group revokes it from
        us within a session timeout. If it is still ours after that (the broker timed our own
        transaction out), take it up again rather than leave it idle."""
        await asyncio.sleep(self._options.session_timeout_s)
        owned.opening = None
        assignment = self._consumer.assignment()
        if self._blocks.get(owned.block) is owned and owned.members & assignment:
            self._log.warning(
                "partition.reopening", partitions=sorted(tp.partition for tp in owned.members)
            )
            owned.opening = asyncio.create_task(self._open(owned))

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
        """Stop intake for the blocks of `partitions`, let their running actions finish within
        `drain_s`, publish and commit what finished, close their producers. Returns (not
        started, abandoned): those run again on the next owner. A block is released whole (the
        group moves blocks whole); members not in `partitions` are taken up again."""
        released = {owned for tp in partitions if (owned := self._owned.get(tp)) is not None}
        scope: set[Hashable] = set()
        for owned in released:
            self._blocks.pop(owned.block, None)
            for tp in owned.members:
                self._owned.pop(tp, None)
                scope.add(tp)
            if owned.opening is not None:
                owned.opening.cancel()
        self._paused.difference_update(scope)
        dropped = self._scheduler.discard_queued(scope)
        abandoned = await self._scheduler.drain(scope, drain_s)
        channels = [owned.channel for owned in released if owned.channel is not None]
        for channel in channels:
            channel.stop_flushing()  # a flush in progress completes; none starts after it
        if channels:
            await asyncio.wait(
                [asyncio.create_task(self._final_flush(c, flush_s)) for c in channels]
            )
        for owned in released:
            if owned.flushing is not None and not owned.flushing.done():
                owned.flushing.cancel()
        kept = {tp for tp in scope if isinstance(tp, TopicPartition)} - partitions
        if kept & self._consumer.assignment():
            await self.on_assigned(kept & self._consumer.assignment())
        return dropped, abandoned

    async def _final_flush(self, channel: BlockChannel, bound_s: float) -> None:
        try:
            if not channel.fenced:
                await asyncio.wait_for(channel.flush(), bound_s)
        except Exception as exc:  # uncommitted records simply run again on the next owner
            self._log.warning(
                "partition.final_flush_failed", block=channel.name, error=type(exc).__name__
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


def _describe(exc: BaseException) -> str:
    """An error's class and message: `NodeNotReadyError` alone does not say why."""
    if isinstance(exc, TimeoutError):
        return "TimeoutError: the broker did not answer within the open timeout"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
