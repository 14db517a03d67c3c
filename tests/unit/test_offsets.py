"""consumer/offsets.py: the contiguous completed watermark."""

from __future__ import annotations

import pytest

from consumer.offsets import OffsetTracker, PartitionOffsets


def test_nothing_done_nothing_committable() -> None:
    offsets = PartitionOffsets()
    offsets.add(5)
    assert offsets.committable is None
    assert offsets.in_progress == 1


def test_contiguous_watermark_with_out_of_order_completion() -> None:
    offsets = PartitionOffsets()
    for n in (10, 11, 12, 13):
        offsets.add(n)
    offsets.done(12)
    assert offsets.committable is None  # 10 and 11 still running
    offsets.done(11)
    assert offsets.committable is None
    offsets.done(10)
    assert offsets.committable == 13  # next offset to read: 10, 11, 12 done
    assert offsets.in_progress == 1
    offsets.done(13)
    assert offsets.committable == 14
    assert offsets.in_progress == 0


def test_gaps_in_fetched_offsets_are_fine() -> None:
    # Compacted topics and transaction markers leave gaps.
    offsets = PartitionOffsets()
    for n in (3, 7, 20):
        offsets.add(n)
    offsets.done(7)
    offsets.done(3)
    assert offsets.committable == 8


def test_out_of_order_add_raises() -> None:
    offsets = PartitionOffsets()
    offsets.add(5)
    with pytest.raises(ValueError, match="out of order"):
        offsets.add(5)
    with pytest.raises(ValueError, match="out of order"):
        offsets.add(4)


def test_tracker_to_commit_returns_only_progress() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for n in (0, 1, 2):
        tracker.add("p0", n)
    tracker.add("p1", 100)
    assert tracker.to_commit() == {}
    tracker.done("p0", 0)
    tracker.done("p1", 100)
    assert tracker.to_commit() == {"p0": 1, "p1": 101}
    tracker.committed({"p0": 1, "p1": 101})
    assert tracker.to_commit() == {}
    tracker.done("p0", 2)
    assert tracker.to_commit() == {}  # 1 is still running
    tracker.done("p0", 1)
    assert tracker.to_commit() == {"p0": 3}
    assert tracker.to_commit(["p1"]) == {}
    assert tracker.to_commit(["p0", "unknown"]) == {"p0": 3}
    assert tracker.in_progress() == 0


def test_tracker_forget() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    old = tracker.add("p0", 0)
    tracker.add("p0", 1)
    tracker.done("p0", 0)
    tracker.committed(tracker.to_commit())
    tracker.forget("p0")
    assert tracker.to_commit() == {}
    assert tracker.in_progress() == 0
    # A late finisher of the revoked assignment is ignored...
    tracker.done("p0", 1)
    assert tracker.to_commit() == {}
    # ... and after re-assignment the new tracker starts afresh (offsets may repeat).
    new = tracker.add("p0", 1)
    assert new is not old
    old.done(1)  # the old object is what a late record marks done
    assert tracker.to_commit() == {}
    tracker.done("p0", 1)
    assert tracker.to_commit() == {"p0": 2}


def test_tracker_in_progress_counts_all_partitions() -> None:
    tracker: OffsetTracker[tuple[str, int]] = OffsetTracker()
    tracker.add(("t", 0), 0)
    tracker.add(("t", 0), 1)
    tracker.add(("t", 1), 0)
    assert tracker.in_progress() == 3


def test_tracker_add_out_of_order_raises() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.add("p0", 9)
    with pytest.raises(ValueError):
        tracker.add("p0", 8)
