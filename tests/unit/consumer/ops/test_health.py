"""ops/health.py: /readyz is not ready while assigned partitions cannot open, naming why."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from consumer.ops.health import engine_readiness


def in_group() -> SimpleNamespace:
    """An aiokafka consumer's state as group_readiness reads it: a member with partitions."""
    loop = asyncio.new_event_loop()
    closing = loop.create_future()
    loop.close()
    coordinator = SimpleNamespace(_closing=closing, coordinator_id=1, member_id="m-1", generation=3)
    subscription = SimpleNamespace(subscription=SimpleNamespace(assignment=object()))
    return SimpleNamespace(
        _coordinator=coordinator, _subscription=subscription, assignment=lambda: {1, 2}
    )


def test_ready_when_in_the_group_and_every_partition_opens() -> None:
    readiness = engine_readiness(in_group(), lambda: None)
    assert readiness.ready and "generation 3" in readiness.reason


def test_not_ready_while_partitions_cannot_open_with_the_reason() -> None:
    reason = "16 partitions (1 blocks) cannot open: OSError: [Errno 24] Too many open files"
    readiness = engine_readiness(in_group(), lambda: reason)
    assert not readiness.ready and readiness.reason == reason


def test_the_group_comes_first() -> None:
    readiness = engine_readiness(None, lambda: "never asked")
    assert not readiness.ready and "not started" in readiness.reason
