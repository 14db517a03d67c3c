"""Dead letters on the real broker: the engine's headers cannot be forged by the record's own,
and every record the engine accepts can be dead-lettered (the topic is made large enough; an
existing smaller one lowers the engine's record limit)."""

from __future__ import annotations

import io
import json

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from consumer.broker.dead_letter_size import HEADER_ROOM, MAX_MESSAGE_BYTES, smallest_topic_bytes
from consumer.broker.dead_letter_topic import DeadLetterTopicTooSmall, topic_max_message_bytes
from consumer.broker.topics import create_topics
from consumer.cli.tail import TailFilter, tail
from consumer.ops.logging import configure_logging
from consumer.pipeline.intake import header_text
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, envelopes_by_id, produce, read_topic

FORGED = (
    ("error-code", b"none"),
    ("source-offset", b"999999"),
    ("Source-Topic", b"elsewhere"),
    ("original-error-code", b"nested"),
    ("request-id", b"dl-forged"),
)


async def max_message_bytes(bootstrap: str, topic: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await topic_max_message_bytes(admin, topic)
    finally:
        await admin.close()


async def create_small_dead_letter_topic(bootstrap: str, topic: str, size: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, 1, 1, topic_configs={MAX_MESSAGE_BYTES: str(size)})]
        )
    finally:
        await admin.close()


async def test_forged_engine_headers_are_kept_apart_and_tail_shows_the_engines(
    kafka_bootstrap: str, topics: Topics
) -> None:
    settings = engine_settings(kafka_bootstrap, topics)
    async with running_engine(settings):
        await produce(
            kafka_bootstrap, topics.requests, [Outgoing(b"{not json", b"k", headers=FORGED)]
        )
        [envelope] = await read_topic(kafka_bootstrap, topics.results, expect=1, grace_s=0.5)
        [letter] = await read_topic(kafka_bootstrap, topics.dead_letter, expect=1, grace_s=0.5)
    assert json.loads(envelope.value)["error"]["code"] == "invalid_json"
    names = [name for name, _ in letter.headers]
    assert names.count("error-code") == 1 and names.count("source-offset") == 1
    assert not [n for n in names if n.lower() == "source-topic" and n != "source-topic"]
    assert header_text(letter.headers, "error-code") == "invalid_json"
    assert header_text(letter.headers, "source-offset") == "0"  # the first record
    assert header_text(letter.headers, "source-topic") == topics.requests
    kept = dict(letter.headers)
    assert kept["original-error-code"] == b"none"
    assert kept["original-source-offset"] == b"999999"
    assert kept["original-Source-Topic"] == b"elsewhere"
    assert kept["original-original-error-code"] == b"nested"
    assert kept["request-id"] == b"dl-forged"  # not reserved: kept as it came
    assert letter.value == b"{not json" and letter.key == b"k"

    out = io.StringIO()
    shown = await tail(settings, "dead-letter", TailFilter(), out, lines=None)
    assert len(shown.items) == 1
    line = out.getvalue()
    assert f"{topics.requests}:" in line and "invalid_json:" in line
    assert "999999" not in line and "elsewhere" not in line and "none:" not in line


async def test_an_unreadable_record_just_under_the_limit_is_dead_lettered(
    kafka_bootstrap: str, topics: Topics
) -> None:
    value = b"\xff" * 1_048_400  # not UTF-8; under the default 1 MiB record limit
    settings = engine_settings(kafka_bootstrap, topics)
    logs = io.StringIO()
    configure_logging("warning", stream=logs)
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, [Outgoing(value, b"big")])
        [envelope] = await read_topic(kafka_bootstrap, topics.results, expect=1, grace_s=0.5)
        dead = await read_topic(kafka_bootstrap, topics.dead_letter, expect=1, grace_s=0.5)
    assert json.loads(envelope.value)["error"]["code"] == "invalid_json"
    assert len(dead) == 1, "the accepted record got no dead letter"
    assert dead[0].value == value and dead[0].key == b"big"
    assert header_text(dead[0].headers, "error-code") == "invalid_json"
    assert "dead_letter.too_large" not in logs.getvalue()
    assert await max_message_bytes(kafka_bootstrap, topics.dead_letter) == (1_048_576 + HEADER_ROOM)


