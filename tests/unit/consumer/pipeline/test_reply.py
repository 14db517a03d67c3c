"""Request-reply (consumer/pipeline/reply.py): the reply headers, ours and Spring Kafka's, the
allow-list, and the copy the record's processing renders for its reply topic."""

from __future__ import annotations

import json
import struct
import time
from typing import Any

import pytest

from actions.base import NO_SLOT
from consumer.cli.replay import replay_headers
from consumer.pipeline.intake import Accepted, IntakeLimits, Rejected, decode_record
from consumer.pipeline.processing import Work
from consumer.pipeline.reply import ReplyTo, ReplyTopics, read_reply
from consumer.pipeline.settings import IntakeLimitSettings
from tests.unit.consumer.cli.replay.test_republish import FakeRecord
from tests.unit.consumer.pipeline.test_processing import Channel, Record, processor

ALLOWED = ReplyTopics("gateway.replies, rpc.*")
VALID = (
    b'{"request_id": "r-1", "action": "log_message", "project": "p", "params": {"message": "hi"}}'
)
# As Spring Kafka's ReplyingKafkaTemplate writes them: the correlation id as raw bytes (a UUID's
# 16), the reply partition as a 4-byte big-endian int.
CORRELATION = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
SPRING = [
    ("kafka_replyTopic", b"rpc.gateway-7"),
    ("kafka_replyPartition", struct.pack(">i", 2)),
    ("kafka_correlationId", CORRELATION),
]


def test_allow_list_takes_names_and_prefixes() -> None:
    assert ALLOWED.allows("gateway.replies") and ALLOWED.allows("rpc.a")
    assert not ALLOWED.allows("gateway.replies2") and not ALLOWED.allows("execution.results")
    assert not ReplyTopics("").allows("anything")
    assert ReplyTopics("*").allows("execution.results")


def test_limits_read_the_setting() -> None:
    settings = IntakeLimitSettings(EXECUTION_REPLY_TOPICS="a,b*")
    assert IntakeLimits.from_settings(settings).reply_topics == ReplyTopics("b*, a")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], None),
        ([("reply-topic", b"gateway.replies")], ReplyTo("gateway.replies")),
        (
            [("Reply-Topic", b"gateway.replies"), ("reply-partition", b"11")],
            ReplyTo("gateway.replies", 11),
        ),
        (SPRING, ReplyTo("rpc.gateway-7", 2, CORRELATION)),
        ([("kafka_correlationId", CORRELATION)], None),  # a correlation id alone asks nothing
    ],
)
def test_reply_headers_are_read(headers: list[tuple[str, bytes]], expected: ReplyTo | None) -> None:
    assert read_reply(headers, ALLOWED) == expected


@pytest.mark.parametrize(
    ("headers", "names"),
    [
        (
            [("reply-topic", b"execution.results")],
            ["'execution.results'", "EXECUTION_REPLY_TOPICS"],
        ),
        ([("kafka_replyTopic", b"other")], ["'other'", "EXECUTION_REPLY_TOPICS"]),
        ([("reply-topic", b"bad topic!")], ["not a valid Kafka topic name"]),
        ([("reply-topic", b"\xff")], ["not UTF-8"]),
        ([("reply-topic", b"rpc.x"), ("reply-partition", b"-1")], ["'-1'"]),
        ([("reply-topic", b"rpc.x"), ("reply-partition", b"x")], ["'x'"]),
        ([("kafka_replyTopic", b"rpc.x"), ("kafka_replyPartition", b"\x00\x02")], ["4"]),
        ([("reply-partition", b"1")], ["without a reply topic"]),
    ],
)
def test_a_reply_that_cannot_be_honoured_is_an_invalid_request(
    headers: list[tuple[str, bytes]], names: list[str]
) -> None:
    decoded = decode_record(
        VALID,
        headers,
        topic="t",
        partition=0,
        offset=3,
        limits=IntakeLimits(10_000, reply_topics=ALLOWED),
    )
    assert isinstance(decoded, Rejected) and decoded.code.value == "invalid_request"
    for name in names:
        assert name in decoded.message
    # Its ids are still echoed, and nothing goes to a topic it was not allowed to name.
    assert (decoded.request_id, decoded.action, decoded.reply) == ("r-1", "log_message", None)


