"""Rate limits and circuits with a fleet store (actions/ratelimit.py, actions/circuit.py): the
store decides while it answers; when it cannot, the process's own state does."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import structlog
from structlog.testing import capture_logs

from actions import RateKey
from actions.errors import CircuitOpen, RateLimitExhausted, StateUnavailable
from actions.ratelimit import UNPACED, Rate, RateLimiter
from actions.runtime.circuit import CircuitBreakers, SharedCircuit

LOG = structlog.get_logger()
CHANNEL = RateKey("chan", "#general")


class FakeRates:
    def __init__(self, answers: list[tuple[bool, float] | None]) -> None:
        self.answers = answers
        self.asked: list[tuple[list[tuple[RateKey, Rate]], float | None]] = []
        self.paused: list[tuple[list[tuple[RateKey, Rate]], float]] = []

    async def reserve(
        self, slots: Sequence[tuple[RateKey, Rate]], max_wait_s: float | None
    ) -> tuple[bool, float]:
        self.asked.append((list(slots), max_wait_s))
        answer = self.answers.pop(0)
        if answer is None:
            raise StateUnavailable("down")
        return answer

    async def pause(self, slots: Sequence[tuple[RateKey, Rate]], seconds: float) -> None:
        self.paused.append((list(slots), seconds))


async def test_the_store_schedules_and_the_local_schedule_takes_over() -> None:
    store = FakeRates([(True, 2.5), None, (False, 9.0), (True, 0.0)])
    limiter = RateLimiter({"chan": Rate(1, 1.0)}, store=store)
    unconfigured = RateKey("unconfigured", "x")
    assert await limiter.take([CHANNEL, unconfigured], 5.0) == 2.5
    # An unconfigured key goes unpaced: the fleet may have paused it (a provider's 429).
    assert store.asked[0] == ([(CHANNEL, Rate(1, 1.0)), (unconfigured, UNPACED)], 5.0)
    assert await limiter.take([CHANNEL], 5.0) == 0.0, "store away: this process's schedule"
    assert limiter.reserve([CHANNEL]) == pytest.approx(1.0, abs=0.01), "which it kept"
    with pytest.raises(RateLimitExhausted) as info:
        await limiter.take([CHANNEL], 5.0)
    assert info.value.details == {"limit": "chan", "wait_s": 9.0}
    assert await limiter.take([unconfigured]) == 0.0
    assert len(store.asked) == 4


async def test_a_pause_reaches_the_store_with_each_keys_rate() -> None:
    store = FakeRates([])
    limiter = RateLimiter({"chan": Rate(1, 1.0)}, store=store)
    unconfigured = RateKey("unconfigured", "x")
    await limiter.pause([CHANNEL, unconfigured], 3.0)
    assert store.paused == [([(CHANNEL, Rate(1, 1.0)), (unconfigured, UNPACED)], 3.0)]


class FakeCircuits:
    def __init__(self) -> None:
        self.admits: list[SharedCircuit | None] = []
        self.records: list[SharedCircuit | None] = []
        self.recorded: list[tuple[bool, bool | None]] = []

    async def admit(self, upstream: str, open_s: float) -> SharedCircuit:
        answer = self.admits.pop(0)
        if answer is None:
            raise StateUnavailable("down")
        return answer

    async def record(
        self, upstream: str, *, probe: bool, failed: bool | None, threshold: int, open_s: float
    ) -> SharedCircuit:
        self.recorded.append((probe, failed))
        answer = self.records.pop(0)
        if answer is None:
            raise StateUnavailable("down")
        return answer


async def test_the_fleets_circuit_decides_and_logs_its_transitions() -> None:
    store = FakeCircuits()
    breakers = CircuitBreakers(3, 10.0, store=store)
    store.admits = [SharedCircuit("closed", failures=1), SharedCircuit("open", reopens_in_s=4.0)]
    assert await breakers.admit("api.test", LOG) is False
    with pytest.raises(CircuitOpen) as info:
        await breakers.admit("api.test", LOG)
    assert info.value.details == {"circuit": "open", "upstream": "api.test"}
    assert breakers.states() == {"api.test": "open"}, "metrics show the fleet's open circuit"
    store.admits = [SharedCircuit("half_open", probe=True)]
    store.records = [SharedCircuit("closed", changed=True)]
    with capture_logs() as logs:
        assert await breakers.admit("api.test", LOG) is True
        await breakers.observe("api.test", probe=True, failed=False, log=LOG)
    assert [e["event"] for e in logs] == ["circuit.half_open", "circuit.closed"]
    assert store.recorded == [(True, False)]
    store.records = [SharedCircuit("open", reopens_in_s=10.0, changed=True)]
    with capture_logs() as logs:
        await breakers.observe("api.test", probe=False, failed=True, log=LOG)
    assert [(e["event"], e.get("shared")) for e in logs] == [("circuit.opened", True)]


async def test_a_circuit_store_away_falls_back_to_this_processes_circuit() -> None:
    store = FakeCircuits()
    breakers = CircuitBreakers(2, 10.0, store=store)
    store.records = [None, None]
    with capture_logs() as logs:
        for _ in range(2):
            await breakers.observe("api.test", probe=False, failed=True, log=LOG)
    assert [e["event"] for e in logs] == ["circuit.opened"], "the local circuit opened"
    store.admits = [None]
    with pytest.raises(CircuitOpen):
        await breakers.admit("api.test", LOG)


async def test_wait_mode_waits_for_the_fleets_circuit() -> None:
    store = FakeCircuits()
    breakers = CircuitBreakers(3, 10.0, "wait", store=store)
    store.admits = [
        SharedCircuit("open", reopens_in_s=0.05),
        SharedCircuit("half_open", probe=True),
    ]
    assert await breakers.admit("api.test", LOG, max_wait_s=1.0) is True
    store.admits = [SharedCircuit("open", reopens_in_s=5.0)] * 3
    with pytest.raises(CircuitOpen):
        await breakers.admit("api.test", LOG, max_wait_s=0.05)


async def test_a_healthy_fleet_circuit_costs_one_round_trip_per_100_ms() -> None:
    now = [100.0]
    store = FakeCircuits()
    breakers = CircuitBreakers(3, 10.0, store=store, clock=lambda: now[0])
    store.admits = [SharedCircuit("closed", failures=0)]
    assert await breakers.admit("api.test", LOG) is False
    assert await breakers.admit("api.test", LOG) is False, "answered without asking again"
    await breakers.observe("api.test", probe=False, failed=False, log=LOG)
    assert store.recorded == [], "an answer from a clean upstream is not written"
    store.records = [SharedCircuit("closed")]
    await breakers.observe("api.test", probe=False, failed=True, log=LOG)
    assert store.recorded == [(False, True)], "a failure always is"
    store.admits = [SharedCircuit("closed", failures=1)]
    assert await breakers.admit("api.test", LOG) is False, "asked again after a failure"
    assert store.admits == []
    now[0] += 0.2
    store.admits = [SharedCircuit("open", reopens_in_s=5.0)]
    with pytest.raises(CircuitOpen):
        await breakers.admit("api.test", LOG)
