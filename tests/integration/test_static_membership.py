"""Static group membership (EXECUTION_INSTANCE_ID): an engine killed and restarted under the same
instance id within the session timeout takes its partitions back without a rebalance, so the
other engines of the group never stop; and nothing is lost or repeated meanwhile."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Topics
from tests.integration.engine_processes import (
    EngineProcess,
    assert_exactly_once,
    engine_env,
    mixed_workload,
    produce_paced,
    tally,
)
from tests.integration.kafka_io import create_topic
from tests.standins import HttpTargetStandIn

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("FAULT_SEED", random.randrange(1_000_000)))


async def test_a_restarted_static_member_takes_its_partitions_back_without_a_rebalance(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=6)
    with HttpTargetStandIn() as target:
        workload = mixed_workload(1500, 30, target_url=target.base_url, slack=False, seed=SEED)

        def engine(instance: str, run: int) -> EngineProcess:
            env = engine_env(
                kafka_bootstrap,
                topics,
                EXECUTION_INSTANCE_ID=instance,
                # Long enough to restart a process in, as a pod's container restart is.
                EXECUTION_SESSION_TIMEOUT_MS="30000",
            )
            return EngineProcess(env, tmp_path / f"{instance}-{run}.log")

        # The group's leader is the first to join; the one restarted is the other, a follower
        # (a restarted static leader may rebalance to learn the members' subscriptions).
        other = engine("engine-a", 1)
        members = [other]
        try:
            await other.wait_for_event("partitions.assigned")
            first = engine("engine-b", 1)
            members.append(first)
            await first.wait_for_event("partitions.assigned")
            deadline = time.monotonic() + 60
            while len(first.assigned_partitions()) + len(other.assigned_partitions()) != 6:
                assert time.monotonic() < deadline, "the two engines never shared the topic"
                await asyncio.sleep(0.2)
            revoked_before = len(other.events("partitions.revoked"))
            mine = first.assigned_partitions()
            stream = asyncio.create_task(
                produce_paced(kafka_bootstrap, topics.requests, workload.records, per_second=300)
            )
            await asyncio.sleep(1.5)
            first.kill()
            restarted = engine("engine-b", 2)
            members.append(restarted)
            await restarted.wait_for_event("partitions.assigned", timeout_s=60)
            await stream
            result = await tally(kafka_bootstrap, topics, workload)
            assert restarted.assigned_partitions() == mine, "the same partitions, back"
            assert len(other.events("partitions.revoked")) == revoked_before, (
                "the other engine never stopped: no rebalance"
            )
        finally:
            for member in members:
                member.stop()
    print(f"static member restarted: records={len(workload.records)} {result}")
    assert_exactly_once(result, workload)
