"""consumer/partitions/channel.py: publish-and-commit per block of partitions, and what happens
on failure.

The sink is scripted here; the real transactional producer is tested on a real broker in
tests/integration (test_exactly_once.py, test_local_kafka.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import (
    KafkaConnectionError,
    MessageSizeTooLargeError,
    UnknownTopicOrPartitionError,
)

from consumer.ops.logging import get_logger
from consumer.partitions.channel import (
    BlockChannel,
    DeliveryFailed,
    PartitionChannel,
    PartitionFenced,
)
from consumer.partitions.offsets import CommitPoint, PartitionOffsets
from consumer.pipeline.rendering import OutcomeRenderer, OutMessage
from consumer.pipeline.reply import ReplyTo
from consumer.secrets.redaction import SECRETS
from schemas import success_envelope

TP = TopicPartition("requests", 0)
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
RENDERER = OutcomeRenderer("results", "dead", 1_000_000)


class ScriptedSink:
    """Fails as scripted, then "commits": remembers what it published and the points."""

    def __init__(self, failures: list[BaseException] | None = None, *, certain: bool = True):
        self.failures = list(failures or [])
        self.certain = certain  # what settle() answers: the failed publish did not commit
        self.published: list[list[OutMessage]] = []
        self.points: list[CommitPoint] = []
        self.transactions: list[dict[TopicPartition, CommitPoint]] = []
        self.settled = 0
        self.closed = False

    async def open(self) -> None:
        return None

    async def publish(
        self, messages: list[OutMessage], points: Mapping[TopicPartition, CommitPoint]
    ) -> bool:
        if self.failures:
            raise self.failures.pop(0)
        self.published.append(list(messages))
        self.transactions.append(dict(points))
        self.points.extend(points.values())
        return True

    async def settle(self) -> bool:
        self.settled += 1
        return self.certain

    async def close(self) -> None:
        self.closed = True


def envelope_for(offset: int, payload: str = "") -> list[OutMessage]:
    envelope = success_envelope(
        f"req-{offset}",
        {"payload": payload},
        action="log_message",
        project="p",
        started_at=NOW,
        finished_at=NOW,
        attempts=1,
    )
    return RENDERER.render(envelope, traceparent=None, reply=None, scope=SECRETS.scope())


def channel(
    sink: ScriptedSink,
    *offsets: int,
    committed: list[CommitPoint | None] | None = None,
    max_batch: int = 1000,
) -> tuple[BlockChannel, PartitionChannel]:
    """A block of one partition (TP) that fetched `offsets`."""
    tracker = PartitionOffsets()
    for offset in offsets:
        tracker.add(offset)
    answers = list(committed or [])

    async def read_committed(
        tps: Collection[TopicPartition],
    ) -> dict[TopicPartition, CommitPoint | None]:
        answer = answers.pop(0)
        return dict.fromkeys(tps, answer)

    block = BlockChannel(
        "requests:0",
        sink,
        renderer=RENDERER,
        read_committed=read_committed,
        log=get_logger(),
        interval_s=0.01,
        max_batch=max_batch,
    )
    return block, block.add(TP, tracker)


def keys(messages: list[OutMessage]) -> list[bytes | None]:
    return [m.key for m in messages]


async def test_flush_publishes_in_offset_order_and_commits_the_point() -> None:
    sink = ScriptedSink()
    block, ch = channel(sink, 0, 1, 2, 3)
    for offset in (2, 0, 1):
        ch.finish(offset, envelope_for(offset))
    assert await block.flush()
    assert keys(sink.published[0]) == [b"req-0", b"req-1", b"req-2"]
    assert sink.points == [CommitPoint(3)]
    assert block.held == 0 and ch.offsets.committed == CommitPoint(3)


async def test_results_above_an_unfinished_record_go_out_at_once_and_are_listed() -> None:
    sink = ScriptedSink()
    block, ch = channel(sink, 0, 1, 2)
    ch.finish(1, envelope_for(1))
    ch.finish(2, envelope_for(2))
    assert await block.flush()
    assert keys(sink.published[0]) == [b"req-1", b"req-2"]
    assert sink.points == [CommitPoint(0, ((1, 2),))]


async def test_nothing_new_means_no_transaction() -> None:
    sink = ScriptedSink()
    block, ch = channel(sink, 0)
    ch.finish(0, envelope_for(0))
    assert await block.flush()
    assert await block.flush()
    assert len(sink.points) == 1


async def test_skipped_records_still_move_the_committed_offset() -> None:
    sink = ScriptedSink()
    tracker = PartitionOffsets(CommitPoint(5, ((5, 7),)))
    for offset in (5, 6, 7):
        assert tracker.add(offset)  # all done by a previous owner
    block, ch = channel(sink)
    ch.offsets = tracker
    assert await block.flush()
    assert sink.published == [[]] and sink.points == [CommitPoint(8)]


async def test_a_failure_known_not_to_have_committed_is_retried_whole() -> None:
    sink = ScriptedSink([KafkaConnectionError()], certain=True)
    block, ch = channel(sink, 0, 1)
    ch.finish(0, envelope_for(0))
    assert not await block.flush()
    assert block.held == 1 and ch.offsets.committed is None
    ch.finish(1, envelope_for(1))
    assert await block.flush()
    assert keys(sink.published[0]) == [b"req-0", b"req-1"]
    assert sink.points == [CommitPoint(2)]


async def test_an_unknown_outcome_that_did_commit_is_not_published_again() -> None:
    sink = ScriptedSink([TimeoutError()], certain=False)
    block, ch = channel(sink, 0, committed=[CommitPoint(1)])
    ch.finish(0, envelope_for(0))
    assert await block.flush()  # the committed offset says it went through
    assert sink.published == [] and block.held == 0
    assert ch.offsets.committed == CommitPoint(1)
    assert await block.flush()
    assert sink.published == []  # and nothing is sent again


async def test_an_unknown_outcome_that_did_not_commit_is_published_again() -> None:
    sink = ScriptedSink([TimeoutError()], certain=False)
    block, ch = channel(sink, 0, committed=[None])
    ch.finish(0, envelope_for(0))
    assert not await block.flush()
    assert await block.flush()
    assert keys(sink.published[0]) == [b"req-0"]


async def test_an_envelope_the_broker_finds_too_large_is_replaced_then_published() -> None:
    big = envelope_for(0, "x" * 10_000)
    sink = ScriptedSink([DeliveryFailed(big[0], MessageSizeTooLargeError())])
    block, ch = channel(sink, 0)
    ch.finish(0, big)
    assert not await block.flush()
    assert await block.flush()
    [[sent]] = sink.published
    assert sent.key == b"req-0" and sent.value is not None
    assert b"was too large to publish" in sent.value


async def test_a_dead_letter_the_broker_refuses_is_dropped_and_the_envelope_still_goes() -> None:
    messages = RENDERER.render(
        envelope_for(0)[0].envelope,  # type: ignore[arg-type]
        traceparent=None,
        reply=None,
        scope=SECRETS.scope(),
        dead_letter=(None, b"raw", []),
    )
    sink = ScriptedSink([DeliveryFailed(messages[0], MessageSizeTooLargeError())])
    block, ch = channel(sink, 0)
    ch.finish(0, messages)
    assert not await block.flush()
    assert await block.flush()
    assert [m.topic for m in sink.published[0]] == ["results"]


async def test_too_many_scattered_results_wait_until_the_watermark_passes_them() -> None:
    sink = ScriptedSink()
    offsets = list(range(0, 6000))
    block, ch = channel(sink, *offsets)
    # Every other record done above a stuck record 0: thousands of ranges, too many to list.
    for offset in offsets[1::2]:
        ch.finish(offset, envelope_for(offset))
    assert await block.flush()
    assert sink.published == [[]]  # only the watermark (still 0) is committed
    assert block.held == 3000
    ch.finish(0, envelope_for(0))
    assert await block.flush()
    assert keys(sink.published[-1]) == [b"req-0", b"req-1"]  # only those below the watermark
    assert sink.points[-1].offset == 2


async def test_run_flushes_early_at_max_batch_and_reports_fencing() -> None:
    sink = ScriptedSink()
    block, ch = channel(sink, 0, 1, max_batch=2)
    block._interval_s = 60  # only the batch size can trigger the flush
    task = asyncio.create_task(block.run())
    ch.finish(0, envelope_for(0))
    ch.finish(1, envelope_for(1))
    for _ in range(100):
        if sink.points:
            break
        await asyncio.sleep(0.01)
    assert sink.points == [CommitPoint(2)]
    sink.failures.append(PartitionFenced("p0"))
    ch.offsets.add(2)
    ch.finish(2, envelope_for(2))
    ch.finish(3, [])  # second record: reaches max_batch again
    await asyncio.wait_for(task, 5)  # fencing ends the loop
    assert block.fenced


async def test_after_close_finished_records_are_ignored() -> None:
    sink = ScriptedSink()
    block, ch = channel(sink, 0)
    await block.close()
    ch.finish(0, envelope_for(0))
    assert block.held == 0 and sink.closed


@pytest.mark.parametrize("error", [KafkaConnectionError(), RuntimeError("bug")])
async def test_run_survives_flush_errors(error: BaseException) -> None:
    sink = ScriptedSink([error])
    block, ch = channel(sink, 0)
    task = asyncio.create_task(block.run())
    ch.finish(0, envelope_for(0))
    for _ in range(300):
        if sink.points:
            break
        await asyncio.sleep(0.01)
    await block.close()
    await asyncio.wait_for(task, 5)
    assert sink.points == [CommitPoint(1)]


async def test_the_partitions_of_a_block_commit_in_one_transaction() -> None:
    sink = ScriptedSink()
    block, first = channel(sink, 0, 1)
    other = TopicPartition("requests", 32)
    tracker = PartitionOffsets()
    tracker.add(5)
    second = block.add(other, tracker)
    first.finish(0, envelope_for(0))
    second.finish(5, envelope_for(5))
    assert await block.flush()
    assert len(sink.transactions) == 1, "one transaction for the whole block"
    assert sink.transactions[0] == {TP: CommitPoint(1), other: CommitPoint(6)}
    assert keys(sink.published[0]) == [b"req-0", b"req-5"]


async def test_an_unknown_outcome_is_decided_by_every_partition_of_the_block() -> None:
    sink = ScriptedSink([TimeoutError()], certain=False)
    block, first = channel(sink, 0, committed=[CommitPoint(1)])
    tracker = PartitionOffsets()
    tracker.add(3)
    second = block.add(TopicPartition("requests", 32), tracker)
    first.finish(0, envelope_for(0))
    second.finish(3, envelope_for(3))
    # The read-back answers CommitPoint(1) for both: partition 32 expected 4, so the
    # transaction did not commit and everything is published again.
    assert not await block.flush()
    assert await block.flush()
    assert keys(sink.published[0]) == [b"req-0", b"req-3"]


async def test_an_idle_block_does_not_wake_up() -> None:
    sink = ScriptedSink()
    block, ch = channel(sink, 0)
    flushes = 0
    flush = block.flush

    async def counted() -> bool:
        nonlocal flushes
        flushes += 1
        return await flush()

    block.flush = counted  # type: ignore[method-assign]
    task = asyncio.create_task(block.run())
    await asyncio.sleep(0.1)  # ten commit intervals with nothing finished
    assert flushes == 0, "no timer runs while nothing waits to be committed"
    ch.finish(0, envelope_for(0))
    for _ in range(100):
        if sink.points:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert flushes == 1 and sink.points == [CommitPoint(1)]
    await block.close()
    await asyncio.wait_for(task, 5)


def with_reply(offset: int) -> list[OutMessage]:
    return RENDERER.render(
        envelope_for(offset)[0].envelope,  # type: ignore[arg-type]
        reply=ReplyTo("replies", 7, b"c"),
        traceparent=None,
        scope=SECRETS.scope(),
    )


async def test_a_reply_copy_the_broker_cannot_place_is_dropped_and_the_envelope_goes() -> None:
    messages = with_reply(0)
    assert [(m.topic, m.partition, m.reply) for m in messages] == [
        ("results", None, False),
        ("replies", 7, True),
    ]
    sink = ScriptedSink([DeliveryFailed(messages[1], UnknownTopicOrPartitionError())])
    block, ch = channel(sink, 0)
    ch.finish(0, messages)
    assert not await block.flush()
    assert await block.flush()
    [[sent]] = sink.published
    assert sent.topic == "results"


async def test_a_reply_copy_that_failed_for_a_passing_reason_is_sent_again_with_its_envelope() -> (
    None
):
    messages = with_reply(0)
    sink = ScriptedSink([DeliveryFailed(messages[1], KafkaConnectionError())])
    block, ch = channel(sink, 0)
    ch.finish(0, messages)
    assert not await block.flush()
    assert await block.flush()
    assert [[m.topic for m in batch] for batch in sink.published] == [["results", "replies"]]


async def test_a_reply_copy_too_large_for_its_topic_is_replaced_like_the_envelope() -> None:
    messages = with_reply(0)
    sink = ScriptedSink([DeliveryFailed(messages[1], MessageSizeTooLargeError())])
    block, ch = channel(sink, 0)
    ch.finish(0, messages)
    assert not await block.flush()
    assert await block.flush()
    [[result, copy]] = sink.published
    assert (copy.topic, copy.partition, copy.reply) == ("replies", 7, True)
    assert copy.value is not None and b"was too large to publish" in copy.value
    assert ("kafka_correlationId", b"c") in copy.headers
    assert b"was too large to publish" not in (result.value or b"")
