"""`bounded(delay_s)`: `asyncio.timeout` for the long bounds the hot path sets on every call.

An `asyncio.timeout` per attempt (30 s) and per HTTP exchange (10 s) pushes a timer handle on
the loop's heap and, once the call ends long before it, leaves it there cancelled until the loop
sweeps it (at 4,000 calls/s, about a hundred thousand dead timers to order every push against).
Here a bound of a second or more joins a shared bucket instead: one loop timer per `TICK_S` of
deadlines, however many calls share it, so a call costs two dict operations. The bound fires up
to `TICK_S` late (a 10 s timeout fires within 10.05 s); a shorter bound, where that would show,
is an ordinary `asyncio.timeout`.

Semantics are asyncio.timeout's: on expiry the task is cancelled, and the cancellation that
leaves the block becomes `TimeoutError`, unless something else cancelled the task too.
"""

from __future__ import annotations

import asyncio
import math
from contextlib import AbstractAsyncContextManager
from types import TracebackType

# Granularity of the shared deadlines; bounds shorter than COARSE_FROM_S are exact.
TICK_S = 0.05
COARSE_FROM_S = 1.0


class _Buckets:
    """The coarse deadlines of one event loop: bucket number -> the bounds due then."""

    __slots__ = ("due", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: dict[int, dict[_Bound, None]] = {}

    def add(self, bound: _Bound, when: float) -> dict[_Bound, None]:
        number = math.ceil(when / TICK_S)
        bucket = self.due.get(number)
        if bucket is None:
            bucket = self.due[number] = {}
            self.loop.call_at(number * TICK_S, self._fire, number)
        bucket[bound] = None
        return bucket

    def _fire(self, number: int) -> None:
        for bound in self.due.pop(number, {}):
            bound.expire()


_BUCKETS: dict[asyncio.AbstractEventLoop, _Buckets] = {}


def _buckets(loop: asyncio.AbstractEventLoop) -> _Buckets:
    buckets = _BUCKETS.get(loop)
    if buckets is None or buckets.loop is not loop:
        # One entry per loop; a closed loop's entry is replaced by the next loop's (tests run
        # many loops one after the other, an engine one).
        for old in [known for known in _BUCKETS if known.is_closed()]:
            del _BUCKETS[old]
        buckets = _BUCKETS[loop] = _Buckets(loop)
    return buckets


class _Bound:
    """A coarse bound on the current task (`async with`; entering and leaving never suspend)."""

    __slots__ = ("_bucket", "_cancelling", "_delay_s", "_task", "expired")

    def __init__(self, delay_s: float) -> None:
        self._delay_s = delay_s
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._bucket: dict[_Bound, None] | None = None
        self.expired = False

    async def __aenter__(self) -> _Bound:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("bounded() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = asyncio.get_running_loop()
        self._bucket = _buckets(loop).add(self, loop.time() + self._delay_s)
        return self

    def expire(self) -> None:
        self.expired = True
        self._bucket = None
        if self._task is not None:
            self._task.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bucket is not None:
            self._bucket.pop(self, None)
            self._bucket = None
        if self.expired and self._task is not None:
            # As asyncio.Timeout: our cancellation is taken back whatever ended the block; it
            # becomes TimeoutError unless another cancellation is pending too.
            ours_only = self._task.uncancel() <= self._cancelling
            if ours_only and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc


def bounded(delay_s: float | None) -> AbstractAsyncContextManager[object]:
    """`async with bounded(s):` inside a task: TimeoutError when the block runs longer than `s`
    (None: no bound). Bounds of `COARSE_FROM_S` or more share the loop's coarse timers and
    may fire up to `TICK_S` late; shorter ones are exact."""
    if delay_s is not None and delay_s >= COARSE_FROM_S:
        return _Bound(delay_s)
    return asyncio.timeout(delay_s)
