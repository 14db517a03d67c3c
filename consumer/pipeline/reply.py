"""Request-reply: a request that names its own reply topic in its headers gets a copy of its
envelope there, published in the same transaction as the results topic's.

The headers are ours (`reply-topic` UTF-8, `reply-partition` decimal text) or Spring Kafka's as
`ReplyingKafkaTemplate` writes them (`kafka_replyTopic` UTF-8, `kafka_replyPartition` a 4-byte
big-endian int, `kafka_correlationId` raw bytes, echoed as they came). Only topics that
`EXECUTION_REPLY_TOPICS` allows may be named: the engine publishes inside its own transactions,
so an open reply topic would let any producer on the requests topic write anywhere it can.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

REPLY_TOPIC = "reply-topic"
REPLY_PARTITION = "reply-partition"
SPRING_REPLY_TOPIC = "kafka_replyTopic"
SPRING_REPLY_PARTITION = "kafka_replyPartition"
SPRING_CORRELATION_ID = "kafka_correlationId"
SETTING = "EXECUTION_REPLY_TOPICS"

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_DECIMAL = re.compile(r"[0-9]{1,10}")
_FOLDED = {
    name.lower(): name
    for name in (
        REPLY_TOPIC,
        REPLY_PARTITION,
        SPRING_REPLY_TOPIC,
        SPRING_REPLY_PARTITION,
        SPRING_CORRELATION_ID,
    )
}


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where a copy of a record's envelope goes, and the correlation id it carries back."""

    topic: str
    partition: int | None = None  # None: chosen by the key, as on the results topic
    correlation_id: bytes | None = None


class ReplyTopics:
    """The allow-list: exact names, and prefixes written `prefix*`."""

    def __init__(self, spec: str = "") -> None:
        entries = [entry.strip() for entry in spec.split(",") if entry.strip()]
        self._names = frozenset(entry for entry in entries if not entry.endswith("*"))
        self._prefixes = tuple(entry[:-1] for entry in entries if entry.endswith("*"))

    def allows(self, topic: str) -> bool:
        return topic in self._names or topic.startswith(self._prefixes)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ReplyTopics)
            and self._names == other._names
            and set(self._prefixes) == set(other._prefixes)
        )

    def __hash__(self) -> int:
        return hash((self._names, frozenset(self._prefixes)))

    def __repr__(self) -> str:
        return (
            f"ReplyTopics({','.join([*sorted(self._names), *(p + '*' for p in self._prefixes)])!r})"
        )


NO_REPLY_TOPICS = ReplyTopics()


def read_reply(headers: Sequence[tuple[str, bytes]], allowed: ReplyTopics) -> ReplyTo | str | None:
    """The reply a record asks for: None when it names no reply topic, a `ReplyTo`, or the
    reason the request is invalid (`invalid_request`), naming the topic and the setting."""
    found: dict[str, bytes] = {}
    for key, value in headers:
        name = _FOLDED.get(key.lower())
        if name is not None and name not in found:
            found[name] = value
    if not found:
        return None
    raw_topic = found.get(REPLY_TOPIC, found.get(SPRING_REPLY_TOPIC))
    if raw_topic is None:
        if REPLY_PARTITION in found or SPRING_REPLY_PARTITION in found:
            return "a reply partition is named without a reply topic"
        return None  # a correlation id alone asks for nothing
    try:
        topic = raw_topic.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        return "the reply topic header is not UTF-8"
    if not _TOPIC_NAME.fullmatch(topic) or topic in {".", ".."}:
        return f"the reply topic {topic[:64]!r} is not a valid Kafka topic name"
    if not allowed.allows(topic):
        return f"the reply topic {topic!r} is not allowed by {SETTING}"
    partition = _partition(found)
    if isinstance(partition, str):
        return partition
    return ReplyTo(topic, partition, found.get(SPRING_CORRELATION_ID))


def _partition(found: dict[str, bytes]) -> int | str | None:
    ours = found.get(REPLY_PARTITION)
    if ours is not None:
        text = ours.decode("ascii", "replace")
        if not _DECIMAL.fullmatch(text) or int(text) > 2**31 - 1:
            return f"the reply partition {text[:16]!r} is not a decimal partition number"
        return int(text)
    spring = found.get(SPRING_REPLY_PARTITION)
    if spring is not None:
        if len(spring) != 4:
            return f"{SPRING_REPLY_PARTITION} is {len(spring)} bytes; Spring writes 4 (big-endian)"
        number = int.from_bytes(spring, "big", signed=True)
        if number < 0:
            return f"the reply partition {number} is negative"
        return number
    return None
