"""Partitions: opened on assignment by block (paused until open), released on revocation (last
flush, producer closed), retried when opening fails; all per-block state in one `OwnedBlock`."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

import structlog
from aiokafka import TopicPartition

from consumer.partitions.assignment import ChannelOptions, Partitions
from consumer.partitions.blocks import Block
from consumer.partitions.offsets import CommitPoint
from consumer.pipeline.processing import Work
from consumer.pipeline.rendering import OutcomeRenderer, OutMessage
from consumer.pipeline.scheduler import KeyedScheduler

TP0, TP1 = TopicPartition("requests", 0), TopicPartition("requests", 1)


class Consumer:
    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.paused: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


class Committed:
    def __init__(self, points: dict[TopicPartition, CommitPoint]) -> None:
        self.points = points
        self.reads: list[set[TopicPartition]] = []

    async def read(
        self, tps: Collection[TopicPartition]
    ) -> dict[TopicPartition, CommitPoint | None]:
        self.reads.append(set(tps))
        return {tp: self.points.get(tp) for tp in tps}


class Sink:
    def __init__(self, failures: list[BaseException] | None = None) -> None:
        self.opened = self.closed = False
        self.failures = failures or []
        self.published: list[list[OutMessage]] = []
        self.points: list[dict[TopicPartition, CommitPoint]] = []

    async def open(self) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.opened = True

    async def publish(
        self, messages: list[OutMessage], points: Mapping[TopicPartition, CommitPoint]
    ) -> bool:
        self.published.append(messages)
        self.points.append(dict(points))
        return True

    async def settle(self) -> bool:
        return True

    async def close(self) -> None:
        self.closed = True


def partitions(
    consumer: Consumer,
    sinks: dict[Block, Sink],
    *,
    blocks: int = 2,
    failures: list[BaseException] | None = None,
    **options: Any,
) -> tuple[Partitions, KeyedScheduler[Work]]:
    scheduler: KeyedScheduler[Work] = KeyedScheduler(
        10, lambda _work, _slot: asyncio.sleep(0), max_per_project=10
    )

    def make_sink(block: Block) -> Sink:
        sinks[block] = Sink(failures)
        return sinks[block]

    subject = Partitions(
        consumer,
        Committed({TP1: CommitPoint(7)}),  # type: ignore[arg-type]
        make_sink,
        scheduler=scheduler,
        renderer=OutcomeRenderer("results", "dead", 1_000_000),
        options=ChannelOptions(
            interval_s=60,
            max_batch=1000,
            max_uncommitted_span=3,
            session_timeout_s=0.01,
            blocks=blocks,
            **options,
        ),
        log=structlog.get_logger(),
    )
    return subject, scheduler


async def opened(subject: Partitions, *tps: TopicPartition) -> None:
    for _ in range(200):
        if all(subject.channel(tp) is not None for tp in tps):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not opened")


async def test_assigned_partitions_are_paused_until_open_then_resumed_at_their_offset() -> None:
    consumer, sinks = Consumer({TP0, TP1}), dict[Block, Sink]()
    subject, _ = partitions(consumer, sinks)
    await subject.on_assigned({TP0, TP1})
    assert consumer.paused == {TP0, TP1}, "nothing is fetched before the channel is open"
    await opened(subject, TP0, TP1)
    subject.apply_pauses()
    assert consumer.paused == set()
    assert consumer.seeks == [(TP1, 7)], "continues where the previous owner committed"
    assert subject.assigned == {TP0, TP1} and sinks[Block("requests", 0)].opened


async def test_a_full_buffer_or_a_long_uncommitted_span_pauses() -> None:
    consumer, sinks = Consumer({TP0, TP1}), dict[Block, Sink]()
    subject, _ = partitions(consumer, sinks)
    await subject.on_assigned({TP0, TP1})
    await opened(subject, TP0, TP1)
    subject.buffer_full = True
    subject.apply_pauses()
    assert consumer.paused == {TP0, TP1}
    subject.buffer_full = False
    channel = subject.channel(TP0)
    assert channel is not None
    for offset in range(3):
        channel.offsets.add(offset)  # fetched, not finished: span 3 reaches the bound
    subject.apply_pauses()
    assert consumer.paused == {TP0}


async def test_release_flushes_what_finished_and_closes_the_producer() -> None:
    consumer, sinks = Consumer({TP0}), dict[Block, Sink]()
    subject, _ = partitions(consumer, sinks)
    await subject.on_assigned({TP0})
    await opened(subject, TP0)
    channel = subject.channel(TP0)
    assert channel is not None
    channel.offsets.add(0)
    message = OutMessage("results", b"k", b"v", [])
    channel.finish(0, [message])
    assert subject.held == 1
    assert await subject.release({TP0}, drain_s=1) == (0, 0)
    assert sinks[Block("requests", 0)].published == [[message]]
    assert sinks[Block("requests", 0)].closed
    assert subject.channel(TP0) is None and subject.assigned == set()


async def test_a_block_opens_one_sink_for_its_partitions_and_commits_them_together() -> None:
    tp2, tp4 = TopicPartition("requests", 2), TopicPartition("requests", 4)
    consumer, sinks = Consumer({TP0, tp2, tp4, TP1}), dict[Block, Sink]()
    subject, _ = partitions(consumer, sinks, blocks=2)
    await subject.on_assigned({TP0, tp2, tp4, TP1})
    await opened(subject, TP0, tp2, tp4, TP1)
    assert set(sinks) == {Block("requests", 0), Block("requests", 1)}, "a producer a block"
    for tp in (TP0, tp2, tp4):
        channel = subject.channel(tp)
        assert channel is not None
        channel.offsets.add(0)
        channel.finish(0, [OutMessage("results", b"k", b"v", [])])
    await subject.release({TP0, tp2, tp4, TP1}, drain_s=1)
    [points] = sinks[Block("requests", 0)].points
    assert set(points) == {TP0, tp2, tp4}, "one transaction commits the block's partitions"


async def test_a_block_that_cannot_open_is_retried_counted_and_named() -> None:
    consumer, sinks = Consumer({TP0}), dict[Block, Sink]()
    failed: list[int] = []
    subject, _ = partitions(
        consumer,
        sinks,
        failures=[OSError(24, "Too many open files")],
        on_open_failed=lambda: failed.append(1),
    )
    await subject.on_assigned({TP0})
    for _ in range(100):
        if failed:
            break
        await asyncio.sleep(0.005)
    reason = subject.not_open()
    assert failed == [1] and reason is not None
    assert "Too many open files" in reason and "1 partitions" in reason
    await opened(subject, TP0)  # the retry (after its backoff) opens it
    assert subject.not_open() is None


class HangingSink(Sink):
    async def open(self) -> None:
        await asyncio.Event().wait()  # InitProducerId that never gets its answer


async def test_an_open_that_never_answers_is_bounded() -> None:
    consumer, sinks = Consumer({TP0}), dict[Block, Sink]()
    subject, _ = partitions(consumer, sinks, open_timeout_s=0.05)
    subject._make_sink = lambda block: HangingSink()
    await subject.on_assigned({TP0})
    for _ in range(100):
        if subject.not_open():
            break
        await asyncio.sleep(0.01)
    assert "TimeoutError" in (subject.not_open() or "")
    await subject.release({TP0}, drain_s=1)


async def test_a_partition_assigned_again_is_paused_again_until_open() -> None:
    consumer, sinks = Consumer({TP0}), dict[Block, Sink]()
    subject, _ = partitions(consumer, sinks)
    subject._make_sink = lambda block: HangingSink()
    await subject.on_assigned({TP0})
    assert consumer.paused == {TP0}
    await subject.release({TP0}, drain_s=1)  # revoked while still opening
    consumer.paused.clear()  # a new assignment: the consumer's partition state is fresh
    await subject.on_assigned({TP0})
    assert consumer.paused == {TP0}, "fetched before its channel opens, records would be lost"
    await subject.release({TP0}, drain_s=1)
