"""Blocks of input partitions: the unit that moves between engines and owns a transactional id.

aiokafka speaks the pre-KIP-447 transaction protocol, so a zombie engine is fenced only when
the new owner of its input initialises a producer with the *same* transactional id. A
transactional id per input partition did that, at the price of one producer (two or more
broker connections, a flush loop) per partition. Here partition `p` of a topic belongs to
block `p % blocks`; the group's assignor (`block_assignor`) always hands a whole block to one
member, so one transactional id per block fences exactly as one per partition did, and one
transaction commits the offsets of every partition of the block.

`blocks` is fixed per group: partition `p` stays in its block when partitions are added, and
the assignor's protocol name carries the count, so engines configured differently cannot join
the same group (the broker refuses the second protocol) instead of holding one partition under
two transactional ids.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from aiokafka import TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)


class Block(NamedTuple):
    topic: str
    number: int


def block_of(tp: TopicPartition, blocks: int) -> Block:
    return Block(tp.topic, tp.partition % blocks)


def transactional_id(group_id: str, block: Block, blocks: int) -> str:
    # The count is part of the id: a block of another layout is another producer.
    return f"{group_id}-{block.topic}-b{block.number}of{blocks}"


def block_assignor(blocks: int) -> type[AbstractPartitionAssignor]:
    """The group's assignor: whole blocks, the largest first, each to the member that holds
    the fewest partitions so far (ties: the lowest member id), so members differ by at most
    one block's worth of partitions."""
    if blocks < 1:
        raise ValueError("blocks must be >= 1")

    class BlockAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
        name = f"execution-blocks-{blocks}"
        version = 0

        @classmethod
        def assign(
            cls,
            cluster: ClusterMetadata,
            members: Mapping[str, ConsumerProtocolMemberMetadata],
        ) -> dict[str, ConsumerProtocolMemberAssignment]:
            grouped: dict[Block, list[int]] = collections.defaultdict(list)
            subscribers: dict[str, list[str]] = collections.defaultdict(list)
            for member_id in sorted(members):
                for topic in members[member_id].subscription:
                    subscribers[topic].append(member_id)
            for topic in subscribers:
                for partition in sorted(cluster.partitions_for_topic(topic) or ()):
                    grouped[Block(topic, partition % blocks)].append(partition)
            load = dict.fromkeys(members, 0)
            chosen: dict[str, dict[str, list[int]]] = {
                member_id: collections.defaultdict(list) for member_id in members
            }
            for block, partitions in sorted(grouped.items(), key=lambda b: (-len(b[1]), b[0])):
                member_id = min(subscribers[block.topic], key=lambda m: (load[m], m))
                load[member_id] += len(partitions)
                chosen[member_id][block.topic].extend(partitions)
            return {
                member_id: ConsumerProtocolMemberAssignment(
                    cls.version,
                    sorted((topic, sorted(parts)) for topic, parts in chosen[member_id].items()),
                    b"",
                )
                for member_id in members
            }

        @classmethod
        def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
            return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            return None

    return BlockAssignor
