"""Topic helpers: create the engine's topics, find a topic's partitions."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from consumer.settings import EngineSettings


async def ensure_topics(settings: EngineSettings) -> None:
    """Create the engine's topics when missing (idempotent; a production cluster may pre-create)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            settings.requests_topic,
            settings.results_topic,
            settings.logs_topic,
            settings.dead_letter_topic,
        ]
        missing = [
            NewTopic(name, settings.topic_partitions, settings.topic_replication)
            for name in wanted
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def partitions_of(
    consumer: AIOKafkaConsumer, topic: str, wait_s: float = 10.0
) -> list[TopicPartition]:
    """The topic's partitions, waiting up to `wait_s` for a topic that was just created."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if asyncio.get_running_loop().time() > deadline:
            raise LookupError(f"topic {topic!r} does not exist")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
