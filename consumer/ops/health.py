"""Readiness: is the engine connected to Kafka and a member of its consumer group?

aiokafka has no public "am I in my group" call, so this reads its group coordinator's state
(checked against aiokafka 0.12-0.14): `coordinator_id` is None until the group's coordinator
broker is found, and is reset as soon as a heartbeat (every 3 s) or commit cannot reach it,
which is how a stopped broker shows; `member_id`/`generation` are set by a successful join and
reset when the broker forgets the member; `assignment` is set once partitions were assigned
(possibly none, when there are more engines than partitions: that engine is still ready).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_UNKNOWN_MEMBER_ID = ""


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str


def group_readiness(consumer: Any) -> Readiness:
    """Readiness of a started, subscribed AIOKafkaConsumer (None: not started yet)."""
    if consumer is None:
        return Readiness(False, "the consumer has not started")
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or getattr(coordinator, "_closing", None) is None:
        return Readiness(False, "the consumer is not running")
    if coordinator._closing.done():
        return Readiness(False, "the consumer is stopping")
    if coordinator.coordinator_id is None:
        return Readiness(False, "no group coordinator: Kafka unreachable or the group not found")
    if coordinator.member_id == _UNKNOWN_MEMBER_ID or coordinator.generation < 0:
        return Readiness(False, "not a member of the consumer group (joining)")
    if consumer._subscription.subscription is None:
        return Readiness(False, "not subscribed")
    if consumer._subscription.subscription.assignment is None:
        return Readiness(False, "waiting for a partition assignment")
    assigned = len(consumer.assignment())
    return Readiness(True, f"in group generation {coordinator.generation}, {assigned} partitions")


def engine_readiness(consumer: Any, not_open: Callable[[], str | None]) -> Readiness:
    """The group's readiness, and every assigned partition able to open: a partition that
    cannot (its producer refused, no file descriptor left) is work nobody does."""
    readiness = group_readiness(consumer)
    if not readiness.ready:
        return readiness
    reason = not_open()
    return readiness if reason is None else Readiness(False, reason)
