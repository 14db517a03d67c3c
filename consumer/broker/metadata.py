"""A topic's partitions, as a client sees them: light (the Kafka client only), so the commands
that only read or write a topic import nothing else of the engine."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition


class MissingTopic(LookupError):
    """A topic that does not exist (the CLI names the setting that names it)."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist")
        self.topic = topic


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
            raise MissingTopic(topic)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
