"""Offset tracking: what may be committed is the contiguous completed watermark, never more."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class PartitionOffsets:
    """Offsets of one partition, in the order they were fetched (increasing).

    `committable` is the offset to commit (Kafka's "next offset to read"): one past the highest
    offset below which every record is done. A finished record above an unfinished one waits.
    """

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self.committable: int | None = None

    def add(self, offset: int) -> None:
        if self._pending and offset <= self._pending[-1]:
            raise ValueError(f"offset {offset} fetched out of order (last {self._pending[-1]})")
        self._pending.append(offset)

    def done(self, offset: int) -> None:
        self._done.add(offset)
        pending, finished = self._pending, self._done
        while pending and pending[0] in finished:
            first = pending.popleft()
            finished.discard(first)
            self.committable = first + 1

    @property
    def in_progress(self) -> int:
        return len(self._pending)


class OffsetTracker(Generic[K]):
    """Per-partition watermarks, plus what was last committed, so only progress is committed."""

    def __init__(self) -> None:
        self._partitions: dict[K, PartitionOffsets] = {}
        self._committed: dict[K, int] = {}

    def add(self, partition: K, offset: int) -> PartitionOffsets:
        """Track a fetched offset. The returned object is what the record marks done: after a
        revoke and re-assignment a late finisher updates the old (forgotten) tracker, never
        the new one."""
        offsets = self._partitions.get(partition)
        if offsets is None:
            offsets = self._partitions[partition] = PartitionOffsets()
        offsets.add(offset)
        return offsets

    def done(self, partition: K, offset: int) -> None:
        offsets = self._partitions.get(partition)
        if offsets is not None:  # None: the partition was revoked meanwhile
            offsets.done(offset)

    def to_commit(self, partitions: Iterable[K] | None = None) -> dict[K, int]:
        """Watermarks that moved since the last commit (optionally only for `partitions`)."""
        result = {}
        for partition in self._partitions if partitions is None else partitions:
            offsets = self._partitions.get(partition)
            if offsets is None or offsets.committable is None:
                continue
            if self._committed.get(partition) != offsets.committable:
                result[partition] = offsets.committable
        return result

    def committed(self, offsets: dict[K, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partition: K) -> None:
        self._partitions.pop(partition, None)
        self._committed.pop(partition, None)

    def in_progress(self) -> int:
        return sum(p.in_progress for p in self._partitions.values())
