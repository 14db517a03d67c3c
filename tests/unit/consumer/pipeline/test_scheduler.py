"""consumer/scheduler.py: KeyedScheduler lanes, limits, discard and drain."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Hashable
from typing import Any

import pytest

from consumer.pipeline.scheduler import Job, KeyedScheduler, ProjectShare


class Recorder:
    """A `run` function whose jobs wait for their own release event."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running = 0
        self.max_running = 0
        self.gates: dict[str, asyncio.Event] = {}
        self.auto = False

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def __call__(self, name: str, slot: Job[str]) -> None:
        self.started.append(name)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if not self.auto:
                await self.gate(name).wait()
            else:
                await asyncio.sleep(0)
            self.finished.append(name)
        finally:
            self.running -= 1


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def settle_all(sched: KeyedScheduler[Any], rounds: int = 1000) -> None:
    """Let auto-finishing jobs run until nothing is held (bounded, so a bug cannot hang)."""
    for _ in range(rounds):
        if not sched.held:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{sched.held} jobs still held")


def scheduler(recorder: Recorder, limit: int = 10) -> KeyedScheduler[str]:
    return KeyedScheduler(limit, recorder, max_per_project=limit)


async def test_same_lane_runs_strictly_in_submit_order() -> None:
    rec = Recorder()
    rec.auto = True
    sched = scheduler(rec)
    names = [f"j{i}" for i in range(20)]
    for name in names:
        sched.submit("p0", b"key", "proj", name)
    await settle_all(sched)
    assert rec.started == names
    assert rec.finished == names
    assert rec.max_running == 1


async def test_same_lane_waits_for_the_running_job() -> None:
    rec = Recorder()
    sched = scheduler(rec)
    sched.submit("p0", "k", "proj", "a")
    sched.submit("p0", "k", "proj", "b")
    await settle()
    assert rec.started == ["a"]
    assert sched.held == 2 and sched.running == 1
    rec.gate("a").set()
    await settle()
    assert rec.started == ["a", "b"]
    rec.gate("b").set()
    await settle()
    assert sched.held == 0


async def test_same_key_in_different_partitions_are_different_lanes() -> None:
    rec = Recorder()
    sched = scheduler(rec)
    sched.submit("p0", "k", "proj", "a")
    sched.submit("p1", "k", "proj", "b")
    await settle()
    assert sorted(rec.started) == ["a", "b"]
    for gate in ("a", "b"):
        rec.gate(gate).set()
    await settle()


async def test_different_lanes_run_concurrently() -> None:
    rec = Recorder()
    sched = scheduler(rec)
    for key in ("k1", "k2", "k3"):
        sched.submit("p0", key, "proj", key)
    await settle()
    assert sorted(rec.started) == ["k1", "k2", "k3"]
    assert rec.max_running == 3
    rec.gate("k2").set()
    await settle()
    assert rec.finished == ["k2"]
    for key in ("k1", "k3"):
        rec.gate(key).set()
    await settle()
    assert sched.held == 0


async def test_no_key_runs_concurrently() -> None:
    rec = Recorder()
    sched = scheduler(rec)
    for name in ("a", "b", "c"):
        sched.submit("p0", None, "proj", name)
    await settle()
    assert rec.started == ["a", "b", "c"]
    assert rec.max_running == 3
    for name in ("a", "b", "c"):
        rec.gate(name).set()
    await settle()


async def test_in_flight_limit_is_never_exceeded() -> None:
    rec = Recorder()
    sched = scheduler(rec, limit=3)
    names = [f"j{i}" for i in range(12)]
    for i, name in enumerate(names):
        lane: Hashable | None = None if i % 3 == 0 else f"k{i % 4}"
        sched.submit("p0", lane, "proj", name)
    await settle()
    assert rec.running == 3 and sched.running == 3
    assert sched.held == 12
    while len(rec.finished) < len(names):
        for name in list(rec.started):
            rec.gate(name).set()
        await settle()
    assert rec.max_running == 3
    assert sched.held == 0
    assert sorted(rec.started) == sorted(names)


async def test_lanes_waiting_for_a_slot_are_served_in_arrival_order() -> None:
    rec = Recorder()
    sched = scheduler(rec, limit=1)
    sched.submit("p0", None, "proj", "first")
    sched.submit("p0", "k", "proj", "second")
    sched.submit("p0", None, "proj", "third")
    await settle()
    assert rec.started == ["first"]
    rec.gate("first").set()
    await settle()
    assert rec.started == ["first", "second"]
    rec.gate("second").set()
    await settle()
    rec.gate("third").set()
    await settle()
    assert rec.finished == ["first", "second", "third"]


