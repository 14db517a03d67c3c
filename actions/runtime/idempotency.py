"""`request_id` as an idempotency key: a request that already succeeded is not executed again.

The runner asks before an action runs and writes after it succeeded. The record of a success
is `SET NX` with a TTL in spirit: before running, a request *claims* its key for a short lease
(so the same request arriving twice at once, on two partitions or two engines, runs once: the
second waits for the first's outcome); a success replaces the claim with the action's `data`
for `ttl_s`; a failure gives the claim back (failures are not remembered: a retry or replay
runs again). What remains unguarded is the moment between the effect and the write of its
success: a crash there repeats the effect on redelivery.

`LocalSuccesses` is the in-process store (one engine, or any engine while the fleet's store is
away): an LRU bounded in entries and in bytes of `data`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson

from actions.base import InFlightSlot

T = TypeVar("T")


def idempotency_key(project: str, request_id: str) -> str:
    """One project cannot suppress another's request by reusing its id."""
    return f"{project}/{request_id}"


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: `mine` (run it; the lease is this caller's), `data` (it already
    succeeded: this is the first success's data), or neither (another caller runs it now)."""

    mine: bool = False
    data: dict[str, Any] | None = None


# The two answers without data, made once (a frozen dataclass is slow to build: one per claim).
CLAIM_MINE = Claim(mine=True)
CLAIM_TAKEN = Claim()


class SuccessStore(Protocol):
    async def claim(self, key: str, owner: str, lease_s: float) -> Claim: ...

    async def succeeded(self, key: str, owner: str, data: Mapping[str, Any], ttl_s: float) -> None:
        """Replace the claim by the record of a success, kept `ttl_s`."""
        ...

    async def release(self, key: str, owner: str) -> None:
        """The request failed: forget the claim (if it is still `owner`'s)."""
        ...


# A random prefix per process and a counter: unique across the fleet like a uuid4 per claim,
# at a tenth of its cost (one per executed request).
_OWNER_PREFIX = uuid.uuid4().hex
_owner_numbers = itertools.count()


def new_owner() -> str:
    """A claim's owner: unique per attempt to run, across the fleet."""
    return f"{_OWNER_PREFIX}-{next(_owner_numbers):x}"


def _json_size(data: Mapping[str, Any]) -> int:
    """The size of `data` as compact JSON (what the LRU's byte bound counts): orjson, else
    (a value it cannot encode: an integer beyond 64 bits, a lone surrogate) the json module."""
    try:
        return len(orjson.dumps(data, default=str))
    except TypeError:
        return len(json.dumps(data, default=str, separators=(",", ":")).encode())


class _Project(Protocol):
    @property
    def project(self) -> str: ...


@dataclass(frozen=True)
class IdempotencyRecords:
    """What the runner checks requests against: a `SuccessStore` (None: nothing is checked)
    and how long it keeps what."""

    store: SuccessStore | None
    ttl_s: float = 86_400.0
    # How long a running request holds its id against a duplicate arriving meanwhile.
    lease_s: float = 10.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def once(
        self, request: _Project, request_id: str, slot: InFlightSlot, check: bool = True
    ) -> Once | None:
        """The request's turn with its id, or None when it is not checked."""
        if self.store is None or not check:
            return None
        return Once(
            self.store, self, idempotency_key(request.project, request_id), new_owner(), slot
        )


NO_RECORDS = IdempotencyRecords(None)


@dataclass
class Once:
    """One request's turn with its id: `first_success` before it runs, `settle` after."""

    store: SuccessStore
    records: IdempotencyRecords
    key: str
    owner: str
    slot: InFlightSlot
    settled: bool = False

    async def first_success(self) -> dict[str, Any] | None:
        """The data of this request's first success (nothing left to do then), or None once
        this caller holds the claim to run it. While another caller runs it, wait (lending the
        in-flight slot) for its outcome; a claim whose holder vanished ends with its lease."""
        store, pause = self.store, 0.02
        while True:
            claim = await store.claim(self.key, self.owner, self.records.lease_s)
            if claim.data is not None:
                self.settled = True  # never held the claim: nothing to write or give back
                return claim.data
            if claim.mine:
                return None
            async with self.slot.stepped_aside():
                await self.records.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def settle(self, data: Mapping[str, Any] | None) -> None:
        """After the run: its success's `data` is recorded; None (it failed, or was abandoned)
        gives the claim back, so it may run again."""
        if self.settled:
            return
        self.settled = True
        if data is not None:
            await self.store.succeeded(self.key, self.owner, data, self.records.ttl_s)
        else:
            await self.store.release(self.key, self.owner)


@dataclass
class _Record:
    owner: str | None  # set while claimed, None once succeeded
    data: dict[str, Any] | None
    expires_at: float
    size: int


class LocalSuccesses:
    """In-process `SuccessStore`: an LRU of at most `max_entries` records and `max_bytes` of
    their `data` (as JSON), each kept until its TTL or lease ends."""

    def __init__(
        self,
        max_entries: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def bytes(self) -> int:
        return self._bytes

    async def claim(self, key: str, owner: str, lease_s: float) -> Claim:
        return self.claim_now(key, owner, lease_s)

    def claim_now(self, key: str, owner: str, lease_s: float) -> Claim:
        record = self._live(key)
        if record is None:
            self._put(key, _Record(owner, None, self._clock() + lease_s, 0))
            return CLAIM_MINE
        if record.owner is None:
            return Claim(data=record.data)
        return CLAIM_MINE if record.owner == owner else CLAIM_TAKEN

    async def succeeded(self, key: str, owner: str, data: Mapping[str, Any], ttl_s: float) -> None:
        self.succeeded_now(key, dict(data), ttl_s)

    def succeeded_now(self, key: str, data: dict[str, Any], ttl_s: float) -> None:
        size = _json_size(data)
        if size > self._max_bytes:
            self._drop(key)  # too large to keep here: the claim goes, nothing is remembered
            return
        self._put(key, _Record(None, data, self._clock() + ttl_s, size))

    async def release(self, key: str, owner: str) -> None:
        record = self._records.get(key)
        if record is not None and record.owner == owner:
            self._drop(key)

    def _live(self, key: str) -> _Record | None:
        record = self._records.get(key)
        if record is None:
            return None
        if record.expires_at <= self._clock():
            self._drop(key)
            return None
        self._records.move_to_end(key)
        return record

    def _put(self, key: str, record: _Record) -> None:
        self._drop(key)
        self._records[key] = record
        self._bytes += record.size
        while len(self._records) > self._max_entries or self._bytes > self._max_bytes:
            _, oldest = self._records.popitem(last=False)
            self._bytes -= oldest.size

    def _drop(self, key: str) -> None:
        record = self._records.pop(key, None)
        if record is not None:
            self._bytes -= record.size
