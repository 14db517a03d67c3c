"""What rides in a committed offset's metadata: which records above the watermark are done.

A record that finishes above an unfinished one (a slow key ahead of it in the partition) has its
envelope published at once; the committed offset stays at the unfinished record. So that the
next owner of the partition does not run the finished ones again, the commit carries them, as
ranges of offsets, in its metadata (the scheme Confluent's Parallel Consumer uses).

Format: ``"ee1:" + base64url(varints)``, the varints being, per range, the gap from the previous
range's end (the first from the committed offset) and the range's length minus one. A range
``(first, last)`` means every record of the partition with an offset in it is done; offsets
that hold no record (transaction markers, compacted away) may fall inside.

Anything we cannot read (another tool's metadata, a reset by `kafka-consumer-groups`) means
"no record above the watermark is known to be done": safe, at worst work runs again.
"""

from __future__ import annotations

import base64
import binascii

Range = tuple[int, int]  # (first, last), both included

_PREFIX = "ee1:"
# Kafka refuses offset metadata over `offset.metadata.max.bytes` (4096 by default).
MAX_METADATA_CHARS = 3000


def encode(watermark: int, ranges: list[Range]) -> str:
    """Ranges must be sorted, disjoint and above `watermark`; none gives ``""``."""
    if not ranges:
        return ""
    out = bytearray()
    previous = watermark
    for first, last in ranges:
        if first < previous or last < first:
            raise ValueError(f"ranges out of order at {(first, last)} after {previous}")
        _put_varint(out, first - previous)
        _put_varint(out, last - first)
        previous = last + 1
    return _PREFIX + base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")


def decode(watermark: int, metadata: str | None) -> list[Range]:
    """The ranges `encode` wrote, or ``[]`` for metadata that is empty or not ours."""
    if not metadata or not metadata.startswith(_PREFIX):
        return []
    body = metadata[len(_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return []
    values: list[int] = []
    position = 0
    while position < len(raw):
        value, position = _get_varint(raw, position)
        if value < 0:
            return []
        values.append(value)
    if len(values) % 2:
        return []
    ranges: list[Range] = []
    previous = watermark
    for gap, length in zip(values[::2], values[1::2], strict=True):
        first = previous + gap
        ranges.append((first, first + length))
        previous = first + length + 1
    return ranges


def merge(ranges: list[Range]) -> list[Range]:
    """Sorted, with overlapping or adjacent ranges joined."""
    merged: list[Range] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def _put_varint(out: bytearray, value: int) -> None:
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _get_varint(raw: bytes, position: int) -> tuple[int, int]:
    """(value, next position); value -1 when the input ends inside a varint or is absurd."""
    value = shift = 0
    while position < len(raw):
        byte = raw[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            break
    return -1, len(raw)
