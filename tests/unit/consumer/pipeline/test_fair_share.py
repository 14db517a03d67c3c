"""consumer/pipeline/scheduler.py: the share between projects (a limit each, slots in turn)."""

from __future__ import annotations

import asyncio

from consumer.pipeline.scheduler import Job, KeyedScheduler
from tests.unit.consumer.pipeline.test_scheduler import Recorder, settle, settle_all


def shared(rec: Recorder, limit: int, per_project: int) -> KeyedScheduler[str]:
    return KeyedScheduler(limit, rec, max_per_project=per_project)


async def finish(rec: Recorder, name: str) -> None:
    rec.gate(name).set()
    await settle()


async def release_all(rec: Recorder, sched: KeyedScheduler[str]) -> None:
    rec.auto = True
    for gate in rec.gates.values():
        gate.set()
    await settle_all(sched)


async def test_a_project_never_runs_more_than_its_limit() -> None:
    rec = Recorder()
    sched = shared(rec, limit=10, per_project=3)
    for i in range(20):
        sched.submit("p0", None if i % 2 else f"k{i}", "a", f"a{i}")
    await settle()
    assert sched.running == 3, "a project alone gets its limit, not every slot"
    assert sched.held == 20
    while len(rec.finished) < 20:
        for name in list(rec.started):
            rec.gate(name).set()
        await settle()
    assert rec.max_running == 3
    assert sched.held == 0


async def test_another_project_starts_at_once_beside_a_flood() -> None:
    rec = Recorder()
    sched = shared(rec, limit=4, per_project=3)
    for i in range(50):
        sched.submit("p0", f"a-key-{i}", "a", f"a{i}")
    sched.submit("p0", "b-key", "b", "b0")
    await settle()
    assert "b0" in rec.started, "the slot A may not take is B's"
    assert sched.running == 4
    await release_all(rec, sched)


async def test_free_slots_go_to_projects_in_turn() -> None:
    rec = Recorder()
    sched = shared(rec, limit=4, per_project=3)
    for i in range(10):
        sched.submit("p0", None, "a", f"a{i}")
    for name in ("b", "c"):
        for i in range(3):
            sched.submit("p0", None, name, f"{name}{i}")
    await settle()
    assert rec.started == ["a0", "a1", "a2", "b0"]
    for done in ("a0", "a1", "b0", "a2", "c0", "b1"):
        await finish(rec, done)
    # B, C and A in turn (in the order they first waited), whatever their backlogs: A's ten
    # were there first.
    assert rec.started[4:] == ["b1", "c0", "a3", "b2", "c1", "a4"]
    await release_all(rec, sched)


async def test_with_sharing_off_slots_go_in_arrival_order() -> None:
    rec = Recorder()
    sched = shared(rec, limit=2, per_project=2)
    for name, project in (("a0", "a"), ("a1", "a"), ("a2", "a"), ("b0", "b"), ("a3", "a")):
        sched.submit("p0", None, project, name)
    await settle()
    for done in ("a0", "a1", "a2"):
        await finish(rec, done)
    assert rec.started == ["a0", "a1", "a2", "b0", "a3"], "sharing off: first come, first served"
    assert sched.projects_at_limit() == 0


async def test_one_key_across_projects_keeps_its_order() -> None:
    rec = Recorder()
    rec.auto = True
    sched = shared(rec, limit=4, per_project=2)
    for i in range(12):
        sched.submit("p0", "shared-key", "ab"[i % 2], f"j{i}")
    await settle_all(sched)
    assert rec.started == [f"j{i}" for i in range(12)]
    assert rec.max_running == 1


async def test_the_share_figures() -> None:
    rec = Recorder()
    sched = shared(rec, limit=4, per_project=2)
    assert (sched.projects_at_limit(), sched.longest_wait_s()) == (0, 0.0)
    for i in range(3):
        sched.submit("p0", None, "a", f"a{i}")
    sched.submit("p0", None, "b", "b0")
    sched.submit("p0", "k", "c", "c0")
    sched.submit("p0", "k", "c", "c1")  # behind its key: not waiting for a slot
    await settle()
    assert sorted(rec.started) == ["a0", "a1", "b0", "c0"]
    assert sched.projects_at_limit() == 1
    await asyncio.sleep(0.05)
    assert 0.05 <= sched.longest_wait_s() < 1, "a2 waits for A's turn"
    for name in ("a0", "a2", "a1", "b0", "c0", "c1"):
        await finish(rec, name)
    assert (sched.held, sched.projects_at_limit(), sched.longest_wait_s()) == (0, 0, 0.0)


async def test_discard_queued_forgets_projects_with_nothing_left() -> None:
    rec = Recorder()
    sched = shared(rec, limit=2, per_project=1)
    sched.submit("p0", "k", "a", "a0")  # running
    sched.submit("p0", "k", "a", "a1")  # behind its key
    sched.submit("p0", None, "a", "a2")  # ready: A is at its limit
    sched.submit("p1", None, "b", "b0")  # running
    sched.submit("p1", None, "b", "b1")  # ready
    await settle()
    assert sched.discard_queued({"p0"}) == 2
    assert sched.held == 3
    for name in ("a0", "b0", "b1"):
        await finish(rec, name)
    assert rec.started == ["a0", "b0", "b1"]
    assert sched.held == 0 and not sched._projects, "no project kept once it holds nothing"


class Napper:
    """Jobs named `nap-*` step aside until released; the others wait for their gate."""

    def __init__(self) -> None:
        self.rec = Recorder()
        self.naps: dict[str, asyncio.Event] = {}
        self.back: list[str] = []

    async def __call__(self, name: str, slot: Job[str]) -> None:
        if name.startswith("nap"):
            async with slot.stepped_aside():
                await self.naps.setdefault(name, asyncio.Event()).wait()
            self.back.append(name)
        await self.rec(name, slot)


async def test_a_job_stepping_aside_frees_its_projects_slot_and_returns_within_the_limit() -> None:
    napper = Napper()
    sched: KeyedScheduler[str] = KeyedScheduler(10, napper, max_per_project=2)
    sched.submit("p0", None, "a", "nap-0")
    sched.submit("p0", None, "a", "a1")
    sched.submit("p0", None, "a", "a2")
    sched.submit("p0", None, "a", "a3")
    await settle()
    assert sorted(napper.rec.started) == ["a1", "a2"], "the napping job lent A its slot"
    napper.naps["nap-0"].set()
    await settle()
    assert napper.back == [], "A is at its limit: the returning job waits"
    await finish(napper.rec, "a1")
    assert napper.back == ["nap-0"], "ahead of A's job not yet started"
    assert sorted(napper.rec.started) == ["a1", "a2", "nap-0"]
    for name in ("a2", "nap-0", "a3"):
        await finish(napper.rec, name)
    assert sched.held == 0
    assert napper.rec.max_running <= 2


async def test_a_cancelled_returning_job_leaves_no_trace() -> None:
    napper = Napper()
    sched: KeyedScheduler[str] = KeyedScheduler(10, napper, max_per_project=1)
    sched.submit("p0", None, "a", "nap-0")
    sched.submit("p0", None, "a", "a1")
    await settle()
    napper.naps["nap-0"].set()
    await settle()
    assert napper.back == []
    assert await sched.drain(None, 0.01) == 2
    assert sched.held == 0 and sched.longest_wait_s() == 0.0 and not sched._projects
