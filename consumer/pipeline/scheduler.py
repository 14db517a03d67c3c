"""Key-ordered concurrency: one lane per ordering key, a global limit on running jobs.

Records with the same key run one after another in offset order; records with different keys,
or without a key, run concurrently up to `max_in_flight`. A slow key occupies its own lane and
one slot, never the others. Lanes waiting for a slot are served first come, first served.

A job that only waits on a timer (a rate-limit slot, an open circuit) can step aside: the job
is handed its own `Job` as an `InFlightSlot` (`slot.stepped_aside()`), so it keeps its lane but
gives its slot to others until it needs one again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

J = TypeVar("J")


@dataclass(eq=False, slots=True)
class Job(Generic[J]):
    """A scheduled payload; while it runs, also its in-flight slot (`stepped_aside`)."""

    partition: Hashable
    # (partition, key); None: no ordering constraint (a record without a key).
    lane: tuple[Hashable, Hashable] | None
    payload: J
    scheduler: KeyedScheduler[J] = field(repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def stepped_aside(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.scheduler.stepped_aside(self)


class KeyedScheduler(Generic[J]):
    def __init__(self, max_in_flight: int, run: Callable[[J, Job[J]], Awaitable[Any]]) -> None:
        self._max_in_flight = max_in_flight
        self._run = run
        self._lanes: dict[
            tuple[Hashable, Hashable], deque[Job[J]]
        ] = {}  # queued behind the lane's running job
        self._ready: deque[Job[J]] = deque()  # next in their lane, waiting for a slot
        self._running: set[Job[J]] = set()
        # Started jobs that stepped aside (no slot), and those waiting to get one back.
        self._aside: set[Job[J]] = set()
        self._returning: deque[tuple[Job[J], asyncio.Future[None]]] = deque()

    @property
    def held(self) -> int:
        """Jobs accepted and not finished: running, ready, or queued in a lane."""
        return (
            len(self._running)
            + len(self._aside)
            + len(self._ready)
            + sum(len(q) for q in self._lanes.values())
        )

    @property
    def running(self) -> int:
        return len(self._running)

    def lane_idle(self, partition: Hashable, lane: Hashable | None) -> bool:
        """True when a job for this lane would start at once in its order: nothing of the
        lane's is queued or running (a record without a key has no lane)."""
        return lane is None or (partition, lane) not in self._lanes

    def submit(self, partition: Hashable, lane: Hashable | None, payload: J) -> None:
        job = Job(partition, None if lane is None else (partition, lane), payload, self)
        if job.lane is not None:
            queue = self._lanes.get(job.lane)
            if queue is not None:  # the lane is busy: wait behind it
                queue.append(job)
                return
            self._lanes[job.lane] = deque()
        self._ready.append(job)
        self._pump()

    def _pump(self) -> None:
        # Jobs coming back from stepping aside were started first: they get slots first.
        while self._returning and len(self._running) < self._max_in_flight:
            job, granted = self._returning.popleft()
            if granted.done():  # its task was cancelled while waiting
                continue
            self._aside.discard(job)
            self._running.add(job)
            granted.set_result(None)
        while self._ready and len(self._running) < self._max_in_flight:
            job = self._ready.popleft()
            self._running.add(job)
            job.task = asyncio.create_task(self._execute(job))

    async def _execute(self, job: Job[J]) -> None:
        try:
            await self._run(job.payload, job)
        finally:
            self._running.discard(job)
            self._aside.discard(job)
            self._release_lane(job)
            self._pump()

    @contextlib.asynccontextmanager
    async def stepped_aside(self, job: Job[J]) -> AsyncIterator[None]:
        """Within this block `job` does not count against `max_in_flight` (it keeps its lane:
        the key's next record still waits). On leaving, it waits for a slot again, ahead of
        jobs not yet started. For a job that is not running it does nothing."""
        if job not in self._running:
            yield
            return
        self._running.discard(job)
        self._aside.add(job)
        self._pump()
        try:
            yield
        finally:
            if len(self._running) < self._max_in_flight and not self._returning:
                self._aside.discard(job)
                self._running.add(job)
            else:
                granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._returning.append((job, granted))
                try:
                    await granted
                except asyncio.CancelledError:
                    granted.cancel()
                    raise

    def _release_lane(self, job: Job[J]) -> None:
        if job.lane is None:
            return
        queue = self._lanes.get(job.lane)
        if queue is None:
            return
        if queue:
            self._ready.append(queue.popleft())
        else:
            del self._lanes[job.lane]

    def discard_queued(self, partitions: set[Hashable]) -> int:
        """Drop jobs of `partitions` that have not started (revoke, shutdown). Returns how many.
        Their offsets stay uncommitted, so whoever owns the partition next runs them."""
        dropped = len(self._ready)
        self._ready = deque(j for j in self._ready if j.partition not in partitions)
        dropped -= len(self._ready)
        running_lanes = {j.lane for j in self._running}
        for lane, queue in list(self._lanes.items()):
            if lane[0] not in partitions:
                continue
            dropped += len(queue)
            if lane in running_lanes:
                queue.clear()  # its running job releases the lane when it ends
            else:
                del self._lanes[lane]
        return dropped

    async def drain(self, partitions: set[Hashable] | None, timeout_s: float) -> int:
        """Wait for running jobs (of `partitions`, or all) up to `timeout_s`; cancel the rest.
        Returns how many were abandoned."""
        tasks = [
            j.task
            for j in (*self._running, *self._aside)
            if j.task is not None and (partitions is None or j.partition in partitions)
        ]
        if not tasks:
            return 0
        _, still_running = await asyncio.wait(tasks, timeout=timeout_s)
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running, timeout=5)
        return len(still_running)
