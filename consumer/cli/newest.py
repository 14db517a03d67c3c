"""The newest matching records of a topic, read backwards from each partition's end.

Each round reads one window per partition, just below what was read before, oldest offset
first. A partition is done once its oldest record read is no newer than the Nth newest match
found so far: what lies below it is older still (a partition's timestamps grow with its
offsets, as the broker's log-append time and one producer's create time do). A round that finds
too few matches doubles the partition's window, so a rare filter needs few rounds; windows stay
bounded, so memory holds only the matches. Never more of the topic than the answer needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

T = TypeVar("T")

FIRST_WINDOW = 16  # records per partition in the first round (at least N)
MAX_WINDOW = 8192  # a window's bound: what one round reads of one partition at most
# Small fetches: a window of a few records should not pull a megabyte past its end.
FETCH_BYTES = 256 * 1024
_FETCH_TIMEOUT_MS = 500


@dataclass(order=True, frozen=True)
class Found(Generic[T]):
    """A matching record: ordered by time, then partition and offset."""

    timestamp_ms: int
    partition: int
    offset: int
    item: T = field(compare=False)


@dataclass
class Newest(Generic[T]):
    items: list[T]  # oldest first
    read: int  # records fetched to find them


@dataclass
class _Partition:
    low: int  # where reading stops (the beginning, or where --from starts)
    high: int  # the oldest offset read so far (at first the end)
    window: int
    oldest_ms: int | None = None  # timestamp of the oldest record read
    found: int = 0

    @property
    def exhausted(self) -> bool:
        return self.high <= self.low


async def newest(
    consumer: AIOKafkaConsumer,
    lows: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    count: int | None,
    keep: Callable[[Any], T | None],
) -> Newest[T]:
    """The `count` newest records (None: all) between `lows` and `ends` that `keep` turns into
    an item, oldest first. `consumer` has the partitions assigned."""
    if count == 0:
        return Newest([], 0)
    first = max(FIRST_WINDOW, count or 0)
    parts = {tp: _Partition(lows[tp], ends[tp], min(first, MAX_WINDOW)) for tp in ends}
    matches: list[Found[T]] = []
    read = 0

    def take(tp: TopicPartition, record: Any) -> None:
        part = parts[tp]
        if part.oldest_ms is None or record.timestamp < part.oldest_ms:
            part.oldest_ms = record.timestamp
        item = keep(record)
        if item is not None:
            part.found += 1
            matches.append(Found(record.timestamp, tp.partition, record.offset, item))

    open_ = {tp for tp, part in parts.items() if not part.exhausted}
    while open_:
        windows = {
            tp: (max(parts[tp].low, parts[tp].high - parts[tp].window), parts[tp].high)
            for tp in open_
        }
        before = {tp: parts[tp].found for tp in open_}

        read += await _read_windows(consumer, windows, take)
        for tp in open_:
            part = parts[tp]
            part.high = windows[tp][0]
            if part.found - before[tp] < (count or MAX_WINDOW):
                part.window = min(part.window * 2, MAX_WINDOW)  # too few here: look wider
        open_ = {tp for tp in open_ if not parts[tp].exhausted}
        if count is not None and len(matches) >= count:
            matches[:] = sorted(matches)[-count:]
            threshold = matches[0].timestamp_ms
            open_ = {tp for tp in open_ if _may_hold_newer(parts[tp], threshold)}
    ordered = sorted(matches)
    if count is not None:
        ordered = ordered[-count:]
    return Newest([found.item for found in ordered], read)


def _may_hold_newer(part: _Partition, threshold_ms: int) -> bool:
    """Can what is left of this partition hold a record newer than `threshold_ms`?"""
    return part.oldest_ms is None or part.oldest_ms > threshold_ms


async def _read_windows(
    consumer: AIOKafkaConsumer,
    windows: dict[TopicPartition, tuple[int, int]],
    take: Callable[[TopicPartition, Any], None],
) -> int:
    """Every record in the windows ([start, stop) per partition), forward; how many were
    fetched (those past a window's end too)."""
    pending = dict(windows)
    consumer.pause(*(tp for tp in consumer.assignment() if tp not in pending))
    for tp, (start, _) in pending.items():
        consumer.seek(tp, start)
    consumer.resume(*pending)
    fetched = 0
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=_FETCH_TIMEOUT_MS)
        for tp, records in batch.items():
            if tp not in pending:
                continue
            fetched += len(records)
            start, stop = pending[tp]
            for record in records:
                if start <= record.offset < stop:
                    take(tp, record)
        for tp in list(pending):
            if await consumer.position(tp) >= pending[tp][1]:
                consumer.pause(tp)
                del pending[tp]
    return fetched
