"""Per-destination rate limits: each key gets its own schedule of allowed start times.

The algorithm is GCRA (the "virtual scheduling" form of a token bucket): every key keeps the
theoretical arrival time `tat` of its next request. A caller reserves the earliest slot at once,
without awaiting anything, and then sleeps until it; so no lock is held while waiting, callers of
one key are served in the order they reserved, and callers of other keys never wait for them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from actions.errors import RateLimitExhausted

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


@dataclass(frozen=True)
class RateKey:
    """Whose budget a call spends: `limit` names the configured rate, `key` the destination."""

    limit: str
    key: str


class RateLimiter:
    """Reserve-then-sleep per key. `limits` maps a limit name (e.g. `slack.channel`) to a Rate;
    keys of a limit that is not configured are not limited."""

    # Forget keys whose schedule is in the past once this many are known (memory bound).
    _PRUNE_AT = 10_000

    def __init__(
        self,
        limits: Mapping[str, Rate | None] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._limits = {name: rate for name, rate in (limits or {}).items() if rate is not None}
        self._clock = clock
        self._sleep = sleep
        self._tat: dict[RateKey, float] = {}

    @property
    def limits(self) -> dict[str, Rate]:
        return dict(self._limits)

    def reserve(self, keys: Sequence[RateKey], max_wait_s: float | None = None) -> float:
        """Reserve the earliest moment every key allows; returns the seconds to wait for it.

        When that moment is more than `max_wait_s` away nothing is reserved and
        `RateLimitExhausted` is raised, so a request that cannot make its deadline does not
        take a slot another request could use.
        """
        limited = [(k, self._limits[k.limit]) for k in keys if k.limit in self._limits]
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
            self._tat[key] = max(self._tat.get(key, now), start) + rate.interval_s
        if len(self._tat) > self._PRUNE_AT:
            self._prune(now)
        return wait

    async def acquire(self, keys: Sequence[RateKey], max_wait_s: float | None = None) -> float:
        """Reserve (see `reserve`) and sleep until the slot; returns the seconds waited."""
        wait = self.reserve(keys, max_wait_s)
        if wait > 0:
            await self.sleep(wait)
        return wait

    async def sleep(self, seconds: float) -> None:
        """Wait for a reserved slot (the limiter's clock and sleep, fakeable in tests)."""
        await self._sleep(seconds)

    def _prune(self, now: float) -> None:
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
