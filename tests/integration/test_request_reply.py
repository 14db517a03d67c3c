"""Request-reply on the real broker: the envelope's copy on the reply topic and partition a
request names (ours, and Spring Kafka's headers byte for byte as `ReplyingKafkaTemplate` writes
them), in the same transaction as the results topic's; a topic not allowed is refused; a
partition that does not exist loses its copy and holds nothing up."""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, produce, read_topic


def request(request_id: str, message: str = "hi") -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "action": "log_message",
            "project": "p",
            "params": {"message": message},
        }
    ).encode()


def spring_headers(topic: str, partition: int, correlation: uuid.UUID) -> tuple[Any, ...]:
    """What ReplyingKafkaTemplate adds: `topic.getBytes()`, the partition as
    `ByteBuffer.allocate(4).putInt(p)`, the correlation id as a UUID's 16 bytes (its most
    significant long, then its least, both big-endian)."""
    msb, lsb = correlation.int >> 64, correlation.int & (2**64 - 1)
    return (
        ("kafka_replyTopic", topic.encode("utf-8")),
        ("kafka_replyPartition", struct.pack(">i", partition)),
        ("kafka_correlationId", struct.pack(">QQ", msb, lsb)),
    )


async def test_replies_go_to_the_named_topic_and_partition(
    kafka_bootstrap: str, topics: Topics
) -> None:
    replies = f"test.replies.{topics.group}"
    await create_topic(kafka_bootstrap, replies, partitions=3)
    correlation = uuid.uuid4()
    records = [
        Outgoing(request("ours"), b"k1", (("reply-topic", replies.encode()),)),
        Outgoing(
            request("ours-partition"),
            b"k2",
            (("reply-topic", replies.encode()), ("reply-partition", b"1")),
        ),
        Outgoing(request("spring"), b"k3", spring_headers(replies, 2, correlation)),
        # Not JSON: a dead letter, and its requester still gets its answer.
        Outgoing(b"{broken", b"k4", (("reply-topic", replies.encode()), ("request-id", b"bad"))),
        # Not allowed: refused, its action never runs, nothing goes to that topic.
        Outgoing(request("refused"), b"k5", (("reply-topic", b"execution.results"),)),
        # A partition the topic lacks: the copy is dropped, the partition goes on.
        Outgoing(
            request("no-partition"),
            b"k1",
            (("reply-topic", replies.encode()), ("reply-partition", b"9")),
        ),
        Outgoing(request("after"), b"k1", (("reply-topic", replies.encode()),)),
    ]
    settings = engine_settings(kafka_bootstrap, topics, reply_topics="test.replies.*,other")
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, records)
        results = await read_topic(kafka_bootstrap, topics.results, expect=7, grace_s=1)
        copies = await read_topic(kafka_bootstrap, replies, expect=5, grace_s=1)

    by_id = {json.loads(r.value)["request_id"]: r for r in results}
    assert sorted(by_id) == [
        "after",
        "bad",
        "no-partition",
        "ours",
        "ours-partition",
        "refused",
        "spring",
    ]
    refused = json.loads(by_id["refused"].value)
    assert refused["error"]["code"] == "invalid_request" and refused["attempts"] == 0
    assert "'execution.results'" in refused["error"]["message"]
    assert "EXECUTION_REPLY_TOPICS" in refused["error"]["message"]
    assert json.loads(by_id["bad"].value)["error"]["code"] == "invalid_json"

    copy_of = {json.loads(r.value)["request_id"]: r for r in copies}
    assert sorted(copy_of) == ["after", "bad", "ours", "ours-partition", "spring"], "one each"
    assert len(copies) == 5
    for request_id, copy in copy_of.items():
        assert copy.value == by_id[request_id].value, "the same bytes as the results envelope"
        assert copy.key == request_id.encode()
        assert ("request-id", request_id.encode()) in copy.headers
    assert copy_of["ours-partition"].partition == 1
    spring = copy_of["spring"]
    assert spring.partition == 2
    assert ("kafka_correlationId", correlation.bytes) in spring.headers
    assert json.loads(spring.value)["status"] == "success"
    assert not any(h[0] == "kafka_correlationId" for h in copy_of["ours"].headers)
