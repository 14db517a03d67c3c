"""Key-ordered, project-fair concurrency: one lane per ordering key, a global limit on running
jobs, a limit per project, and free slots handed to projects in turn.

Records with the same key run one after another in offset order; records with different keys,
or without a key, run concurrently up to `max_in_flight`, and at most `max_per_project` of one
project's at once. A slow key occupies its own lane and one slot, never the others.

Fair share, by round robin: a job its lane lets run (the next of its key) waits for a slot in
its project's queue. Projects with such jobs, while below their limit, wait in one rotation:
each free slot goes to the project at its head, for its oldest waiting job, and the project goes
to the back. Several projects with work waiting get slots one each in turn, whatever their
backlogs; a project alone gets every slot it is allowed. (Not deficit round robin: a job's cost,
how long it will hold its slot, is not known before it runs, so there is no size to weigh.)
With `max_per_project >= max_in_flight` sharing is off: every job waits in one queue, first
come, first served.

A job that only waits on a timer (a rate-limit slot, an open circuit) can step aside: the job
is handed its own `Job` as an `InFlightSlot` (`slot.stepped_aside()`), so it keeps its lane but
gives its slot to others until it needs one again; it then waits ahead of its project's jobs
not yet started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Generic, TypeVar

J = TypeVar("J")


@dataclass(eq=False, slots=True)
class Job(Generic[J]):
    """A scheduled payload; while it runs, also its in-flight slot (`stepped_aside`)."""

    partition: Hashable
    # (partition, key); None: no ordering constraint (a record without a key).
    lane: tuple[Hashable, Hashable] | None
    payload: J
    project: ProjectShare[J] = field(repr=False)
    scheduler: KeyedScheduler[J] = field(repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    # When it last began waiting for a slot (monotonic seconds).
    waiting_since: float = field(default=0.0, repr=False)

    def stepped_aside(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.scheduler.stepped_aside(self)


@dataclass(eq=False, slots=True)
class ProjectShare(Generic[J]):
    """One project's share: its jobs waiting for a slot, and how many of its jobs hold one."""

    name: Hashable
    running: int = 0  # jobs holding a slot
    held: int = 0  # jobs submitted and not finished (the entry lives while there are any)
    ready: deque[Job[J]] = field(default_factory=deque)  # next in their lane
    returning: deque[tuple[Job[J], asyncio.Future[None]]] = field(default_factory=deque)
    in_turn: bool = False  # in the rotation


