"""actions/runtime/circuit.py: closed -> open -> half_open -> closed, fail fast or wait."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from structlog.testing import capture_logs

from actions.errors import CircuitOpen
from actions.runtime.circuit import CircuitBreakers, SharedCircuit
from schemas import ErrorCode

LOG = structlog.get_logger()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fail(breakers: CircuitBreakers, upstream: str = "api.test", times: int = 1) -> None:
    for _ in range(times):
        breakers.record(upstream, probe=False, failed=True, log=LOG)


async def test_opens_after_n_consecutive_failures_and_fails_fast() -> None:
    clock = Clock()
    breakers = CircuitBreakers(3, 10.0, clock=clock)
    with capture_logs() as logs:
        fail(breakers, times=2)
        assert breakers.states() == {"api.test": "closed"}
        assert await breakers.admit("api.test", LOG) is False
        fail(breakers)
    assert breakers.states() == {"api.test": "open"}
    assert [e["event"] for e in logs] == ["circuit.opened"]
    assert logs[0]["upstream"] == "api.test" and logs[0]["failures"] == 3
    assert logs[0]["open_s"] == 10.0
    with pytest.raises(CircuitOpen) as info:
        await breakers.admit("api.test", LOG)
    assert info.value.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert info.value.code.retryable
    assert info.value.details == {"circuit": "open", "upstream": "api.test"}
    # Other upstreams are not affected.
    assert await breakers.admit("other.test", LOG) is False


async def test_a_success_resets_the_count() -> None:
    breakers = CircuitBreakers(3, 10.0, clock=Clock())
    fail(breakers, times=2)
    breakers.record("api.test", probe=False, failed=False, log=LOG)
    fail(breakers, times=2)
    assert breakers.states() == {"api.test": "closed"}


async def test_unknown_outcomes_do_not_count() -> None:
    breakers = CircuitBreakers(2, 10.0, clock=Clock())
    fail(breakers)
    breakers.record("api.test", probe=False, failed=None, log=LOG)
    assert breakers.states() == {"api.test": "closed"}
    fail(breakers)
    assert breakers.states() == {"api.test": "open"}


async def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock = Clock()
    breakers = CircuitBreakers(1, 10.0, clock=clock)
    fail(breakers)
    clock.now += 10.0
    assert breakers.states() == {"api.test": "half_open"}
    with capture_logs() as logs:
        assert await breakers.admit("api.test", LOG) is True, "the probe"
        with pytest.raises(CircuitOpen, match="half-open"):
            await breakers.admit("api.test", LOG)
        breakers.record("api.test", probe=True, failed=False, log=LOG)
    assert [e["event"] for e in logs] == ["circuit.half_open", "circuit.closed"]
    assert breakers.states() == {"api.test": "closed"}
    assert await breakers.admit("api.test", LOG) is False


async def test_a_failed_probe_opens_again_for_another_period() -> None:
    clock = Clock()
    breakers = CircuitBreakers(2, 10.0, clock=clock)
    fail(breakers, times=2)
    clock.now += 10.0
    assert await breakers.admit("api.test", LOG) is True
    with capture_logs() as logs:
        breakers.record("api.test", probe=True, failed=True, log=LOG)
    assert [e["event"] for e in logs] == ["circuit.opened"]
    clock.now += 9.9
    assert breakers.states() == {"api.test": "open"}
    clock.now += 0.1
    assert breakers.states() == {"api.test": "half_open"}


async def test_an_abandoned_probe_lets_another_caller_probe() -> None:
    clock = Clock()
    breakers = CircuitBreakers(1, 10.0, clock=clock)
    fail(breakers)
    clock.now += 10.0
    assert await breakers.admit("api.test", LOG) is True
    breakers.record("api.test", probe=True, failed=None, log=LOG)
    assert await breakers.admit("api.test", LOG) is True


async def test_wait_mode_waits_for_the_probe_then_goes() -> None:
    breakers = CircuitBreakers(1, 0.05, "wait")
    fail(breakers)
    probe = await asyncio.wait_for(breakers.admit("api.test", LOG), 1)  # waited ~50 ms
    assert probe is True
    waiter = asyncio.create_task(breakers.admit("api.test", LOG, max_wait_s=5))
    await asyncio.sleep(0.05)
    assert not waiter.done(), "a second caller waits while the probe runs"
    breakers.record("api.test", probe=True, failed=False, log=LOG)
    assert await asyncio.wait_for(waiter, 1) is False


async def test_wait_mode_gives_up_after_max_wait() -> None:
    breakers = CircuitBreakers(1, 60.0, "wait")
    fail(breakers)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(CircuitOpen):
        await breakers.admit("api.test", LOG, max_wait_s=0.1)
    assert 0.09 <= loop.time() - started < 1.0


async def test_threshold_zero_turns_breakers_off() -> None:
    breakers = CircuitBreakers(0, 10.0)
    fail(breakers, times=100)
    assert await breakers.admit("api.test", LOG) is False
    assert breakers.states() == {}


async def test_healthy_upstreams_are_forgotten_first_when_many_are_known() -> None:
    breakers = CircuitBreakers(2, 10.0, clock=Clock(), max_tracked=3)
    fail(breakers, "flaky.test")
    for i in range(4):
        breakers.record(f"ok-{i}.test", probe=False, failed=False, log=LOG)
    # Over 3, the oldest healthy circuits went first; the failing one was kept.
    assert breakers.states() == {
        "flaky.test": "closed",
        "ok-2.test": "closed",
        "ok-3.test": "closed",
    }
    fail(breakers, "flaky.test")
    assert breakers.states()["flaky.test"] == "open", "its failure count was kept"


async def test_30000_failing_hosts_stay_within_the_bound() -> None:
    """Issue 17: every host failing (each circuit open) once grew one entry per host."""
    breakers = CircuitBreakers(1, 30.0, clock=Clock())
    quiet = structlog.wrap_logger(structlog.ReturnLogger(), processors=[])
    for i in range(30_000):
        breakers.record(f"host-{i}.test", probe=False, failed=True, log=quiet)
    assert len(breakers) == 10_000
    states = breakers.states()
    assert len(states) == 10_000
    # The least recently used went: the latest hosts' circuits are still open.
    assert states["host-29999.test"] == "open"
    assert "host-0.test" not in states
    with pytest.raises(CircuitOpen):
        await breakers.admit("host-29999.test", LOG)


class _Store:
    """A fleet circuit store that says "closed, no failures" and counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def admit(self, upstream: str, open_s: float) -> SharedCircuit:
        self.calls.append("admit")
        return SharedCircuit("closed")

    async def record(
        self, upstream: str, *, probe: bool, failed: bool | None, threshold: int, open_s: float
    ) -> SharedCircuit:
        self.calls.append(f"record failed={failed}")
        return SharedCircuit("closed")


async def test_with_a_store_only_fresh_clean_circuits_skip_the_round_trip() -> None:
    clock = Clock()
    store = _Store()
    breakers = CircuitBreakers(2, 10.0, clock=clock, store=store)
    assert await breakers.admit("api.test", LOG) is False  # never asked: the store is
    assert await breakers.admit("api.test", LOG) is False  # seen clean just now: not asked
    # An answer from an upstream the fleet has no failures for: nothing to tell the store.
    await breakers.observe("api.test", probe=False, failed=False, log=LOG)
    assert store.calls == ["admit"]
    # A failure must reach the store.
    await breakers.observe("api.test", probe=False, failed=True, log=LOG)
    assert store.calls == ["admit", "record failed=True"]
    clock.now += 1.0  # no longer fresh
    assert await breakers.admit("api.test", LOG) is False
    assert store.calls == ["admit", "record failed=True", "admit"]