async def test_held_counts_running_ready_and_queued() -> None:
    rec = Recorder()
    sched = scheduler(rec, limit=1)
    assert sched.held == 0
    sched.submit("p0", "k", "proj", "a")  # running
    sched.submit("p0", "k", "proj", "b")  # queued in lane
    sched.submit("p0", None, "proj", "c")  # ready, waiting for a slot
    await settle()
    assert (sched.held, sched.running) == (3, 1)
    for name in ("a", "b", "c"):
        rec.gate(name).set()
        await settle()
    await settle()
    assert sched.held == 0


async def test_discard_queued_drops_only_not_started_jobs_of_the_partitions() -> None:
    rec = Recorder()
    sched = scheduler(rec, limit=2)
    sched.submit("p0", "k", "proj", "p0-a")  # running
    sched.submit("p0", "k", "proj", "p0-b")  # queued behind p0-a
    sched.submit("p1", "k", "proj", "p1-a")  # running
    sched.submit("p0", "j", "proj", "p0-c")  # ready (no slot)
    sched.submit("p1", None, "proj", "p1-b")  # ready (no slot)
    sched.submit("p0", "j", "proj", "p0-d")  # queued behind p0-c
    await settle()
    assert sorted(rec.started) == ["p0-a", "p1-a"]
    assert sched.discard_queued({"p0"}) == 3
    assert sched.held == 3  # p0-a, p1-a running; p1-b ready
    while len(rec.finished) < 3:
        for name in list(rec.started):
            rec.gate(name).set()
        await settle()
    assert sorted(rec.started) == ["p0-a", "p1-a", "p1-b"]
    assert sched.held == 0
    # The lane of the discarded jobs works again.
    rec.auto = True
    sched.submit("p0", "k", "proj", "p0-e")
    await settle()
    assert rec.finished[-1] == "p0-e"


async def test_discard_queued_of_other_partitions_drops_nothing() -> None:
    rec = Recorder()
    sched = scheduler(rec, limit=1)
    sched.submit("p0", "k", "proj", "a")
    sched.submit("p0", "k", "proj", "b")
    await settle()
    assert sched.discard_queued({"p9"}) == 0
    assert sched.held == 2
    rec.gate("a").set()
    rec.gate("b").set()
    await settle()
    assert rec.finished == ["a", "b"]


async def test_drain_waits_for_jobs_that_finish_in_time() -> None:
    rec = Recorder()
    sched = scheduler(rec)
    sched.submit("p0", None, "proj", "a")
    await settle()

    async def release() -> None:
        await asyncio.sleep(0.01)
        rec.gate("a").set()

    releaser = asyncio.create_task(release())
    assert await sched.drain(None, 2.0) == 0
    await releaser
    assert rec.finished == ["a"]


async def test_drain_cancels_what_exceeds_the_timeout() -> None:
    rec = Recorder()
    sched = scheduler(rec)
    sched.submit("p0", None, "proj", "stuck-1")
    sched.submit("p0", None, "proj", "stuck-2")
    sched.submit("p1", None, "proj", "other")
    await settle()
    assert await sched.drain({"p0"}, 0.05) == 2
    assert rec.finished == []
    assert rec.running == 1  # p1's job was not drained
    assert sched.held == 1
    rec.gate("other").set()
    await settle()
    assert rec.finished == ["other"]
    assert await sched.drain(None, 0.05) == 0


async def test_drain_with_nothing_running() -> None:
    assert await scheduler(Recorder()).drain(None, 0.01) == 0


async def test_a_failing_job_releases_its_lane() -> None:
    ran: list[str] = []

    async def run(name: str, slot: Job[str]) -> None:
        ran.append(name)
        if name == "boom":
            raise RuntimeError("job failed")

    # The scheduler does not retrieve a failed job's exception (the engine's `run` never
    # raises); keep asyncio's "never retrieved" report of this deliberate failure quiet.
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, _context: None)
    try:
        sched: KeyedScheduler[str] = KeyedScheduler(2, run, max_per_project=2)
        sched.submit("p0", "k", "proj", "boom")
        sched.submit("p0", "k", "proj", "after")
        for _ in range(5):
            await settle()
        assert ran == ["boom", "after"]
        assert sched.held == 0
        del sched
        gc.collect()
    finally:
        loop.set_exception_handler(None)


