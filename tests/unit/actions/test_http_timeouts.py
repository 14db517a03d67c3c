"""actions.http.timeouts.bounded: asyncio.timeout's semantics, one loop timer per tick."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from actions.http import timeouts
from actions.http.timeouts import bounded


@pytest.fixture
def fast_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Coarse from 50 ms in 10 ms ticks, so the tests run in milliseconds.
    monkeypatch.setattr(timeouts, "COARSE_FROM_S", 0.05)
    monkeypatch.setattr(timeouts, "TICK_S", 0.01)


async def test_a_long_bound_that_passes_is_a_timeout_error(fast_ticks: None) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with bounded(0.1):
            await asyncio.sleep(5)
    elapsed = loop.time() - started
    assert 0.1 <= elapsed < 0.1 + 0.01 + 0.1  # at most a tick late (plus the loop's slack)


async def test_a_block_that_ends_in_time_is_left_alone(fast_ticks: None) -> None:
    async with bounded(0.1):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.15)  # past the bound: nothing is cancelled any more
    buckets = timeouts._buckets(asyncio.get_running_loop())
    assert not any(buckets.due.values())


async def test_bounds_due_in_one_tick_share_one_loop_timer(fast_ticks: None) -> None:
    loop = asyncio.get_running_loop()
    buckets = timeouts._buckets(loop)
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    gate = asyncio.Event()

    async def call() -> None:
        async with bounded(10.0):
            await gate.wait()

    tasks = [asyncio.create_task(call()) for _ in range(500)]
    await asyncio.sleep(0)
    # 500 bounds entered within a tick or two: a timer per bucket, not per call.
    assert len(loop._scheduled) - before <= 3  # type: ignore[attr-defined]
    assert sum(len(bucket) for bucket in buckets.due.values()) == 500
    gate.set()
    await asyncio.gather(*tasks)
    assert sum(len(bucket) for bucket in buckets.due.values()) == 0


async def test_another_cancellation_is_not_turned_into_a_timeout(fast_ticks: None) -> None:
    entered = asyncio.Event()

    async def call() -> None:
        async with bounded(10.0):
            entered.set()
            await asyncio.sleep(5)

    task = asyncio.create_task(call())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_timeout_inside_another_task_cancellation_stays_a_cancellation(
    fast_ticks: None,
) -> None:
    # The bound expires and the task is also cancelled from outside: the outside cancellation
    # wins, as with asyncio.timeout.
    async def call() -> None:
        async with bounded(0.05):
            try:
                await asyncio.sleep(5)
            finally:
                await asyncio.sleep(0)

    task = asyncio.create_task(call())
    await asyncio.sleep(0.055)
    task.cancel()
    with pytest.raises((asyncio.CancelledError, TimeoutError)):
        await task


async def test_a_short_bound_is_exact() -> None:
    assert isinstance(bounded(0.2), asyncio.Timeout)
    assert isinstance(bounded(None), asyncio.Timeout)
    assert not isinstance(bounded(timeouts.COARSE_FROM_S), asyncio.Timeout)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with bounded(0.05):
            await asyncio.sleep(5)
    assert loop.time() - started < 0.05 + 0.05


async def test_a_swallowed_expiry_is_taken_back_as_asyncio_timeout_does(fast_ticks: None) -> None:
    task = asyncio.current_task()
    assert task is not None
    before = task.cancelling()
    async with bounded(0.05):
        with contextlib.suppress(asyncio.CancelledError):  # swallowed: the block ends normally
            await asyncio.sleep(5)
    assert task.cancelling() == before  # no cancellation left counted against the task
