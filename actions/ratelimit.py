"""Per-destination rate limits: each key gets its own schedule of allowed start times.

The algorithm is GCRA (the "virtual scheduling" form of a token bucket): every key keeps the
theoretical arrival time `tat` of its next request. A caller reserves the earliest slot at once,
without awaiting anything, and then sleeps until it; so no lock is held while waiting, callers of
one key are served in the order they reserved, and callers of other keys never wait for them.

A fleet of engines shares its schedules through a `RateStore` (the engine's Redis/Valkey state
runs the same GCRA as one atomic script); when the store cannot answer, this process's own
schedule takes over, so a store outage costs pacing accuracy, never a request.

A provider's 429 with `Retry-After` says a quota is spent until then: `pause` moves the keys it
belongs to past that moment (their `tat`), so the next calls wait instead of spending quota on
more 429s. A key whose limit is not configured can still be paused: it takes part with a rate of
no spacing (`UNPACED`), whose schedule only ever holds a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from actions.errors import RateLimitExhausted, StateUnavailable

_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*(?:burst\s*(\d+))?\s*$")


@dataclass(frozen=True)
class Rate:
    """`count` requests per `period_s`, evenly spaced; `burst` may go back to back."""

    count: float
    period_s: float
    burst: int = 1

    @property
    def interval_s(self) -> float:
        return self.period_s / self.count

    @classmethod
    def parse(cls, text: str) -> Rate | None:
        """`"1/s"`, `"60/min"`, `"300/min burst 10"`; `""` or `"off"` -> None (no limit)."""
        spec = text.strip().lower()
        if spec in ("", "off", "none"):
            return None
        match = _RATE.fullmatch(spec)
        if match is None or match.group(2) not in _UNITS or float(match.group(1)) <= 0:
            raise ValueError(f"not a rate: {text!r} (e.g. '1/s', '60/min', '300/min burst 10')")
        burst = int(match.group(3) or 1)
        if burst < 1:
            raise ValueError(f"burst must be at least 1: {text!r}")
        return cls(float(match.group(1)), _UNITS[match.group(2)], burst)


# The rate of a key whose limit is not configured: no spacing, only the pauses it is given.
UNPACED = Rate(1.0, 0.0)


@dataclass(frozen=True)
class RateKey:
    """Whose budget a call spends: `limit` names the configured rate, `key` the destination."""

    limit: str
    key: str


@dataclass(frozen=True)
class RateLimitSpec:
    """A rate limit an action declares (`Action.rate_limits`): the limit its `RateKey`s name,
    the environment variable that configures it, its default and what it counts. The engine's
    settings read every declared one, so adding a limited action touches no engine code."""

    name: str
    env: str
    default: str
    description: str

    def __post_init__(self) -> None:
        Rate.parse(self.default)  # a bad default is the action author's bug: fail at import


class RateStore(Protocol):
    """Schedules shared by a fleet. `reserve` is `RateLimiter.reserve` done atomically for all
    the slots: returns (granted, seconds to wait); not granted (nothing reserved) when the wait
    exceeds `max_wait_s`. Raises `StateUnavailable` when the store cannot answer in time."""

    async def reserve(
        self, slots: Sequence[tuple[RateKey, Rate]], max_wait_s: float | None
    ) -> tuple[bool, float]: ...

    async def pause(self, slots: Sequence[tuple[RateKey, Rate]], seconds: float) -> None:
        """No slot of these keys starts within `seconds` from now (see `RateLimiter.pause`)."""
        ...


class RateLimiter:
    """Reserve-then-sleep per key. `limits` maps a limit name (e.g. `slack.channel`) to a Rate;
    keys of a limit that is not configured are not limited."""

    def __init__(
        self,
        limits: Mapping[str, Rate | None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
        store: RateStore | None = None,
        max_keys: int = 10_000,
    ) -> None:
        self._limits = {name: rate for name, rate in (limits or {}).items() if rate is not None}
        self._clock = clock
        self._sleep = sleep
        self._store = store
        # Destinations are whatever requests name (channels, spreadsheets): the schedules are
        # an LRU of at most `max_keys`. Forgetting a live schedule
        # lets that key's next call go at once: a bounded over-spend, never unbounded memory.
        self._max_keys = max_keys
        self._tat: OrderedDict[RateKey, float] = OrderedDict()
        # Whether any key was ever paused: until then, unconfigured keys need no look-up.
        self._paused_any = store is not None

    @property
    def limits(self) -> dict[str, Rate]:
        return dict(self._limits)

    def reserve(self, keys: Sequence[RateKey], max_wait_s: float | None = None) -> float:
        """Reserve the earliest moment every key allows; returns the seconds to wait for it.

        When that moment is more than `max_wait_s` away nothing is reserved and
        `RateLimitExhausted` is raised, so a request that cannot make its deadline does not
        take a slot another request could use.
        """
        limited = self._slots(keys)
        if not limited:
            return 0.0
        now = self._clock()
        start = now
        for key, rate in limited:
            tat = self._tat.get(key, now)
            # The bucket allows `burst` requests ahead of the even schedule.
            start = max(start, tat - (rate.burst - 1) * rate.interval_s)
        wait = start - now
        if max_wait_s is not None and wait > max_wait_s:
            names = ", ".join(sorted({k.limit for k, _ in limited}))
            raise RateLimitExhausted(
                f"the engine's own rate limit ({names}) has no slot within "
                f"{max(max_wait_s, 0.0):.1f} s",
                details={"limit": names, "wait_s": round(wait, 3)},
            )
        for key, rate in limited:
            if rate.interval_s > 0:  # an unpaced key's schedule holds only its pauses
                self._tat[key] = max(self._tat.get(key, now), start) + rate.interval_s
                self._tat.move_to_end(key)
        self._trim()
        return wait

    def _slots(self, keys: Sequence[RateKey]) -> list[tuple[RateKey, Rate]]:
        """Each key with its configured rate; an unconfigured one is `UNPACED` (it may hold a
        pause). Without any configured limit and any pause, none: nothing to look up."""
        if not self._limits and not self._paused_any:
            return []
        return [(key, self._limits.get(key.limit, UNPACED)) for key in keys]

    def _trim(self) -> None:
        while len(self._tat) > self._max_keys:
            # The least recently used schedule: usually long past, so nothing is lost.
            self._tat.popitem(last=False)

    async def pause(self, keys: Sequence[RateKey], seconds: float) -> None:
        """A provider said these keys' quota is spent for `seconds` (a 429's Retry-After): no
        call of theirs starts before then, in this process and, with a store, in the fleet."""
        if not keys or seconds <= 0:
            return
        self._paused_any = True
        slots = [(key, self._limits.get(key.limit, UNPACED)) for key in keys]
        now = self._clock()
        for key, rate in slots:
            # The next start allowed is `tat - (burst - 1) * interval`: put it at now + seconds.
            until = now + seconds + (rate.burst - 1) * rate.interval_s
            self._tat[key] = max(self._tat.get(key, now), until)
            self._tat.move_to_end(key)
        self._trim()
        if self._store is not None:
            with contextlib.suppress(StateUnavailable):
                await self._store.pause(slots, seconds)

    async def take(self, keys: Sequence[RateKey], max_wait_s: float | None = None) -> float:
        """`reserve`, on the fleet's shared schedule when there is a store (this process's own
        when it cannot answer). Returns the seconds to wait for the slot."""
        if self._store is None:
            return self.reserve(keys, max_wait_s)
        limited = self._slots(keys)
        if not limited:
            return 0.0
        try:
            granted, wait = await self._store.reserve(limited, max_wait_s)
        except StateUnavailable:
            return self.reserve(keys, max_wait_s)
        if not granted:
            names = ", ".join(sorted({k.limit for k, _ in limited}))
            raise RateLimitExhausted(
                f"the engine's own rate limit ({names}) has no slot within "
                f"{max(max_wait_s or 0.0, 0.0):.1f} s",
                details={"limit": names, "wait_s": round(wait, 3)},
            )
        return wait

    async def acquire(self, keys: Sequence[RateKey], max_wait_s: float | None = None) -> float:
        """Reserve (see `take`) and sleep until the slot; returns the seconds waited."""
        wait = await self.take(keys, max_wait_s)
        if wait > 0:
            await self.sleep(wait)
        return wait

    async def sleep(self, seconds: float) -> None:
        """Wait for a reserved slot (the limiter's clock and sleep, fakeable in tests)."""
        await self._sleep(seconds)

    def __len__(self) -> int:
        return len(self._tat)
