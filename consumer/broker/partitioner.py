"""Kafka's default partitioner (murmur2 of the key), fast enough for one call per envelope.

aiokafka's `murmur2` works byte by byte in pure Python: ~10 us for a 36-character request id,
paid by every `send()` (each envelope has its own key) and for every log event's key. This one
reads the key four bytes at a time with `struct` and gives the same hash (a test compares them
on random keys), so records land on the partitions the Java client and aiokafka would choose.
"""

from __future__ import annotations

import functools
import random
import struct
from collections.abc import Sequence

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    length = len(data)
    h = _SEED ^ length
    words = length // 4
    for word in struct.unpack_from(f"<{words}I", data):
        k = (word * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = length & ~3
        if tail >= 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


class FastPartitioner:
    """aiokafka's `DefaultPartitioner`, with the fast `murmur2`: a keyless record goes to a
    random available partition."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        return all_partitions[(_recent_murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


# A request's key is hashed for its log events and, when its partition's transaction comes,
# for its envelope: the recent keys' hashes are kept, so each is computed once. Up to
# EXECUTION_MAX_BUFFERED (10,000 by default) records wait between the two (~2 MB held).
_recent_murmur2 = functools.lru_cache(maxsize=16_384)(murmur2)
