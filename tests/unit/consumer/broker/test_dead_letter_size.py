"""The dead-letter topic's size rules, and that they match the producer they size for."""

from __future__ import annotations

from consumer.app import Application
from consumer.broker.dead_letter_size import (
    BATCH_BYTES,
    HEADER_ROOM,
    record_limit_for,
    smallest_topic_bytes,
    topic_bytes_for,
    wire_size,
)
from consumer.broker.dead_letter_topic import dead_letter_topic_configs
from consumer.settings import EngineSettings


def test_the_batch_size_is_the_engines_producers() -> None:
    options = Application(EngineSettings())._producer_options()
    assert options["max_batch_size"] == BATCH_BYTES
    # The producer itself must let the largest dead letter through.
    assert options["max_request_size"] >= topic_bytes_for(EngineSettings().max_record_bytes)


def test_sizes() -> None:
    assert topic_bytes_for(1_048_576) == 1_114_112
    assert topic_bytes_for(64) == smallest_topic_bytes() == BATCH_BYTES + HEADER_ROOM
    assert record_limit_for(1_114_112) == 1_048_576
    assert dead_letter_topic_configs(3_000_000) == {
        "max.message.bytes": str(3_000_000 + HEADER_ROOM)
    }


def test_wire_size_bounds_kafkas_framing() -> None:
    bare = wire_size(None, None, [])
    assert 61 < bare <= 120  # the batch header plus one record's fixed fields
    assert wire_size(b"k", b"vv", [("h", b"x")]) == bare + 3 + 2 + 10
