"""consumer/commit_metadata.py: ranges done above the watermark, in offset-commit metadata."""

from __future__ import annotations

import pytest

from consumer.partitions import commit_metadata
from consumer.partitions.commit_metadata import MAX_METADATA_CHARS, decode, encode, merge


def test_round_trip() -> None:
    ranges = [(101, 101), (103, 110), (2**40, 2**40 + 5)]
    assert decode(100, encode(100, ranges)) == ranges


def test_no_ranges_is_empty_metadata() -> None:
    assert encode(7, []) == ""
    assert decode(7, "") == []


def test_ranges_must_be_sorted_and_above_the_watermark() -> None:
    with pytest.raises(ValueError):
        encode(100, [(99, 100)])
    with pytest.raises(ValueError):
        encode(100, [(105, 106), (101, 102)])


@pytest.mark.parametrize("garbage", ["ee1:!!!", "ee1:gA", "other:abc", "ee1:" + "_" * 20])
def test_garbage_decodes_to_nothing_never_raises(garbage: str) -> None:
    assert decode(0, garbage) == []


def test_a_typical_slow_key_case_is_tiny() -> None:
    # One record stuck at the watermark, the next 50,000 done.
    assert len(encode(1_000_000, [(1_000_001, 1_050_000)])) < 20


def test_many_scattered_ranges_still_fit_the_default_broker_limit() -> None:
    ranges = [(1000 + 3 * i, 1000 + 3 * i + 1) for i in range(300)]
    assert len(encode(999, ranges)) <= MAX_METADATA_CHARS < 4096


def test_merge_joins_overlapping_and_adjacent_ranges() -> None:
    assert merge([(5, 6), (1, 2), (3, 3), (6, 9), (12, 12)]) == [(1, 3), (5, 9), (12, 12)]
    assert merge([(1, 2), (3, 4)]) == [(1, 4)]  # no offset lies between 2 and 3
    assert commit_metadata.merge([]) == []
