"""Offset tracking for one partition: what may be committed, and which records not to run again.

The committed offset is the contiguous watermark (Kafka's "next offset to read"): every record
below it is done. Records done above it are listed in the commit's metadata
(`partitions.commit_metadata`), so their envelopes can be published at once and a later
owner of the partition skips them. Committing never skips an unfinished record.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass

from consumer.partitions import commit_metadata
from consumer.partitions.commit_metadata import Range


@dataclass(frozen=True)
class CommitPoint:
    """A partition's state as committed: the watermark and the ranges done above it."""

    offset: int
    done_above: tuple[Range, ...] = ()

    @property
    def metadata(self) -> str:
        return commit_metadata.encode(self.offset, list(self.done_above))

    @classmethod
    def parse(cls, offset: int, metadata: str | None) -> CommitPoint:
        ranges = commit_metadata.decode(offset, metadata)
        return cls(offset, tuple(r for r in ranges if r[1] >= offset))


class PartitionOffsets:
    """Offsets of one partition in the order they were fetched (increasing).

    A record is *done* once its envelope is part of what is committed (`apply`). `point()`
    previews the commit that a set of further done records would give, without changing
    anything, so that a failed transaction leaves the tracker as it was.
    """

    def __init__(self, start: CommitPoint | None = None) -> None:
        self._pending: deque[int] = deque()  # fetched, not yet below the watermark
        self._done: set[int] = set()  # members of _pending that are done
        # Ranges a previous owner finished above its watermark, not yet fetched by us.
        self._inherited: deque[Range] = deque(start.done_above if start else ())
        self._next: int | None = start.offset if start else None  # one past the last fetched
        self.committed: CommitPoint | None = start

    def add(self, offset: int) -> bool:
        """Track a fetched offset. True: a previous owner already finished it (skip it)."""
        if self._next is not None and self._pending and offset < self._next:
            raise ValueError(f"offset {offset} fetched out of order (next {self._next})")
        self._pending.append(offset)
        self._next = offset + 1
        inherited = self._inherited
        while inherited and inherited[0][1] < offset:
            inherited.popleft()
        if inherited and inherited[0][0] <= offset:
            self._done.add(offset)
            return True
        return False

    @property
    def span(self) -> int:
        """Records fetched and not yet below the watermark (memory held, metadata to write)."""
        return len(self._pending)

    def point(self, finished: Collection[int] = ()) -> CommitPoint | None:
        """The commit that marking `finished` done would give (None: nothing fetched yet)."""
        done = self._done
        pending = self._pending
        if not isinstance(finished, (set, frozenset)):
            finished = set(finished)  # membership is tested for every pending offset
        index, count = 0, len(pending)
        while index < count and (pending[index] in done or pending[index] in finished):
            index += 1
        if index < count:
            watermark = pending[index]
        elif self._next is not None:
            watermark = self._next
        else:
            return None
        ranges: list[Range] = []
        first: int | None = None
        last = 0
        for offset in itertools.islice(pending, index, None):
            if offset in done or offset in finished:
                if first is None:
                    first = offset
                last = offset
            elif first is not None:
                ranges.append((first, last))
                first = None
        if first is not None:
            ranges.append((first, last))
        ranges.extend(r for r in self._inherited if r[1] >= watermark)
        # A range may reach below the watermark when the watermark is one past the last fetched
        # record inside an inherited range: the part below is done and committed already.
        clipped = [(max(first, watermark), last) for first, last in commit_metadata.merge(ranges)]
        return CommitPoint(watermark, tuple(clipped))

    def apply(self, finished: Collection[int]) -> None:
        """`finished` are done: their envelopes are published (and, with transactions,
        committed together with the point `point(finished)` gave)."""
        self._done.update(finished)
        pending, done = self._pending, self._done
        while pending and pending[0] in done:
            done.discard(pending.popleft())