def test_without_the_setting_no_reply_topic_is_allowed() -> None:
    decoded = decode_record(
        VALID, SPRING, topic="t", partition=0, offset=3, limits=IntakeLimits(10_000)
    )
    assert isinstance(decoded, Rejected) and "rpc.gateway-7" in decoded.message


def test_an_unreadable_record_keeps_its_valid_reply() -> None:
    limits = IntakeLimits(10_000, reply_topics=ALLOWED)
    decoded = decode_record(b"\xff", SPRING, topic="t", partition=0, offset=3, limits=limits)
    assert isinstance(decoded, Rejected) and decoded.code.value == "invalid_json"
    assert decoded.reply == ReplyTo("rpc.gateway-7", 2, CORRELATION)
    accepted = decode_record(VALID, SPRING, topic="t", partition=0, offset=3, limits=limits)
    assert isinstance(accepted, Accepted) and accepted.reply == decoded.reply


async def processed(value: bytes, headers: list[tuple[str, bytes]]) -> list[Any]:
    subject = processor(IntakeLimits(1_048_576, 64, 262_144, ALLOWED))
    record = Record(value, headers=headers)
    channel = Channel()
    await subject.run(Work(record, subject.intake(record), channel, time.time()), NO_SLOT)
    [(_, messages)] = channel.finished
    return messages


async def test_the_reply_is_a_copy_of_the_envelope_with_the_correlation_id() -> None:
    messages = await processed(VALID, SPRING)
    assert [(m.topic, m.partition, m.reply) for m in messages] == [
        ("execution.results", None, False),
        ("rpc.gateway-7", 2, True),
    ]
    result, reply = messages
    assert reply.value == result.value and reply.key == result.key == b"r-1"
    assert reply.headers == [("request-id", b"r-1"), ("kafka_correlationId", CORRELATION)]
    assert json.loads(reply.value)["status"] == "success"


async def test_a_disallowed_reply_topic_runs_no_action_and_gets_no_copy() -> None:
    messages = await processed(VALID, [("reply-topic", b"elsewhere")])
    assert [m.topic for m in messages] == ["execution.dead-letter", "execution.results"]
    envelope = json.loads(messages[1].value)
    assert envelope["error"]["code"] == "invalid_request"
    assert "'elsewhere'" in envelope["error"]["message"]
    assert envelope["attempts"] == 0


async def test_a_dead_lettered_record_gets_its_reply_too() -> None:
    messages = await processed(b"not json", [("reply-topic", b"gateway.replies")])
    assert [m.topic for m in messages] == [
        "execution.dead-letter",
        "execution.results",
        "gateway.replies",
    ]
    assert messages[2].value == messages[1].value
    assert messages[2].headers == [("request-id", b"requests:2:41")]


def test_a_replayed_request_replies_where_its_headers_say_if_still_allowed() -> None:
    original = decode_record(
        VALID,
        SPRING,
        topic="t",
        partition=0,
        offset=3,
        limits=IntakeLimits(10_000, reply_topics=ALLOWED),
    )
    assert isinstance(original, Accepted)
    copy = replay_headers(FakeRecord(list(SPRING)), original)
    assert copy[: len(SPRING)] == SPRING, "the reply headers travel with the replayed copy"

    def replayed(allowed: ReplyTopics) -> Accepted | Rejected:
        return decode_record(
            VALID,
            copy,
            topic="t",
            partition=0,
            offset=9,
            limits=IntakeLimits(10_000, reply_topics=allowed),
        )

    again = replayed(ALLOWED)
    assert isinstance(again, Accepted) and again.reply == original.reply
    refused = replayed(ReplyTopics("gateway.replies"))
    assert isinstance(refused, Rejected) and "'rpc.gateway-7'" in refused.message
