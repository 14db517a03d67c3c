"""Provider timeouts: each call waits as long as its provider documents (a setting), never past
the request's deadline, and an action whose provider is slower than EXECUTION_ACTION_TIMEOUT_S
gets the longer attempt it declares."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from actions import Action, ActionParams
from actions.base import ActionContext
from actions.registry import ActionRegistry
from actions.runtime.runner import ActionRunner
from schemas import ExecutionRequest
from tests.unit.support import FakeCredentials, make_context, plain_client


async def test_a_provider_timeout_is_its_setting_bounded_by_the_deadline() -> None:
    async with plain_client() as http:
        ctx = make_context(http=http)
        assert ctx.call_timeout_s(65.0) == 65.0, "no deadline: the setting"
        ctx.deadline = datetime.now(UTC) + timedelta(seconds=5)
        assert ctx.call_timeout_s(65.0) == pytest.approx(5.0, abs=0.1)
        assert ctx.call_timeout_s(2.0) == 2.0, "the setting when shorter"
        ctx.deadline = datetime.now(UTC) - timedelta(seconds=5)
        assert ctx.call_timeout_s(65.0) == 1.0, "a call made at the deadline keeps 1 s"


class Slow(Action[ActionParams]):
    """A provider documented to answer within 0.5 s, slower than the engine's 0.1 s limit."""

    name = "slow"
    params_model = ActionParams

    async def run(self, params: ActionParams, ctx: ActionContext) -> Mapping[str, Any]:
        ctx.attempt.sending(idempotent=False)
        await asyncio.sleep(0.3)
        return {"answered": True}

    def attempt_timeout_s(self, params: ActionParams, ctx: ActionContext) -> float:
        return 0.5


async def test_an_action_documented_as_slower_gets_its_own_attempt_timeout() -> None:
    async with plain_client() as http:
        runner = ActionRunner(
            registry=ActionRegistry([Slow()]),
            credentials=FakeCredentials(),
            http=http,
            egress_http=http,
            attempt_timeout_s=0.1,
        )
        request = ExecutionRequest.model_validate({"action": "slow", "project": "p", "params": {}})
        envelope = await runner.execute(request, "r-1", structlog.get_logger())
    assert envelope.status == "success" and envelope.attempts == 1, envelope.error