class KeyedScheduler(Generic[J]):
    def __init__(
        self,
        max_in_flight: int,
        run: Callable[[J, Job[J]], Awaitable[Any]],
        *,
        max_per_project: int,
    ) -> None:
        self._max_in_flight = max_in_flight
        self._max_per_project = min(max_per_project, max_in_flight)
        self._sharing = self._max_per_project < max_in_flight
        self._run = run
        self._lanes: dict[
            tuple[Hashable, Hashable], deque[Job[J]]
        ] = {}  # queued behind the lane's running job
        self._projects: dict[Hashable, ProjectShare[J]] = {}
        self._turns: deque[ProjectShare[J]] = deque()  # projects with work waiting, below the limit
        self._running: set[Job[J]] = set()
        # Started jobs that stepped aside (no slot), and those waiting to get one back.
        self._aside: set[Job[J]] = set()
        self._held = 0

    @property
    def held(self) -> int:
        """Jobs accepted and not finished: running, ready, or queued in a lane."""
        return self._held

    @property
    def running(self) -> int:
        return len(self._running)

    def projects_at_limit(self) -> int:
        """Projects running `max_per_project` jobs now (0 with sharing off)."""
        if not self._sharing:
            return 0
        limit = self._max_per_project
        return sum(1 for p in self._projects.values() if p.running >= limit)

    def longest_wait_s(self) -> float:
        """How long the job waiting longest for a slot has waited (0 when none waits). Jobs
        queued behind their own key's running job are not waiting for a slot."""
        heads = [p.returning[0][0] for p in self._projects.values() if p.returning]
        heads += [p.ready[0] for p in self._projects.values() if p.ready]
        if not heads:
            return 0.0
        return max(0.0, monotonic() - min(job.waiting_since for job in heads))

    def lane_idle(self, partition: Hashable, lane: Hashable | None) -> bool:
        """True when a job for this lane would start at once in its order: nothing of the
        lane's is queued or running (a record without a key has no lane)."""
        return lane is None or (partition, lane) not in self._lanes

    def submit(
        self, partition: Hashable, lane: Hashable | None, project: Hashable, payload: J
    ) -> None:
        """Schedule `payload` in its key's lane (`lane` None: no key) on behalf of `project`
        (None when the record's project is not known)."""
        projects = self._projects
        name = project if self._sharing else None
        share = projects.get(name)
        if share is None:
            share = projects[name] = ProjectShare(name)
        share.held += 1
        self._held += 1
        job = Job(partition, None if lane is None else (partition, lane), payload, share, self)
        if job.lane is not None:
            queue = self._lanes.get(job.lane)
            if queue is not None:  # the lane is busy: wait behind it
                queue.append(job)
                return
            self._lanes[job.lane] = deque()
        self._make_ready(job)
        self._pump()

    def _make_ready(self, job: Job[J]) -> None:
        job.waiting_since = monotonic()
        share = job.project
        share.ready.append(job)
        if not share.in_turn and share.running < self._max_per_project:
            share.in_turn = True
            self._turns.append(share)

    def _offer(self, share: ProjectShare[J]) -> None:
        """Put `share` in the rotation if it has work waiting and is below its limit."""
        if (
            not share.in_turn
            and (share.ready or share.returning)
            and share.running < self._max_per_project
        ):
            share.in_turn = True
            self._turns.append(share)

    def _pump(self) -> None:
        turns, running, limit = self._turns, self._running, self._max_per_project
        while turns and len(running) < self._max_in_flight:
            share = turns.popleft()
            # A job coming back from stepping aside was started first: it goes first.
            if share.returning:
                job, granted = share.returning.popleft()
                self._aside.discard(job)
                running.add(job)
                share.running += 1
                granted.set_result(None)
            elif share.ready:
                job = share.ready.popleft()
                running.add(job)
                share.running += 1
                job.task = asyncio.create_task(self._execute(job))
            if (share.ready or share.returning) and share.running < limit:
                turns.append(share)
            else:
                share.in_turn = False

    async def _execute(self, job: Job[J]) -> None:
        try:
            await self._run(job.payload, job)
        finally:
            share = job.project
            if job in self._running:
                self._running.discard(job)
                share.running -= 1
            else:
                self._aside.discard(job)
            share.held -= 1
            self._held -= 1
            if not share.held:
                del self._projects[share.name]
            else:
                self._offer(share)
            self._release_lane(job)
            self._pump()

    @contextlib.asynccontextmanager
    async def stepped_aside(self, job: Job[J]) -> AsyncIterator[None]:
        """Within this block `job` does not count against `max_in_flight` nor its project's
        limit (it keeps its lane: the key's next record still waits). On leaving, it waits for
        a slot again, ahead of its project's jobs not yet started. For a job that is not
        running it does nothing."""
        if job not in self._running:
            yield
            return
        share = job.project
        self._running.discard(job)
        share.running -= 1
        self._aside.add(job)
        self._offer(share)
        self._pump()
        try:
            yield
        finally:
            # A free slot means nobody else waits for one (`_pump` hands them out at once).
            if (
                len(self._running) < self._max_in_flight
                and share.running < self._max_per_project
                and not share.returning
            ):
                self._aside.discard(job)
                self._running.add(job)
                share.running += 1
            else:
                granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                job.waiting_since = monotonic()
                entry = (job, granted)
                share.returning.append(entry)
                self._offer(share)
                try:
                    await granted
                except asyncio.CancelledError:
                    if not granted.done():  # not granted: leave the queue
                        granted.cancel()
                        share.returning.remove(entry)
                    raise

    def _release_lane(self, job: Job[J]) -> None:
        if job.lane is None:
            return
        queue = self._lanes.get(job.lane)
        if queue is None:
            return
        if queue:
            self._make_ready(queue.popleft())
        else:
            del self._lanes[job.lane]

    def discard_queued(self, partitions: set[Hashable]) -> int:
        """Drop jobs of `partitions` that have not started (revoke, shutdown). Returns how many.
        Their offsets stay uncommitted, so whoever owns the partition next runs them."""
        dropped: list[Job[J]] = []
        for share in self._projects.values():
            if any(j.partition in partitions for j in share.ready):
                dropped.extend(j for j in share.ready if j.partition in partitions)
                share.ready = deque(j for j in share.ready if j.partition not in partitions)
        started_lanes = {j.lane for j in (*self._running, *self._aside)}
        for lane, queue in list(self._lanes.items()):
            if lane[0] not in partitions:
                continue
            dropped.extend(queue)
            if lane in started_lanes:
                queue.clear()  # its started job releases the lane when it ends
            else:
                del self._lanes[lane]
        for job in dropped:
            share = job.project
            share.held -= 1
            if not share.held:
                del self._projects[share.name]
        self._held -= len(dropped)
        return len(dropped)

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
