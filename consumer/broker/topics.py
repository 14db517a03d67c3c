"""Topic helpers: create the engine's topics, find a topic's partitions."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from consumer.broker.dead_letter_topic import dead_letter_topic_configs
from consumer.broker.metadata import MissingTopic, partitions_of
from consumer.broker.settings import KafkaSettings

__all__ = [
    "MissingTopic",
    "TopicStatus",
    "create_topics",
    "engine_topics",
    "ensure_topics",
    "partitions_of",
]


async def ensure_topics(settings: KafkaSettings, max_record_bytes: int) -> None:
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
            NewTopic(
                name,
                settings.topic_partitions,
                settings.topic_replication,
                topic_configs=_own_configs(settings, max_record_bytes, name),
            )
            for name in wanted
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


def _own_configs(settings: KafkaSettings, max_record_bytes: int, name: str) -> dict[str, str]:
    """What the engine sets on a topic it creates: room for every record's dead letter."""
    return dead_letter_topic_configs(max_record_bytes) if name == settings.dead_letter_topic else {}


@dataclass(frozen=True)
class TopicStatus:
    name: str
    created: bool
    partitions: int
    replication: int


def engine_topics(settings: KafkaSettings) -> list[str]:
    return [
        settings.requests_topic,
        settings.results_topic,
        settings.logs_topic,
        settings.dead_letter_topic,
    ]


async def create_topics(
    settings: KafkaSettings,
    max_record_bytes: int,
    partitions: int,
    replication: int,
    configs: dict[str, str] | None = None,
) -> list[TopicStatus]:
    """Create the four topics when missing; report each (existing ones are left unchanged,
    so this is safe to run at every deployment)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        created = set()
        for name in engine_topics(settings):
            # The operator's --config wins; start-up reports a dead-letter topic too small.
            topic_configs = _own_configs(settings, max_record_bytes, name) | dict(configs or {})
            topic = NewTopic(name, partitions, replication, topic_configs=topic_configs)
            response = await admin.create_topics([topic])
            # Per-topic errors come back in the response, not as exceptions.
            for _, code, *rest in response.topic_errors:
                error = for_code(code)
                if error is TopicAlreadyExistsError:
                    break
                if code != 0:
                    message = rest[0] if rest else ""
                    raise RuntimeError(f"cannot create topic {name!r}: {error.__name__} {message}")
            else:
                created.add(name)
        described = await _describe(admin, engine_topics(settings))
        return [
            TopicStatus(name, name in created, *described.get(name, (0, 0)))
            for name in engine_topics(settings)
        ]
    finally:
        await admin.close()


async def _describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, tuple[int, int]]:
    """name -> (partitions, replication factor), waiting briefly for new topics' metadata."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        found = {
            topic["topic"]: (
                len(topic["partitions"]),
                max((len(p["replicas"]) for p in topic["partitions"]), default=0),
            )
            for topic in await admin.describe_topics(names)
            if topic["partitions"]
        }
        if len(found) == len(names) or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.2)
