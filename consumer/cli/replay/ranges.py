"""Which offsets a replay reads: `--offsets` ranges and `--from`/`--to` times, per partition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumer.broker.metadata import partitions_of

# Per partition, the offsets to read: [start, end).
Spans = dict[TopicPartition, tuple[int, int]]


@dataclass(frozen=True)
class OffsetRange:
    """Offsets `start`..`end` of one partition, both included (`end` None: to the end)."""

    partition: int
    start: int
    end: int | None = None


def parse_offset_range(text: str) -> OffsetRange:
    """`P:START`, `P:START-END` (END included)."""
    try:
        partition, _, span = text.partition(":")
        start, _, end = span.partition("-")
        parsed = OffsetRange(int(partition), int(start), int(end) if end else None)
    except ValueError:
        raise ValueError(f"{text!r} is not PARTITION:START[-END]") from None
    if parsed.partition < 0 or parsed.start < 0 or (parsed.end is not None and parsed.end < 0):
        raise ValueError(f"{text!r}: partitions and offsets are not negative")
    if parsed.end is not None and parsed.end < parsed.start:
        raise ValueError(f"{text!r}: END is before START")
    return parsed


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def request_spans(
    reader: AIOKafkaConsumer,
    topic: str,
    ranges: tuple[OffsetRange, ...],
    since: datetime | None,
    until: datetime | None,
) -> Spans:
    """Per partition, the offsets to read: [start, end), end frozen now so the copies this
    replay publishes are never read back."""
    partitions = await partitions_of(reader, topic)
    known = {tp.partition for tp in partitions}
    if ranges:
        unknown = sorted({r.partition for r in ranges} - known)
        if unknown:
            raise ValueError(f"{topic} has no partition {unknown[0]} (it has {len(known)})")
        chosen = {r.partition for r in ranges}
        partitions = [tp for tp in partitions if tp.partition in chosen]
    beginning = await reader.beginning_offsets(partitions)
    end = await reader.end_offsets(partitions)
    spans = {tp: (beginning[tp], end[tp]) for tp in partitions}
    for item in ranges:
        tp = TopicPartition(topic, item.partition)
        low, high = spans[tp]
        stop = high if item.end is None else min(high, item.end + 1)
        spans[tp] = (max(low, item.start), stop)
    if since is not None:
        found = await reader.offsets_for_times({tp: ms(since) for tp in spans})
        for tp, at in found.items():
            low, high = spans[tp]
            spans[tp] = (high, high) if at is None else (max(low, at.offset), high)
    if until is not None:
        found = await reader.offsets_for_times({tp: ms(until) + 1 for tp in spans})
        for tp, at in found.items():
            low, high = spans[tp]
            if at is not None:
                spans[tp] = (low, min(high, at.offset))
    return spans
