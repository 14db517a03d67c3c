"""actions/builtin/log_message.py: one log event at the requested level."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from pydantic import ValidationError
from structlog.testing import capture_logs

from actions.builtin.log_message import ACTION, LogMessageParams
from actions.http import HttpClient
from actions.registry import ActionRegistry
from actions.runtime.runner import ActionRunner
from schemas import ExecutionRequest
from tests.unit.support import FakeCredentials, make_context, plain_client


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


@pytest.mark.parametrize("level", ["debug", "info", "warning", "error"])
async def test_emits_log_message_at_the_level(http: HttpClient, level: str) -> None:
    params = LogMessageParams.model_validate(
        {"message": "hello", "level": level, "fields": {"user": {"id": 7}, "event": "spoof"}}
    )
    with capture_logs() as logs:
        data = await ACTION.run(params, make_context(http=http))
    assert data == {"logged": True}
    assert logs == [
        {
            "event": "log_message",
            "log_level": level,
            "message": "hello",
            "fields": {"user": {"id": 7}, "event": "spoof"},
        }
    ]


async def test_default_level_is_info_and_fields_empty(http: HttpClient) -> None:
    with capture_logs() as logs:
        await ACTION.run(LogMessageParams(message="m"), make_context(http=http))
    assert logs == [{"event": "log_message", "log_level": "info", "message": "m", "fields": {}}]


async def test_bound_context_is_kept(http: HttpClient) -> None:
    bound = dataclasses.replace(
        make_context(http=http), log=structlog.get_logger().bind(request_id="r9")
    )
    with capture_logs() as logs:
        await ACTION.run(LogMessageParams(message="m"), bound)
    assert logs[0]["request_id"] == "r9"


@pytest.mark.parametrize(
    "params",
    [{}, {"message": "m", "level": "critical"}, {"message": "m", "fields": []}, {"message": 1}],
)
def test_params_are_validated(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LogMessageParams.model_validate(params)


async def test_through_the_runner(http: HttpClient) -> None:
    runner = ActionRunner(
        registry=ActionRegistry([ACTION]),
        credentials=FakeCredentials(),
        http=http,
        egress_http=http,
    )
    request = ExecutionRequest.model_validate(
        {
            "action": "log_message",
            "project": "p",
            "params": {"message": "user signed up", "level": "warning", "fields": {"n": 1}},
        }
    )
    with capture_logs() as logs:
        envelope = await runner.execute(request, "r", structlog.get_logger())
    assert envelope.status == "success"
    assert envelope.data == {"logged": True}
    [event] = [e for e in logs if e["event"] == "log_message"]
    assert event["log_level"] == "warning"
    assert event["message"] == "user signed up"
    assert event["fields"] == {"n": 1}