@pytest.mark.parametrize("limit", [1, 4])
async def test_many_lanes_many_jobs_keep_per_lane_order(limit: int) -> None:
    order: dict[str, list[int]] = {}

    async def run(job: tuple[str, int], slot: Job[tuple[str, int]]) -> None:
        await asyncio.sleep(0)
        order.setdefault(job[0], []).append(job[1])

    sched: KeyedScheduler[tuple[str, int]] = KeyedScheduler(limit, run, max_per_project=limit)
    for i in range(60):
        key = f"k{i % 5}"
        sched.submit("p0", key, "proj", (key, i))
    await settle_all(sched)
    assert order == {f"k{n}": list(range(n, 60, 5)) for n in range(5)}


class Napper:
    """A `run` function whose jobs named `nap-*` step aside until released; others finish."""

    def __init__(self) -> None:
        self.sched: KeyedScheduler[str] | None = None
        self.gates: dict[str, asyncio.Event] = {}
        self.finished: list[str] = []
        self.max_running = 0

    async def __call__(self, name: str, slot: Job[str]) -> None:
        assert self.sched is not None
        self.max_running = max(self.max_running, self.sched.running)
        if name.startswith("nap"):
            async with slot.stepped_aside():
                await self.gates.setdefault(name, asyncio.Event()).wait()
            self.max_running = max(self.max_running, self.sched.running)
        self.finished.append(name)


def napping(limit: int) -> tuple[KeyedScheduler[str], Napper]:
    napper = Napper()
    napper.sched = KeyedScheduler(limit, napper, max_per_project=limit)
    return napper.sched, napper


async def test_a_job_stepping_aside_lends_its_slot_but_keeps_its_lane() -> None:
    sched, napper = napping(1)
    sched.submit("p", "k1", "proj", "nap-1")
    sched.submit("p", "k1", "proj", "k1-next")
    sched.submit("p", "k2", "proj", "other")
    await settle()
    assert napper.finished == ["other"], "another lane ran in the lent slot"
    assert sched.held == 2 and sched.running == 0
    napper.gates["nap-1"].set()
    await settle()
    assert napper.finished == ["other", "nap-1", "k1-next"], "the lane kept its order"
    assert napper.max_running <= 1


async def test_returning_jobs_never_exceed_the_limit() -> None:
    sched, napper = napping(2)
    for i in range(6):
        sched.submit("p", f"n{i}", "proj", f"nap-{i}")
    await settle()
    assert sched.running == 0 and sched.held == 6, "all six started and stepped aside"
    for gate in napper.gates.values():
        gate.set()
    await settle_all(sched)
    assert sorted(napper.finished) == [f"nap-{i}" for i in range(6)]
    assert napper.max_running <= 2


async def test_a_returning_job_waits_for_a_free_slot() -> None:
    gates: dict[str, asyncio.Event] = {}
    order: list[str] = []

    async def run(name: str, slot: Job[str]) -> None:
        if name == "nap":
            async with slot.stepped_aside():
                await gates.setdefault("nap", asyncio.Event()).wait()
            order.append("nap-back")
        else:
            order.append(f"{name}-start")
            await gates.setdefault(name, asyncio.Event()).wait()
            order.append(f"{name}-end")

    sched: KeyedScheduler[str] = KeyedScheduler(1, run, max_per_project=1)
    sched.submit("p", "a", "proj", "nap")
    await settle()
    sched.submit("p", "b", "proj", "busy")
    await settle()
    gates["nap"].set()
    await settle()
    assert order == ["busy-start"], "no slot free: the nap waits"
    sched.submit("p", "c", "proj", "later")
    gates["busy"].set()
    await settle()
    assert order[:3] == ["busy-start", "busy-end", "nap-back"], "returning before new jobs"
    gates["later"].set()
    await settle_all(sched)


async def test_drain_includes_jobs_that_stepped_aside() -> None:
    sched, _napper = napping(1)
    sched.submit("p", "k", "proj", "nap-forever")
    await settle()
    assert sched.running == 0
    assert await sched.drain(None, 0.05) == 1
    assert sched.held == 0


async def test_stepping_aside_for_a_job_not_running_does_nothing() -> None:
    sched: KeyedScheduler[str] = KeyedScheduler(
        1, lambda _job, _slot: asyncio.sleep(0), max_per_project=1
    )
    async with sched.stepped_aside(Job("p", None, "never started", ProjectShare("proj"), sched)):
        assert sched.running == 0
    assert sched.held == 0
