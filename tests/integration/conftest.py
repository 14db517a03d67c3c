"""A real Kafka broker for the whole session, and an engine running in-process per test."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from actions.egress import Resolver, system_resolver
from actions.registry import ActionRegistry
from consumer.app import Application
from consumer.localkafka import kafka_broker
from consumer.ops.log_sink import KafkaLogSink
from consumer.settings import EngineSettings


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    # No skip: if the broker cannot start, every integration test fails loudly.
    with kafka_broker() as bootstrap:
        yield bootstrap


@dataclass(frozen=True)
class Topics:
    requests: str
    results: str
    logs: str
    dead_letter: str
    group: str


@pytest.fixture
def topics() -> Topics:
    suffix = uuid.uuid4().hex[:10]
    return Topics(
        requests=f"test.requests.{suffix}",
        results=f"test.results.{suffix}",
        logs=f"test.logs.{suffix}",
        dead_letter=f"test.dead-letter.{suffix}",
        group=f"test-group-{suffix}",
    )


def engine_settings(bootstrap: str, topics: Topics, **overrides: Any) -> EngineSettings:
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "requests_topic": topics.requests,
        "results_topic": topics.results,
        "logs_topic": topics.logs,
        "dead_letter_topic": topics.dead_letter,
        "group_id": topics.group,
        "topic_partitions": 3,
        "commit_interval_s": 0.2,
        "retry_base_delay_s": 0.05,
        "retry_max_delay_s": 0.2,
        "session_timeout_ms": 10_000,
        "rebalance_timeout_ms": 20_000,
        # Never the contract's 8080: tests run side by side on one machine.
        "http_host": "127.0.0.1",
        "http_port": 0,
    }
    values.update(overrides)
    return EngineSettings(**values)


@contextlib.asynccontextmanager
async def running_engine(
    settings: EngineSettings,
    *,
    registry: ActionRegistry | None = None,
    resolver: Resolver = system_resolver,
    log_sink: KafkaLogSink | None = None,
) -> AsyncIterator[Application]:
    """Start the engine, wait until it owns partitions, stop it (drain + commit) afterwards."""
    stop = asyncio.Event()
    engine = Application(settings, registry=registry, resolver=resolver, log_sink=log_sink)
    task = asyncio.create_task(engine.run(stop))
    deadline = asyncio.get_running_loop().time() + 60
    while not engine.assigned:
        if task.done():
            task.result()  # raises what stopped it
            raise AssertionError("the engine stopped before it was assigned partitions")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the engine was not assigned partitions within 60 s")
        await asyncio.sleep(0.05)
    try:
        yield engine
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
