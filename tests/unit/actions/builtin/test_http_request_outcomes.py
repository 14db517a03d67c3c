"""http_request never repeats an effect on its own: idempotent methods (RFC 9110) are retried
after a lost answer or a 5xx, POST/PATCH only when the target honours `Idempotency-Key`."""

from __future__ import annotations

from typing import Any

import pytest
import structlog

from actions.builtin.http_request import ACTION
from actions.http import HttpClient
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope
from tests.standins import HttpTargetStandIn
from tests.unit.support import FakeCredentials, FakeHttpClient, closed_port


async def call(egress: HttpClient, url: str, **params: Any) -> ResultEnvelope:
    async def no_wait(seconds: float) -> None:
        pass

    async with FakeHttpClient() as trusted:
        runner = ActionRunner(
            registry=ActionRegistry([ACTION]),
            credentials=FakeCredentials(),
            http=trusted,
            egress_http=egress,
            sleep=no_wait,
            retry=RetryPolicy(max_attempts=3),
        )
        request = ExecutionRequest.model_validate(
            {"action": "http_request", "project": "demo", "params": {"url": url, **params}}
        )
        return await runner.execute(request, "req-1", structlog.get_logger())


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_an_unanswered_post_is_outcome_unknown_and_sent_once(
    target: HttpTargetStandIn, egress: HttpClient, method: str
) -> None:
    envelope = await call(
        egress, f"{target.base_url}/delay/1500", method=method, json={"a": 1}, timeout_s=0.5
    )
    assert envelope.error is not None and envelope.error.code is ErrorCode.OUTCOME_UNKNOWN
    assert envelope.error.details == {"sent": True} and not envelope.error.retryable
    assert envelope.attempts == 1 and len(target.requests) == 1


async def test_a_post_whose_target_honours_the_key_is_retried(
    target: HttpTargetStandIn, egress: HttpClient
) -> None:
    envelope = await call(
        egress,
        f"{target.base_url}/delay/1500",
        method="POST",
        json={"a": 1},
        timeout_s=0.5,
        honours_idempotency_key=True,
    )
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.attempts == 3
    keys = {r.headers["idempotency-key"] for r in target.wait_for_requests(3)}
    assert keys == {"req-1"}, "every attempt carries the same key"


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
async def test_idempotent_methods_are_retried_after_a_lost_answer(
    target: HttpTargetStandIn, egress: HttpClient, method: str
) -> None:
    envelope = await call(egress, f"{target.base_url}/delay/1500", method=method, timeout_s=0.5)
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.attempts == 3


@pytest.mark.parametrize(
    ("status", "code", "attempts"),
    [
        (500, ErrorCode.OUTCOME_UNKNOWN, 1),
        (502, ErrorCode.OUTCOME_UNKNOWN, 1),
        (504, ErrorCode.OUTCOME_UNKNOWN, 1),
        (503, ErrorCode.OUTCOME_UNKNOWN, 1),
        (408, ErrorCode.UPSTREAM_UNAVAILABLE, 3),
        (429, ErrorCode.RATE_LIMITED, 3),
    ],
)
async def test_a_post_answered_with_a_5xx(
    target: HttpTargetStandIn, egress: HttpClient, status: int, code: ErrorCode, attempts: int
) -> None:
    envelope = await call(egress, f"{target.base_url}/status/{status}", method="POST", json={})
    assert envelope.error is not None and envelope.error.code is code
    assert envelope.attempts == attempts == len(target.requests)


async def test_a_put_answered_500_is_retried(target: HttpTargetStandIn, egress: HttpClient) -> None:
    envelope = await call(egress, f"{target.base_url}/status/500", method="PUT", json={})
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.attempts == 3


async def test_a_post_that_could_not_connect_is_retried(egress: HttpClient) -> None:
    envelope = await call(egress, f"http://127.0.0.1:{closed_port()}/x", method="POST", json={})
    assert envelope.error is not None and envelope.error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert envelope.error.details == {"sent": False} and envelope.attempts == 3
