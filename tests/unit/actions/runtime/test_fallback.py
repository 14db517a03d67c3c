"""Fallbacks: run when the action fails for good, validated up front, both outcomes recorded."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
import structlog
from pydantic import ValidationError
from structlog.testing import capture_logs

from actions import Action, ActionContext, ActionParams, UpstreamError, UpstreamUnavailable
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope
from tests.unit.support import FakeCredentials, plain_client


class NoteParams(ActionParams):
    note: str


class Scripted(Action[NoteParams]):
    def __init__(self, name: str, outcomes: list[BaseException | dict[str, Any]]) -> None:
        self.name = name  # type: ignore[misc]
        self.params_model = NoteParams  # type: ignore[misc]
        self.outcomes = list(outcomes)
        self.runs: list[str] = []

    async def run(self, params: NoteParams, ctx: ActionContext) -> Mapping[str, Any]:
        self.runs.append(params.note)
        outcome = self.outcomes.pop(0) if self.outcomes else {"note": params.note}
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture
async def runner() -> AsyncIterator[ActionRunner]:
    async with plain_client() as http:
        runner = ActionRunner(
            registry=ActionRegistry(),
            credentials=FakeCredentials(),
            http=http,
            egress_http=http,
            retry=RetryPolicy(max_attempts=2, rng=random.Random(3)),
        )

        async def no_sleep(delay: float) -> None:
            pass

        runner.sleep = no_sleep
        yield runner


def register(runner: ActionRunner, *actions: Scripted) -> None:
    for action in actions:
        runner.registry.register(action)


def request(**fields: Any) -> ExecutionRequest:
    body: dict[str, Any] = {
        "action": "main",
        "project": "p",
        "params": {"note": "m"},
        "fallback": {"action": "backup", "params": {"note": "b"}},
    }
    body.update(fields)
    return ExecutionRequest.model_validate(body)


async def run(runner: ActionRunner, req: ExecutionRequest) -> ResultEnvelope:
    return await runner.execute(req, "req-9", structlog.get_logger())


async def test_a_final_failure_runs_the_fallback_and_records_both(runner: ActionRunner) -> None:
    main = Scripted("main", [UpstreamError("channel_not_found", details={"provider_code": "x"})])
    backup = Scripted("backup", [{"sent": "email"}])
    register(runner, main, backup)
    with capture_logs() as logs:
        envelope = await run(runner, request())
    # The top level stays the main action's outcome.
    assert envelope.status == "error" and envelope.data is None
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert envelope.action == "main" and envelope.attempts == 1
    assert envelope.fallback is not None
    assert envelope.fallback.action == "backup"
    assert envelope.fallback.status == "success"
    assert envelope.fallback.data == {"sent": "email"}
    assert envelope.fallback.error is None and envelope.fallback.attempts == 1
    assert backup.runs == ["b"]
    # The runner says how each attempt started; the outcome event is the pipeline's.
    names = [(e["event"], e.get("action")) for e in logs]
    assert names == [
        ("action.started", None),
        ("fallback.started", "backup"),
        ("action.started", "backup"),
    ]
    started = next(e for e in logs if e["event"] == "fallback.started")
    assert started["fallback_for"] == "main" and started["main_error_code"] == "upstream_error"
    rendered = envelope.model_dump(mode="json")
    assert rendered["fallback"]["status"] == "success"


async def test_retries_are_exhausted_before_the_fallback_runs(runner: ActionRunner) -> None:
    main = Scripted("main", [UpstreamUnavailable("503"), UpstreamUnavailable("503")])
    backup = Scripted("backup", [UpstreamError("also down")])
    register(runner, main, backup)
    envelope = await run(runner, request())
    assert main.runs == ["m", "m"], "both attempts, then the fallback"
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.attempts == 2
    assert envelope.fallback is not None and envelope.fallback.status == "error"
    assert envelope.fallback.error is not None
    assert envelope.fallback.error.code is ErrorCode.UPSTREAM_ERROR
    assert envelope.fallback.error.message == "also down"
    assert envelope.fallback.data is None


async def test_no_fallback_when_the_action_succeeds(runner: ActionRunner) -> None:
    backup = Scripted("backup", [])
    register(runner, Scripted("main", [{"ok": True}]), backup)
    envelope = await run(runner, request())
    assert envelope.status == "success" and envelope.fallback is None
    assert backup.runs == []


async def test_no_fallback_when_the_request_itself_is_wrong(runner: ActionRunner) -> None:
    backup = Scripted("backup", [])
    register(runner, Scripted("main", []), backup)
    envelope = await run(runner, request(params={"nope": 1}))
    assert envelope.error is not None and envelope.error.code is ErrorCode.INVALID_PARAMS
    assert envelope.fallback is None and backup.runs == []


async def test_a_fallback_that_could_never_run_rejects_the_request_up_front(
    runner: ActionRunner,
) -> None:
    main = Scripted("main", [])
    register(runner, main, Scripted("backup", []))
    unknown = await run(runner, request(fallback={"action": "nope", "params": {}}))
    assert unknown.error is not None and unknown.error.code is ErrorCode.UNKNOWN_ACTION
    assert unknown.error.message == "fallback: no action named 'nope'"
    bad = await run(runner, request(fallback={"action": "backup", "params": {"x": 1}}))
    assert bad.error is not None and bad.error.code is ErrorCode.INVALID_PARAMS
    assert "fallback.params.note" in bad.error.message
    assert main.runs == [], "nothing ran"


def test_the_fallback_field_is_strict() -> None:
    with pytest.raises(ValidationError, match=r"fallback\.extra"):
        request(fallback={"action": "backup", "params": {}, "extra": 1})
    with pytest.raises(ValidationError, match=r"fallback\.params"):
        request(fallback={"action": "backup"})
    assert request(fallback=None).fallback is None
