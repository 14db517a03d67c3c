"""The runner with rate limits and circuit breakers: waits in the request's own lane, respects
budget and deadline, and fails fast on an open circuit without calling the upstream."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from actions import Action, ActionContext, ActionParams, RateKey, UpstreamError, UpstreamUnavailable
from actions.base import NO_SLOT, InFlightSlot
from actions.ratelimit import Rate, RateLimiter
from actions.registry import ActionRegistry
from actions.runtime.circuit import CircuitBreakers
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope
from tests.unit.support import FakeCredentials, plain_client


class ChannelParams(ActionParams):
    channel: str


class Guarded(Action[ChannelParams]):
    """Spends the channel's rate budget, calls `api.test`; each run takes the next outcome."""

    name = "guarded"
    params_model = ChannelParams

    def __init__(self, outcomes: list[BaseException | dict[str, Any]] | None = None) -> None:
        self.outcomes = list(outcomes or [])
        self.runs: list[str] = []

    def rate_keys(self, params: ChannelParams, ctx: ActionContext) -> Sequence[RateKey]:
        return (RateKey("chan", params.channel),)

    def upstream(self, params: ChannelParams, ctx: ActionContext) -> str | None:
        return "api.test"

    async def run(self, params: ChannelParams, ctx: ActionContext) -> Mapping[str, Any]:
        self.runs.append(params.channel)
        outcome = self.outcomes.pop(0) if self.outcomes else {"channel": params.channel}
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
async def runner() -> AsyncIterator[ActionRunner]:
    async with plain_client() as http:
        clock = FakeTime()
        runner = ActionRunner(
            registry=ActionRegistry(),
            credentials=FakeCredentials(),
            http=http,
            egress_http=http,
            retry=RetryPolicy(max_attempts=3, budget_s=5.0, rng=random.Random(1)),
            limiter=RateLimiter({"chan": Rate(1, 1.0)}, clock=clock, sleep=clock.sleep),
            breakers=CircuitBreakers(3, 30.0),
        )

        async def no_sleep(delay: float) -> None:
            pass

        runner.sleep = no_sleep
        yield runner


def request(channel: str, **fields: Any) -> ExecutionRequest:
    body = {"action": "guarded", "project": "p", "params": {"channel": channel}, **fields}
    return ExecutionRequest.model_validate(body)


async def run(
    runner: ActionRunner, req: ExecutionRequest, slot: InFlightSlot = NO_SLOT
) -> ResultEnvelope:
    return await runner.execute(req, "req", structlog.get_logger(), slot)


class Slot:
    """An in-flight slot that records when it is lent."""

    def __init__(self, stepped: list[str], *, back: bool = True) -> None:
        self.stepped = stepped
        self.back = back

    @contextlib.asynccontextmanager
    async def stepped_aside(self) -> AsyncIterator[None]:
        self.stepped.append("aside")
        yield
        if self.back:
            self.stepped.append("back")


def limiter_sleeps(runner: ActionRunner) -> list[float]:
    clock = runner.limiter._sleep.__self__  # type: ignore[attr-defined]
    assert isinstance(clock, FakeTime)
    return clock.sleeps


async def test_a_limited_request_waits_for_its_slot_and_logs_it(runner: ActionRunner) -> None:
    runner.registry.register(Guarded())
    with capture_logs() as logs:
        first = await run(runner, request("#busy"))
        second = await run(runner, request("#busy"))
        other = await run(runner, request("#quiet"))
    assert first.status == second.status == other.status == "success"
    assert limiter_sleeps(runner) == [1.0], "only the second #busy message waited"
    waited = [e for e in logs if e["event"] == "action.rate_limited"]
    assert len(waited) == 1 and waited[0]["waited_s"] == 1.0
    # The wait comes before the attempt starts (outside its timeout).
    names = [e["event"] for e in logs]
    assert names.index("action.rate_limited") < names.index("action.started", 2)


