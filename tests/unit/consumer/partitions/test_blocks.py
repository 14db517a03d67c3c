"""partitions/blocks.py: the group's assignor hands out whole blocks, balanced; a block's
transactional id names its layout."""

from __future__ import annotations

import itertools

from aiokafka import TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

from consumer.partitions.blocks import Block, block_assignor, block_of, transactional_id


class Cluster(ClusterMetadata):  # type: ignore[misc]
    def __init__(self, partitions: dict[str, int]) -> None:
        super().__init__()
        self._counts = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self._counts.get(topic)
        return None if count is None else set(range(count))


def assign(blocks: int, partitions: int, members: int) -> dict[str, set[int]]:
    assignor = block_assignor(blocks)
    metadata = {
        f"m{n}": ConsumerProtocolMemberMetadata(0, ["requests"], b"") for n in range(members)
    }
    result = assignor.assign(Cluster({"requests": partitions}), metadata)
    return {
        member: {p for topic, parts in a.assignment for p in parts if topic == "requests"}
        for member, a in result.items()
    }


def test_every_partition_goes_to_exactly_one_member_with_its_whole_block() -> None:
    for blocks, partitions, members in itertools.product((1, 4, 32), (1, 7, 64, 512), (1, 3, 5)):
        got = assign(blocks, partitions, members)
        every = sorted(p for parts in got.values() for p in parts)
        assert every == list(range(partitions)), (blocks, partitions, members)
        for parts in got.values():
            owned = {p % blocks for p in parts}
            for block in owned:  # a block never split between members
                assert {p for p in range(partitions) if p % blocks == block} <= parts


def test_members_are_balanced_to_within_one_block() -> None:
    got = assign(32, 512, 3)
    sizes = sorted(len(parts) for parts in got.values())
    assert sizes[-1] - sizes[0] <= 16, sizes
    assert assign(32, 12, 5) and max(len(p) for p in assign(32, 12, 5).values()) <= 3, (
        "a small topic still spreads over engines (one partition a block)"
    )


def test_the_protocol_name_and_the_transactional_id_carry_the_block_count() -> None:
    assert block_assignor(32).name == "execution-blocks-32"
    assert block_assignor(32).name != block_assignor(16).name, (
        "engines with different layouts cannot share a group"
    )
    block = block_of(TopicPartition("requests", 37), 32)
    assert block == Block("requests", 5)
    assert transactional_id("g", block, 32) == "g-requests-b5of32"
