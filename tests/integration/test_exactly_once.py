"""Exactly one envelope per record, whatever happens to the engine: fault tests against a real
broker and real engine processes (kill -9, broker restart, a member lost from a group of three,
SIGTERM, a rebalance during a slow action).

Every test streams a mixed workload (log_message, http_request to a loopback target, send_slack
to a stand-in, unknown actions, unreadable records) over 50 keys while the fault happens, then
reads the results and dead-letter topics as a read_committed consumer: every request id must
have exactly one envelope, and every unreadable record exactly one dead letter.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.localkafka import LocalKafka
from tests.integration.conftest import Topics
from tests.integration.engine_processes import (
    EngineProcess,
    assert_exactly_once,
    engine_env,
    mixed_workload,
    produce_paced,
    tally,
)
from tests.integration.kafka_io import Outgoing, create_topic, produce
from tests.standins import HttpTargetStandIn, SlackStandIn, VaultStandIn

pytestmark = pytest.mark.slow

SLACK_TOKEN = "xoxb-eos-test-token"
SEED = int(os.environ.get("FAULT_SEED", random.randrange(1_000_000)))


@pytest.fixture
def target() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


@pytest.fixture
def slack_env() -> Iterator[dict[str, str]]:
    with (
        VaultStandIn(tokens={("proj-a", "slack"): SLACK_TOKEN}) as vault,
        SlackStandIn(valid_tokens={SLACK_TOKEN}) as slack,
    ):
        yield {"VAULT_URL": vault.base_url, "SLACK_API_URL": slack.base_url}


def start(
    bootstrap: str, topics: Topics, tmp_path: Path, name: str, extra: dict[str, str]
) -> EngineProcess:
    return EngineProcess(engine_env(bootstrap, topics, **extra), tmp_path / f"{name}.log")


async def test_kill_9_three_times_mid_stream(
    kafka_bootstrap: str,
    topics: Topics,
    target: HttpTargetStandIn,
    slack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    print(f"FAULT_SEED={SEED}")
    rng = random.Random(SEED)
    await create_topic(kafka_bootstrap, topics.requests, partitions=6)
    workload = mixed_workload(3000, 50, target_url=target.base_url, slack=True, seed=SEED)
    engine = start(kafka_bootstrap, topics, tmp_path, "engine-0", slack_env)
    engines = [engine]
    try:
        await engine.wait_for_event("partitions.assigned")
        stream = asyncio.create_task(
            produce_paced(kafka_bootstrap, topics.requests, workload.records, per_second=250)
        )
        for kill in range(1, 4):
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            engine.kill()
            engine = start(kafka_bootstrap, topics, tmp_path, f"engine-{kill}", slack_env)
            engines.append(engine)
            await engine.wait_for_event("partitions.assigned")
        await stream
        result = await tally(kafka_bootstrap, topics, workload)
    finally:
        for process in engines:
            process.stop()
    print(f"kill -9 x3: records={len(workload.records)} {result}")
    assert_exactly_once(result, workload)


async def test_broker_restart_mid_stream(
    topics: Topics, target: HttpTargetStandIn, slack_env: dict[str, str], tmp_path: Path
) -> None:
    # A broker of its own: restarting the session's broker would disturb nothing else, but
    # this one can be stopped hard whatever the session's broker is (external, Docker).
    with LocalKafka(data_dir=tmp_path / "kafka") as broker:
        bootstrap = broker.bootstrap_servers
        await create_topic(bootstrap, topics.requests, partitions=6)
        # Slow calls keep work in flight (and transactions open) when the broker goes down.
        workload = mixed_workload(
            2000, 50, target_url=target.base_url, slack=True, seed=SEED, slow_ms=500
        )
        engine = start(bootstrap, topics, tmp_path, "engine", slack_env)
        try:
            await engine.wait_for_event("partitions.assigned")
            # The test's own producer is not under test: it does not produce while the broker
            # is away (a retrying producer could duplicate requests).
            await produce(bootstrap, topics.requests, workload.records[:1000])
            await asyncio.sleep(1.0)
            await asyncio.to_thread(broker.restart, hard=True)
            await produce_paced(bootstrap, topics.requests, workload.records[1000:], per_second=400)
            result = await tally(bootstrap, topics, workload)
            assert engine.process.poll() is None, "the engine survived the broker restart"
        finally:
            engine.stop()
    print(f"broker restart: records={len(workload.records)} {result}")
    assert_exactly_once(result, workload)


async def test_three_engines_one_killed_the_others_take_over(
    kafka_bootstrap: str,
    topics: Topics,
    target: HttpTargetStandIn,
    slack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=6)
    workload = mixed_workload(3000, 50, target_url=target.base_url, slack=True, seed=SEED)
    engines = [start(kafka_bootstrap, topics, tmp_path, f"engine-{i}", slack_env) for i in range(3)]
    try:
        for engine in engines:
            await engine.wait_for_event("partitions.assigned")
        await _until(lambda: all(len(e.assigned_partitions()) == 2 for e in engines), 60)
        stream = asyncio.create_task(
            produce_paced(kafka_bootstrap, topics.requests, workload.records, per_second=400)
        )
        await asyncio.sleep(2.5)
        victim, survivors = engines[0], engines[1:]
        victim.kill()
        # The survivors own all six partitions between them once the group notices.
        await _until(
            lambda: len(set().union(*(e.assigned_partitions() for e in survivors))) == 6, 60
        )
        await stream
        result = await tally(kafka_bootstrap, topics, workload)
    finally:
        for engine in engines:
            engine.stop()
    print(f"3 engines, 1 killed: records={len(workload.records)} {result}")
    assert_exactly_once(result, workload)


async def test_sigterm_mid_stream_exits_zero_within_the_drain_bound(
    kafka_bootstrap: str,
    topics: Topics,
    target: HttpTargetStandIn,
    slack_env: dict[str, str],
    tmp_path: Path,
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=6)
    # Slower calls, so that SIGTERM finds actions running.
    workload = mixed_workload(
        2000, 50, target_url=target.base_url, slack=True, seed=SEED, slow_ms=300
    )
    extra = {**slack_env, "EXECUTION_DRAIN_TIMEOUT_S": "3"}
    engine = start(kafka_bootstrap, topics, tmp_path, "engine-0", extra)
    try:
        await engine.wait_for_event("partitions.assigned")
        stream = asyncio.create_task(
            produce_paced(kafka_bootstrap, topics.requests, workload.records, per_second=500)
        )
        await asyncio.sleep(2)
        status, took = engine.terminate()
        # Drain bound, final transactions (at most 5 s, normally milliseconds), leaving the group.
        assert status == 0
        assert took < 3 + 5, f"took {took:.1f} s"
        assert engine.events("engine.drained")
        engine = start(kafka_bootstrap, topics, tmp_path, "engine-1", extra)
        await stream
        result = await tally(kafka_bootstrap, topics, workload)
    finally:
        engine.stop()
    print(f"SIGTERM: exit 0 in {took:.2f} s; records={len(workload.records)} {result}")
    assert_exactly_once(result, workload)


@pytest.mark.parametrize("slow_ms", [2_000, 8_000], ids=["finishes-in-drain", "abandoned"])
async def test_rebalance_while_a_slow_action_is_in_flight(
    kafka_bootstrap: str,
    topics: Topics,
    target: HttpTargetStandIn,
    tmp_path: Path,
    slow_ms: int,
) -> None:
    """A second engine joins while the first runs a slow call. Within the drain bound (5 s) the
    call finishes and its envelope is committed before the partition moves; past it the call
    is abandoned and runs again on the new owner. Either way: one envelope per record."""
    await create_topic(kafka_bootstrap, topics.requests, partitions=6)
    slow = Outgoing.request(
        {
            "request_id": "slow",
            "action": "http_request",
            "project": "proj-a",
            "params": {"url": f"{target.base_url}/delay/{slow_ms}"},
        },
        key="slow-key",
    )
    workload = mixed_workload(600, 50, target_url=target.base_url, slack=False, seed=SEED)
    first = start(kafka_bootstrap, topics, tmp_path, "first", {})
    second: EngineProcess | None = None
    try:
        await first.wait_for_event("partitions.assigned")
        await produce(kafka_bootstrap, topics.requests, [slow])
        await _until(lambda: any(r.path.startswith("/delay/") for r in target.requests), 30)
        second = start(kafka_bootstrap, topics, tmp_path, "second", {})
        stream = asyncio.create_task(
            produce_paced(kafka_bootstrap, topics.requests, workload.records, per_second=300)
        )
        await second.wait_for_event("partitions.assigned")
        await stream
        result = await tally(kafka_bootstrap, topics, workload.plus(slow, "slow"))
        assert first.events("partitions.revoked"), "the first engine gave partitions up"
    finally:
        first.stop()
        if second is not None:
            second.stop()
    assert_exactly_once(result, workload.plus(slow, "slow"))


async def _until(condition: object, timeout_s: float) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.2)


async def test_sigterm_while_the_broker_is_gone_still_exits(tmp_path: Path, topics: Topics) -> None:
    """Closing Kafka clients waits for the broker; with the broker gone a shutdown must still
    end (every close is bounded), and what it could not commit runs again later."""
    with LocalKafka(data_dir=tmp_path / "kafka") as broker:
        bootstrap = broker.bootstrap_servers
        await create_topic(bootstrap, topics.requests, partitions=6)
        workload = mixed_workload(200, 20, target_url="http://127.0.0.1:9", slack=False, seed=SEED)
        engine = start(bootstrap, topics, tmp_path, "engine", {"EXECUTION_DRAIN_TIMEOUT_S": "2"})
        try:
            await engine.wait_for_event("partitions.assigned")
            await produce(bootstrap, topics.requests, workload.records)
            await engine.wait_for_event("action.succeeded", count=100)
            await asyncio.to_thread(broker.kill)
            status, took = engine.terminate(timeout_s=90)
        finally:
            engine.stop()
    print(f"SIGTERM with the broker gone: exit {status} in {took:.1f} s")
    assert status == 0
    assert took < 35, f"took {took:.1f} s"  # measured about 20 s: five bounded closes
    assert engine.events("engine.stopped")
