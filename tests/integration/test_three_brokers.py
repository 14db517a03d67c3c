"""A 3-broker cluster (replication 3, min ISR 2) loses the broker that coordinates the engine's
group mid-stream: every record still gets exactly one envelope, and records of one key still
run in offset order.

The cluster is three `kafka.Kafka` processes on loopback started by the test
(`consumer.localkafka.cluster`); the fault is a SIGKILL of the group coordinator, which on a
3-broker cluster also leads some of the topics' partitions and some transaction state.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from consumer.localkafka.cluster import LocalKafkaCluster
from consumer.localkafka.machine import LocalKafkaError
from tests.integration.conftest import Topics
from tests.integration.engine_processes import (
    EngineProcess,
    engine_env,
    mixed_workload,
    produce_paced,
)
from tests.integration.kafka_io import read_topic
from tests.standins import HttpTargetStandIn

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("FAULT_SEED", random.randrange(1_000_000)))
RECORDS = 3000


@pytest.fixture
def cluster() -> Iterator[LocalKafkaCluster]:
    # Six loopback ports are chosen free, then bound by three JVMs starting together: on a busy
    # machine one may be taken meanwhile (an ephemeral port of another connection). Fresh ports.
    for attempt in range(3):
        candidate = LocalKafkaCluster()
        try:
            candidate.start()
        except LocalKafkaError as exc:
            candidate.stop()
            if "Address already in use" not in str(exc) or attempt == 2:
                raise
            continue
        try:
            yield candidate
        finally:
            candidate.stop()
        return


@pytest.fixture
def target() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


async def _group_coordinator(bootstrap: str, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        node: int = await admin.find_coordinator(group)
        return node
    finally:
        await admin.close()


async def _create_requests_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 6, 3)])
    finally:
        await admin.close()


async def test_killing_the_coordinator_broker_loses_and_repeats_nothing(
    cluster: LocalKafkaCluster, topics: Topics, target: HttpTargetStandIn, tmp_path: Path
) -> None:
    bootstrap = cluster.bootstrap_servers
    await _create_requests_topic(bootstrap, topics.requests)
    workload = mixed_workload(RECORDS, 50, target_url=target.base_url, slack=False, seed=SEED)
    env = engine_env(bootstrap, topics, EXECUTION_TOPIC_REPLICATION="3")
    engine = EngineProcess(env, tmp_path / "engine.log")
    try:
        await engine.wait_for_event("partitions.assigned", timeout_s=120)
        coordinator = await _group_coordinator(bootstrap, topics.group)
        stream = asyncio.create_task(
            produce_paced(bootstrap, topics.requests, workload.records, per_second=500)
        )
        await asyncio.sleep(2.0)
        await asyncio.to_thread(cluster.kill, coordinator)
        await stream
        results = await read_topic(
            bootstrap, topics.results, expect=RECORDS, timeout_s=180, grace_s=3
        )
        assert engine.process.poll() is None, "the engine survived the broker's death"
        unreachable = engine.events("broker.unreachable")
    finally:
        engine.stop()
    envelopes = [json.loads(r.value) for r in results]
    counts = Counter(e["request_id"] for e in envelopes)
    missing = workload.ids - set(counts)
    duplicated = {k: n for k, n in counts.items() if n > 1}
    print(
        f"3 brokers, coordinator {coordinator} killed: records={RECORDS} "
        f"envelopes={len(envelopes)} missing={len(missing)} duplicated={len(duplicated)}"
    )
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:5]}"
    assert not duplicated, f"duplicated: {dict(list(duplicated.items())[:5])}"
    # Per key, the envelopes' start times follow the records' offsets (produced in order).
    started = {e["request_id"]: datetime.fromisoformat(e["started_at"]) for e in envelopes}
    by_key: dict[bytes | None, list[int]] = defaultdict(list)
    for index, record in enumerate(workload.records):
        by_key[record.key].append(index)
    for key, indexes in by_key.items():
        times = [started[f"req-{i}"] for i in indexes]
        assert times == sorted(times), f"key {key!r} ran out of order"
    reported = Counter(e["broker"] for e in unreachable)
    assert reported[str(coordinator)] == 1, (
        f"one broker.unreachable for the killed broker: {reported}"
    )
    assert max(reported.values()) == 1, "once per broker per outage"
