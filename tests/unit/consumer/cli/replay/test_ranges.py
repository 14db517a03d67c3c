"""consumer/cli/replay/ranges.py: `--offsets` ranges."""

from __future__ import annotations

import pytest

from consumer.cli.replay import OffsetRange, parse_offset_range


def test_parse_offset_range() -> None:
    assert parse_offset_range("2:10-20") == OffsetRange(2, 10, 20)
    assert parse_offset_range("0:5") == OffsetRange(0, 5, None)
    for bad in ("x", "1", "1:", "1:9-3", "-1:0", "1:a-b"):
        with pytest.raises(ValueError):
            parse_offset_range(bad)