async def test_no_slot_before_the_budget_ends_is_rate_limited_without_a_call(
    runner: ActionRunner,
) -> None:
    action = Guarded()
    runner.registry.register(action)
    for _ in range(6):  # reserves slots 0..5 s ahead; the budget is 5 s
        runner.limiter.reserve([RateKey("chan", "#busy")])
    envelope = await run(runner, request("#busy"))
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.RATE_LIMITED
    assert envelope.error.retryable
    assert "rate limit" in envelope.error.message
    assert envelope.attempts == 0
    assert action.runs == []


async def test_no_slot_before_the_deadline_is_rate_limited(runner: ActionRunner) -> None:
    action = Guarded()
    runner.registry.register(action)
    for _ in range(3):
        runner.limiter.reserve([RateKey("chan", "#busy")])
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    envelope = await run(runner, request("#busy", deadline=soon))
    assert envelope.error is not None and envelope.error.code is ErrorCode.RATE_LIMITED
    assert action.runs == []
    later = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    assert (await run(runner, request("#busy", deadline=later))).status == "success"


async def test_the_circuit_opens_after_failures_and_then_fails_fast(
    runner: ActionRunner,
) -> None:
    action = Guarded([UpstreamUnavailable("503")] * 3)
    runner.registry.register(action)
    with capture_logs() as logs:
        first = await run(runner, request("#a"))  # three attempts, three failures
        second = await run(runner, request("#b"))
    assert first.error is not None and first.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert first.attempts == 3
    assert second.error is not None and second.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert second.error.details == {"circuit": "open", "upstream": "api.test"}
    assert second.attempts == 0
    assert action.runs == ["#a"] * 3, "the open circuit made no call"
    assert [e["event"] for e in logs].count("circuit.opened") == 1
    assert runner.breakers.states() == {"api.test": "open"}


async def test_refusals_and_vault_trouble_do_not_open_the_circuit(runner: ActionRunner) -> None:
    action = Guarded([UpstreamError("400")] * 5)
    runner.registry.register(action)
    for _ in range(5):
        envelope = await run(runner, request(f"#{_}"))
        assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert runner.breakers.states() == {"api.test": "closed"}


async def test_a_half_open_probe_closes_the_circuit(runner: ActionRunner) -> None:
    runner.breakers = CircuitBreakers(1, 0.01)
    action = Guarded([UpstreamUnavailable("503")])
    runner.registry.register(action)
    runner.retry = RetryPolicy(max_attempts=1)
    assert (await run(runner, request("#a"))).status == "error"
    assert runner.breakers.states() == {"api.test": "open"}
    await asyncio.sleep(0.02)
    with capture_logs() as logs:
        assert (await run(runner, request("#b"))).status == "success"
    assert [e["event"] for e in logs if e["event"].startswith("circuit.")] == [
        "circuit.half_open",
        "circuit.closed",
    ]


async def test_only_a_real_wait_steps_aside(runner: ActionRunner) -> None:
    stepped: list[str] = []
    slot = Slot(stepped)
    runner.registry.register(Guarded())
    await run(runner, request("#busy"), slot)
    assert stepped == [], "no wait: the slot is kept"
    await run(runner, request("#busy"), slot)
    assert stepped == ["aside", "back"], "the rate-limit wait lent the slot"


async def test_waiting_for_an_open_circuit_steps_aside(runner: ActionRunner) -> None:
    stepped: list[str] = []
    slot = Slot(stepped, back=False)
    runner.breakers = CircuitBreakers(1, 0.05, "wait")
    runner.retry = RetryPolicy(max_attempts=1)
    runner.registry.register(Guarded([UpstreamUnavailable("503")]))
    assert (await run(runner, request("#a"), slot)).status == "error"
    assert stepped == []
    assert (await run(runner, request("#b"), slot)).status == "success", "waited, then probed"
    assert stepped == ["aside"]