async def test_an_existing_smaller_topic_lowers_the_record_limit(
    kafka_bootstrap: str, topics: Topics
) -> None:
    topic_bytes = 700_000  # above a producer batch (512 KiB) plus room, below 1 MiB + room
    limit = topic_bytes - HEADER_ROOM
    await create_small_dead_letter_topic(kafka_bootstrap, topics.dead_letter, topic_bytes)
    settings = engine_settings(kafka_bootstrap, topics)
    logs = io.StringIO()
    configure_logging("warning", stream=logs)
    at_limit = Outgoing(b"\xff" * limit, b"a", headers=(("request-id", b"dl-at-limit"),))
    over = Outgoing(b"\xff" * (limit + 1), b"b", headers=(("request-id", b"dl-over"),))
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, [at_limit, over])
        results = await read_topic(kafka_bootstrap, topics.results, expect=2, grace_s=0.5)
        dead = await read_topic(kafka_bootstrap, topics.dead_letter, expect=2, grace_s=0.5)
    by_id = envelopes_by_id(results)
    assert by_id["dl-at-limit"][0]["error"]["code"] == "invalid_json"
    assert by_id["dl-over"][0]["error"]["code"] == "payload_too_large"
    assert sorted(len(r.value) for r in dead) == [limit, limit + 1]
    [event] = [
        json.loads(line)
        for line in logs.getvalue().splitlines()
        if '"dead_letter.topic_too_small"' in line
    ]
    assert event["level"] == "error" and event["max_record_bytes"] == limit
    assert f"{MAX_MESSAGE_BYTES}={topic_bytes}" in event["message"]
    assert "EXECUTION_MAX_RECORD_BYTES=1048576" in event["message"]


async def test_a_topic_too_small_for_any_request_stops_the_engine(
    kafka_bootstrap: str, topics: Topics
) -> None:
    await create_small_dead_letter_topic(kafka_bootstrap, topics.dead_letter, 500_000)
    settings = engine_settings(kafka_bootstrap, topics)
    with pytest.raises(DeadLetterTopicTooSmall) as refused:
        async with running_engine(settings):
            pass
    assert f"{MAX_MESSAGE_BYTES}=500000" in str(refused.value)
    assert str(smallest_topic_bytes()) in str(refused.value)
    assert "EXECUTION_MAX_RECORD_BYTES" in str(refused.value)


async def test_a_small_record_limit_still_makes_room_for_a_batch(
    kafka_bootstrap: str, topics: Topics
) -> None:
    # Many small dead letters share a producer batch (up to 512 KiB): a topic sized for one
    # record only would refuse the batch and fail the partition's transaction.
    settings = engine_settings(kafka_bootstrap, topics, max_record_bytes=4_096)
    bad = [
        Outgoing(b"\xff" * 4_000, headers=(("request-id", f"dl-small-{i}".encode()),))
        for i in range(300)
    ]
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, bad)
        results = await read_topic(kafka_bootstrap, topics.results, expect=300, grace_s=0.5)
        dead = await read_topic(kafka_bootstrap, topics.dead_letter, expect=300, grace_s=0.5)
    assert len(envelopes_by_id(results)) == 300 and len(dead) == 300
    assert await max_message_bytes(kafka_bootstrap, topics.dead_letter) == smallest_topic_bytes()


async def test_topics_create_gives_the_dead_letter_topic_room(
    kafka_bootstrap: str, topics: Topics
) -> None:
    settings = engine_settings(kafka_bootstrap, topics, max_record_bytes=2_000_000)
    await create_topics(settings, settings.max_record_bytes, 1, 1, {"retention.ms": "3600000"})
    assert await max_message_bytes(kafka_bootstrap, topics.dead_letter) == 2_000_000 + HEADER_ROOM
    assert await max_message_bytes(kafka_bootstrap, topics.results) != 2_000_000 + HEADER_ROOM
