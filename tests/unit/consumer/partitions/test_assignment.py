"""Partitions: opened on assignment (paused until open), released on revocation (last flush,
producer closed), reopened after fencing; all per-partition state in one `Partition`."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiokafka import TopicPartition

from consumer.partitions.assignment import ChannelOptions, Partitions
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

    async def read(self, tp: TopicPartition) -> CommitPoint | None:
        return self.points.get(tp)


class Sink:
    def __init__(self) -> None:
        self.opened = self.closed = False
        self.published: list[list[OutMessage]] = []

    async def open(self) -> None:
        self.opened = True

    async def publish(self, tp: Any, messages: list[OutMessage], point: CommitPoint) -> bool:
        self.published.append(messages)
        return True

    async def settle(self) -> bool:
        return True

    async def close(self) -> None:
        self.closed = True


def partitions(
    consumer: Consumer, sinks: dict[TopicPartition, Sink]
) -> tuple[Partitions, KeyedScheduler[Work]]:
    scheduler: KeyedScheduler[Work] = KeyedScheduler(
        10, lambda _work, _slot: asyncio.sleep(0), max_per_project=10
    )

    def make_sink(tp: TopicPartition) -> Sink:
        sinks[tp] = Sink()
        return sinks[tp]

    subject = Partitions(
        consumer,
        Committed({TP1: CommitPoint(7)}),  # type: ignore[arg-type]
        make_sink,
        scheduler=scheduler,
        renderer=OutcomeRenderer("results", "dead", 1_000_000),
        options=ChannelOptions(
            interval_s=60, max_batch=1000, max_uncommitted_span=3, session_timeout_s=0.01
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
    consumer, sinks = Consumer({TP0, TP1}), dict[TopicPartition, Sink]()
    subject, _ = partitions(consumer, sinks)
    await subject.on_assigned({TP0, TP1})
    assert consumer.paused == {TP0, TP1}, "nothing is fetched before the channel is open"
    await opened(subject, TP0, TP1)
    subject.apply_pauses()
    assert consumer.paused == set()
    assert consumer.seeks == [(TP1, 7)], "continues where the previous owner committed"
    assert subject.assigned == {TP0, TP1} and sinks[TP0].opened


async def test_a_full_buffer_or_a_long_uncommitted_span_pauses() -> None:
    consumer, sinks = Consumer({TP0, TP1}), dict[TopicPartition, Sink]()
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
    consumer, sinks = Consumer({TP0}), dict[TopicPartition, Sink]()
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
    assert sinks[TP0].published == [[message]] and sinks[TP0].closed
    assert subject.channel(TP0) is None and subject.assigned == set()
