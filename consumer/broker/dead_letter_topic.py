"""Start-up check that the dead-letter topic can hold every record the engine accepts.

The engine creates the topic with `max.message.bytes` = `EXECUTION_MAX_RECORD_BYTES` plus
header room (consumer/broker/dead_letter_size.py). An existing topic (made by an operator, or
by an older engine with the broker's default) may be smaller: then the engine lowers its own
record limit to what the topic holds, so a record it accepts can always be dead-lettered
(larger ones get `payload_too_large`), and says so at error level, naming both settings; a
topic too small for one producer batch stops the start-up (its transactions would fail). A
topic whose size cannot be read (no DescribeConfigs permission, not created yet) is logged and
trusted: the engine cannot tell, and refusing to start would be worse.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from structlog.typing import FilteringBoundLogger

from consumer.broker.dead_letter_size import (
    MAX_MESSAGE_BYTES,
    record_limit_for,
    smallest_topic_bytes,
    topic_bytes_for,
)
from consumer.broker.settings import KafkaSettings


class DeadLetterTopicTooSmall(Exception):
    """The dead-letter topic cannot take the engine's batches: its transactions would fail."""


def dead_letter_topic_configs(max_record_bytes: int) -> dict[str, str]:
    """The topic configuration the engine creates the dead-letter topic with."""
    return {MAX_MESSAGE_BYTES: str(topic_bytes_for(max_record_bytes))}


async def topic_max_message_bytes(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    """The topic's effective `max.message.bytes` (its own, else the broker's default)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={MAX_MESSAGE_BYTES: ""})
    for response in await admin.describe_configs([resource]):
        for error_code, _message, _type, name, entries in response.resources:
            if name != topic or error_code != 0:
                continue
            for entry in entries:
                if entry[0] == MAX_MESSAGE_BYTES and str(entry[1]).isdigit():
                    return int(entry[1])
    return None


async def fit_record_limit(
    settings: KafkaSettings, max_record_bytes: int, log: FilteringBoundLogger
) -> tuple[int, int | None]:
    """The record limit to run with (`max_record_bytes`, lowered when the topic is too small)
    and the topic's `max.message.bytes` (None when it could not be read)."""
    topic = settings.dead_letter_topic
    try:
        admin = AIOKafkaAdminClient(**settings.kafka_client_options())
        await admin.start()
        try:
            topic_bytes = await topic_max_message_bytes(admin, topic)
        finally:
            await admin.close()
    except (KafkaError, OSError) as exc:
        log.warning("dead_letter.topic_unchecked", topic=topic, error=type(exc).__name__)
        return max_record_bytes, None
    if topic_bytes is None:
        log.warning("dead_letter.topic_unchecked", topic=topic, error="no max.message.bytes")
        return max_record_bytes, None
    needed = topic_bytes_for(max_record_bytes)
    if topic_bytes >= needed:
        return max_record_bytes, topic_bytes
    limit = record_limit_for(topic_bytes)
    message = (
        f"the dead-letter topic {topic!r} has {MAX_MESSAGE_BYTES}={topic_bytes}, below the "
        f"{needed} that EXECUTION_MAX_RECORD_BYTES={max_record_bytes} needs (the "
        f"record plus header room): raise the topic's {MAX_MESSAGE_BYTES} to {needed} or more"
    )
    if topic_bytes < smallest_topic_bytes():
        # A batch of small dead letters would be refused, failing the partition's transaction.
        raise DeadLetterTopicTooSmall(
            f"{message}; it must be at least {smallest_topic_bytes()} (a producer batch plus "
            "header room) for the engine to start"
        )
    log.error(
        "dead_letter.topic_too_small",
        topic=topic,
        max_message_bytes=topic_bytes,
        needed=needed,
        max_record_bytes=limit,
        message=f"{message}; until then records over {limit} bytes get payload_too_large",
    )
    return limit, topic_bytes
