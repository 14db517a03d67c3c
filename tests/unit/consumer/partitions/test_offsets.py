"""consumer/offsets.py: the contiguous watermark, ranges done above it, and skipping them."""

from __future__ import annotations

import pytest

from consumer.partitions.offsets import CommitPoint, PartitionOffsets


def fetched(*offsets: int, start: CommitPoint | None = None) -> PartitionOffsets:
    tracker = PartitionOffsets(start)
    for offset in offsets:
        tracker.add(offset)
    return tracker


def test_nothing_fetched_nothing_to_commit() -> None:
    assert PartitionOffsets().point() is None


def test_nothing_done_commits_the_first_fetched_offset() -> None:
    assert fetched(5, 6).point() == CommitPoint(5)


def test_contiguous_done_moves_the_watermark_to_the_next_offset_to_read() -> None:
    tracker = fetched(10, 11, 12, 13)
    assert tracker.point({10, 11, 12}) == CommitPoint(13)
    assert tracker.point({10, 11, 12, 13}) == CommitPoint(14)


def test_done_above_an_unfinished_record_is_listed_not_committed_past() -> None:
    tracker = fetched(10, 11, 12, 13, 14, 15)
    point = tracker.point({11, 12, 14})
    assert point == CommitPoint(10, ((11, 12), (14, 14)))
    assert point is not None and point.metadata.startswith("ee1:")


def test_point_is_a_preview_and_apply_makes_it_so() -> None:
    tracker = fetched(10, 11, 12)
    tracker.point({10, 11})
    assert tracker.point() == CommitPoint(10)  # nothing changed
    tracker.apply({10, 11})
    assert tracker.point() == CommitPoint(12)
    assert tracker.span == 1


def test_gaps_in_fetched_offsets_are_fine() -> None:
    # Compacted topics and transaction markers leave gaps.
    tracker = fetched(3, 7, 20, 21)
    assert tracker.point({3, 7}) == CommitPoint(20)
    # 8..19 hold no record: the range (21, 21) and the watermark 20 say all there is to say.
    assert tracker.point({3, 7, 21}) == CommitPoint(20, ((21, 21),))


def test_out_of_order_fetch_is_a_bug() -> None:
    tracker = fetched(5, 6)
    with pytest.raises(ValueError, match="out of order"):
        tracker.add(6)


def test_a_new_owner_skips_what_the_previous_one_finished_above_its_watermark() -> None:
    start = CommitPoint(10, ((12, 13), (20, 25)))
    tracker = PartitionOffsets(start)
    skipped = [offset for offset in range(10, 27) if tracker.add(offset)]
    assert skipped == [12, 13, 20, 21, 22, 23, 24, 25]


def test_inherited_ranges_not_yet_fetched_are_carried_into_the_next_commit() -> None:
    # The new owner has fetched only 10 and 11 when it commits: the ranges above must survive,
    # or a crash now would run 20..25 a second time.
    tracker = PartitionOffsets(CommitPoint(10, ((20, 25),)))
    tracker.add(10)
    tracker.add(11)
    assert tracker.point({10}) == CommitPoint(11, ((20, 25),))
    assert tracker.point({10, 11}) == CommitPoint(12, ((20, 25),))


def test_an_inherited_range_partly_fetched_is_merged_and_clipped_at_the_watermark() -> None:
    tracker = PartitionOffsets(CommitPoint(10, ((12, 30),)))
    for offset in range(10, 16):
        tracker.add(offset)
    # 12..15 fetched (skipped), 16..30 not yet: one range; once 10 and 11 are done the
    # watermark is 16 and the rest of the range starts there.
    assert tracker.point({10}) == CommitPoint(11, ((12, 30),))
    assert tracker.point({10, 11}) == CommitPoint(16, ((16, 30),))


def test_commit_point_round_trips_through_metadata() -> None:
    point = CommitPoint(1000, ((1002, 1005), (1007, 1007), (5000, 9000)))
    assert CommitPoint.parse(point.offset, point.metadata) == point


def test_metadata_not_ours_means_nothing_known_above_the_watermark() -> None:
    assert CommitPoint.parse(42, "") == CommitPoint(42)
    assert CommitPoint.parse(42, "set by kafka-consumer-groups") == CommitPoint(42)
    assert CommitPoint.parse(42, None) == CommitPoint(42)
