"""actions/runtime/runner.py: ActionRunner.execute with fake actions, credentials and sleep."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from pydantic import Field
from structlog.testing import capture_logs

from actions import (
    Action,
    ActionContext,
    ActionParams,
    RateLimited,
    UpstreamError,
    UpstreamUnavailable,
)
from actions.errors import CredentialRejected
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope
from tests.unit.support import FakeCredentials, plain_client


class ChannelParams(ActionParams):
    channel: str = Field(min_length=1)
    count: int = 1


class Scripted(Action[ChannelParams]):
    """Each run takes the next outcome: an exception to raise, or data to return."""

    name = "scripted"
    params_model = ChannelParams

    def __init__(self, outcomes: list[BaseException | dict[str, Any]] | None = None) -> None:
        self.outcomes = list(outcomes or [])
        self.runs: list[ActionContext] = []
        self.tokens: list[str] = []

    async def run(self, params: ChannelParams, ctx: ActionContext) -> Mapping[str, Any]:
        self.runs.append(ctx)
        self.tokens.append((await ctx.token("svc")).get_secret_value())
        outcome = self.outcomes.pop(0) if self.outcomes else {"channel": params.channel}
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Slow(Action[ChannelParams]):
    name = "slow"
    params_model = ChannelParams

    def __init__(self) -> None:
        self.cancelled = False

    async def run(self, params: ChannelParams, ctx: ActionContext) -> Mapping[str, Any]:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return {}


class Harness:
    def __init__(self, runner: ActionRunner, credentials: FakeCredentials) -> None:
        self.runner = runner
        self.credentials = credentials
        self.sleeps: list[float] = []


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with plain_client() as http, plain_client() as egress:
        credentials = FakeCredentials()
        runner = ActionRunner(
            registry=ActionRegistry(),
            credentials=credentials,
            http=http,
            egress_http=egress,
            retry=RetryPolicy(max_attempts=3, rng=random.Random(7)),
            attempt_timeout_s=5.0,
        )
        h = Harness(runner, credentials)

        async def fake_sleep(delay: float) -> None:
            h.sleeps.append(delay)

        runner.sleep = fake_sleep
        yield h


def make_request(action: str = "scripted", **fields: Any) -> ExecutionRequest:
    body: dict[str, Any] = {
        "action": action,
        "project": "proj-a",
        "params": {"channel": "#general"},
    }
    body.update(fields)
    return ExecutionRequest.model_validate(body)


async def execute(h: Harness, request: ExecutionRequest) -> ResultEnvelope:
    return await h.runner.execute(request, "req-1", structlog.get_logger())


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


async def test_success(harness: Harness) -> None:
    action = Scripted([{"ok": 1}])
    harness.runner.registry.register(action)
    with capture_logs() as logs:
        envelope = await execute(harness, make_request())
    assert envelope.status == "success"
    assert envelope.data == {"ok": 1}
    assert envelope.error is None
    assert envelope.attempts == 1
    assert envelope.request_id == "req-1"
    assert (envelope.action, envelope.project) == ("scripted", "proj-a")
    assert envelope.finished_at >= envelope.started_at
    assert [e["event"] for e in logs] == ["action.started"]  # the outcome: the pipeline's
    assert action.runs[0].request_id == "req-1"
    assert action.runs[0].project == "proj-a"
    assert harness.credentials.gets == [("proj-a", "svc")]


async def test_unknown_action(harness: Harness) -> None:
    with capture_logs() as logs:
        envelope = await execute(harness, make_request("nope"))
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.UNKNOWN_ACTION
    assert "nope" in envelope.error.message
    assert envelope.attempts == 0
    assert envelope.data is None
    assert logs == []  # nothing ran


async def test_invalid_params_names_the_field_and_does_not_echo_the_value(
    harness: Harness,
) -> None:
    action = Scripted()
    harness.runner.registry.register(action)
    request = make_request(params={"channel": ["leaky-value-123"], "count": "many-xyz"})
    envelope = await execute(harness, request)
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.INVALID_PARAMS
    assert "params.channel" in envelope.error.message
    assert "params.count" in envelope.error.message
    assert "leaky-value-123" not in envelope.error.message
    assert "many-xyz" not in envelope.error.message
    assert envelope.attempts == 0
    assert action.runs == []


async def test_invalid_params_missing_and_unknown_fields(harness: Harness) -> None:
    harness.runner.registry.register(Scripted())
    envelope = await execute(harness, make_request(params={"chanel": "#x"}))
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.INVALID_PARAMS
    assert "params.channel: Field required" in envelope.error.message
    assert "params.chanel" in envelope.error.message


async def test_deadline_in_the_past(harness: Harness) -> None:
    action = Scripted()
    harness.runner.registry.register(action)
    past = datetime.now(UTC) - timedelta(seconds=1)
    envelope = await execute(harness, make_request(deadline=past.isoformat()))
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.DEADLINE_EXCEEDED
    assert not envelope.error.retryable
    assert envelope.attempts == 0
    assert action.runs == []


async def test_deadline_in_the_future_runs(harness: Harness) -> None:
    harness.runner.registry.register(Scripted())
    future = datetime.now(UTC) + timedelta(minutes=5)
    envelope = await execute(harness, make_request(deadline=future.isoformat()))
    assert envelope.status == "success"


async def test_retryable_twice_then_success(harness: Harness) -> None:
    action = Scripted([UpstreamUnavailable("down 1"), UpstreamUnavailable("down 2"), {"n": 3}])
    harness.runner.registry.register(action)
    with capture_logs() as logs:
        envelope = await execute(harness, make_request())
    assert envelope.status == "success"
    assert envelope.data == {"n": 3}
    assert envelope.attempts == 3
    retrying = events(logs, "action.retrying")
    assert len(retrying) == 2
    assert [e["attempt"] for e in retrying] == [1, 2]
    assert all(e["error_code"] == "upstream_unavailable" for e in retrying)
    assert len(harness.sleeps) == 2
    assert 0 <= harness.sleeps[0] <= 0.2 and 0 <= harness.sleeps[1] <= 0.4
    assert len(events(logs, "action.started")) == 3


async def test_retries_exhausted_returns_that_errors_code(harness: Harness) -> None:
    action = Scripted([RateLimited("slow down", details={"status_code": 429})] * 5)
    harness.runner.registry.register(action)
    envelope = await execute(harness, make_request())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.RATE_LIMITED
    assert envelope.error.retryable is True
    assert envelope.error.details == {"status_code": 429}
    assert envelope.attempts == 3
    assert len(action.runs) == 3
    assert len(harness.sleeps) == 2


async def test_retry_after_is_what_the_runner_sleeps(harness: Harness) -> None:
    action = Scripted([RateLimited("slow down", retry_after_s=4.0), {}])
    harness.runner.registry.register(action)
    envelope = await execute(harness, make_request())
    assert envelope.status == "success"
    assert harness.sleeps == [4.0]


async def test_retry_that_would_pass_the_deadline_stops(harness: Harness) -> None:
    action = Scripted([RateLimited("slow down", retry_after_s=30.0), {}])
    harness.runner.registry.register(action)
    soon = datetime.now(UTC) + timedelta(seconds=10)
    envelope = await execute(harness, make_request(deadline=soon.isoformat()))
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.RATE_LIMITED
    assert envelope.attempts == 1
    assert harness.sleeps == []


async def test_non_retryable_error_is_returned_at_once(harness: Harness) -> None:
    action = Scripted([UpstreamError("nope", details={"provider_code": "channel_not_found"})])
    harness.runner.registry.register(action)
    envelope = await execute(harness, make_request())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert envelope.error.details == {"provider_code": "channel_not_found"}
    assert envelope.attempts == 1
    assert harness.sleeps == []


async def test_missing_credentials(harness: Harness) -> None:
    action = Scripted()
    harness.runner.registry.register(action)
    harness.runner.credentials = FakeCredentials(tokens={})
    envelope = await execute(harness, make_request())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.MISSING_CREDENTIALS
    assert envelope.attempts == 1


async def test_credential_rejected_invalidates_and_reruns_once(harness: Harness) -> None:
    action = Scripted([CredentialRejected("svc", "rotated"), {"ok": True}])
    harness.runner.registry.register(action)
    with capture_logs() as logs:
        envelope = await execute(harness, make_request())
    assert envelope.status == "success"
    assert envelope.attempts == 2
    assert harness.credentials.invalidations == [("proj-a", "svc")]
    assert harness.credentials.gets == [("proj-a", "svc"), ("proj-a", "svc")]
    assert harness.sleeps == []  # at once
    assert [e["error_code"] for e in events(logs, "action.retrying")] == ["credential_rejected"]


async def test_credential_rejected_twice_is_upstream_error(harness: Harness) -> None:
    action = Scripted(
        [
            CredentialRejected("svc", "rejected", details={"status_code": 401}),
            CredentialRejected("svc", "rejected again", details={"status_code": 401}),
            {"never": True},
        ]
    )
    harness.runner.registry.register(action)
    envelope = await execute(harness, make_request())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.UPSTREAM_ERROR
    assert envelope.error.retryable is False
    assert envelope.error.message == "rejected again"
    assert envelope.attempts == 2
    assert harness.credentials.invalidations == [("proj-a", "svc")]
    assert len(action.runs) == 2


async def test_crash_is_internal_error_without_internals(harness: Harness) -> None:
    harness.runner.registry.register(Scripted([RuntimeError("secret-xyz")]))
    with capture_logs() as logs:
        envelope = await execute(harness, make_request())
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.INTERNAL_ERROR
    assert "secret-xyz" not in envelope.model_dump_json()
    assert "bug" in envelope.error.message
    assert envelope.attempts == 1
    crashed = events(logs, "action.crashed")
    assert len(crashed) == 1 and crashed[0]["log_level"] == "error"
    assert crashed[0]["exc_info"] is True


async def test_attempt_exceeding_the_timeout_is_upstream_unavailable(harness: Harness) -> None:
    action = Slow()
    harness.runner.registry.register(action)
    harness.runner.attempt_timeout_s = 0.05
    harness.runner.retry = RetryPolicy(max_attempts=1)
    envelope = await execute(harness, make_request("slow"))
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.error.retryable is True
    assert "0.05 s" in envelope.error.message
    assert envelope.attempts == 1
    assert action.cancelled


async def test_metadata_and_environment_are_echoed(harness: Harness) -> None:
    harness.runner.registry.register(Scripted([{}, UpstreamError("x")]))
    metadata = {"flow": "on-register", "nested": {"a": [1, 2]}}
    ok = await execute(harness, make_request(metadata=metadata, environment="production"))
    failed = await execute(harness, make_request(metadata=metadata, environment="staging"))
    unknown = await execute(harness, make_request("nope", metadata=metadata, environment="dev"))
    assert ok.metadata == metadata and ok.environment == "production"
    assert failed.metadata == metadata and failed.environment == "staging"
    assert unknown.metadata == metadata and unknown.environment == "dev"
