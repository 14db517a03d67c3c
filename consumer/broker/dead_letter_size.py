"""How large the dead-letter topic's records may be, so every record the engine accepted fits.

A dead letter is the original record (key, value, headers) plus the engine's five headers, in
a Kafka record batch. The broker refuses a batch over the topic's `max.message.bytes` (default
1,048,588: a 1,048,400-byte record that passed a 1 MiB limit did not fit once headers were
added). So the engine creates the topic with room for `EXECUTION_MAX_RECORD_BYTES` (or a full
producer batch, if larger) plus `HEADER_ROOM`, and, when an existing topic is smaller, lowers
the record limit to what fits.
"""

from __future__ import annotations

from collections.abc import Sequence

# Room beyond the record's value: its key, its headers, the engine's headers and Kafka's own
# framing. The engine's producer allows the same on top of the record limit.
HEADER_ROOM = 65_536
# The engine's producers' `max_batch_size` (consumer/app.py): small dead letters share a batch
# up to this size, and the broker checks the whole batch against `max.message.bytes`. A topic
# smaller than a batch refuses it, and with it the partition's whole transaction.
BATCH_BYTES = 512 * 1024
# Kafka's record-batch framing, at most: the batch header (61 bytes) and one record's fixed
# fields as varints at their widest (length, attributes, timestamp and offset deltas, key and
# value lengths, header count).
_BATCH_OVERHEAD = 61 + 5 + 1 + 10 + 5 + 5 + 5 + 5
_PER_HEADER_OVERHEAD = 10  # two varint lengths
MAX_MESSAGE_BYTES = "max.message.bytes"


def topic_bytes_for(max_record_bytes: int) -> int:
    """The `max.message.bytes` the dead-letter topic needs for records up to that size (and
    for a full batch of smaller ones)."""
    return max(max_record_bytes, BATCH_BYTES) + HEADER_ROOM


def smallest_topic_bytes() -> int:
    """Below this a dead-letter topic cannot take the engine's batches at all."""
    return topic_bytes_for(0)


def record_limit_for(topic_bytes: int) -> int:
    """The largest record value that can still be dead-lettered into a topic of that size."""
    return topic_bytes - HEADER_ROOM


def wire_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """An upper bound of the batch a single record makes on the wire (what the broker checks)."""
    size = _BATCH_OVERHEAD + len(key or b"") + len(value or b"")
    for name, header_value in headers:
        size += _PER_HEADER_OVERHEAD + len(name.encode("utf-8", "replace")) + len(header_value)
    return size
