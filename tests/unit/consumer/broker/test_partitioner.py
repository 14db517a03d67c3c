"""The fast murmur2 partitioner chooses the partitions aiokafka's (and Java's) would."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2

from consumer.broker.partitioner import FastPartitioner, murmur2


def test_murmur2_equals_aiokafkas_on_random_keys_of_every_length() -> None:
    rng = random.Random(7)
    for length in range(80):
        for _ in range(25):
            key = rng.randbytes(length)
            assert murmur2(key) == reference_murmur2(key), key


def test_keyed_records_go_where_the_default_partitioner_sends_them() -> None:
    rng = random.Random(11)
    fast, default = FastPartitioner(), DefaultPartitioner()
    for count in (1, 3, 6, 7, 50):
        partitions = list(range(count))
        for _ in range(100):
            key = f"req-{rng.getrandbits(64):x}".encode()
            assert fast(key, partitions, partitions) == default(key, partitions, partitions)


def test_a_keyless_record_goes_to_an_available_partition() -> None:
    chosen = {FastPartitioner()(None, [0, 1, 2, 3], [1, 3]) for _ in range(200)}
    assert chosen == {1, 3}
