"""A failure the request itself causes is the request's (issue 17): `invalid_params` (or
`upstream_error` for a redirect to a Location that does not parse), one attempt at most, never
a failure counted against the upstream's circuit (which every project shares), and nothing
sent. Valid non-ASCII input works. Through the runner, as the engine runs actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog

from actions.builtin.http_request import ACTION as HTTP_REQUEST
from actions.builtin.send_slack import ACTION as SEND_SLACK
from actions.builtin.send_slack import SlackSettings
from actions.builtin.send_webhook import ACTION as SEND_WEBHOOK
from actions.egress import EgressPolicy, guarded_client, parse_networks
from actions.http import HttpClient
from actions.registry import ActionRegistry
from actions.runtime.circuit import CircuitBreakers
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope
from tests.standins import HttpTargetStandIn
from tests.unit.support import FakeCredentials, action_settings, plain_client


@pytest.fixture
async def clients() -> AsyncIterator[tuple[HttpClient, HttpClient]]:
    async with (
        plain_client() as http,
        guarded_client(EgressPolicy(parse_networks("127.0.0.0/8")), timeout_s=5.0) as egress,
    ):
        yield http, egress


async def no_wait(seconds: float) -> None:
    return None


def runner(
    clients: tuple[HttpClient, HttpClient],
    target: HttpTargetStandIn,
    credentials: FakeCredentials | None = None,
) -> ActionRunner:
    http, egress = clients
    return ActionRunner(
        registry=ActionRegistry([HTTP_REQUEST, SEND_SLACK, SEND_WEBHOOK]),
        credentials=credentials or FakeCredentials(),
        http=http,
        egress_http=egress,
        settings=action_settings(SlackSettings(slack_api_url=target.base_url)),
        retry=RetryPolicy(max_attempts=5),
        sleep=no_wait,
        # One counted failure would open it: a request's own fault must count none.
        breakers=CircuitBreakers(failure_threshold=1),
    )


async def execute(
    run: ActionRunner, action: str, params: dict[str, Any], request_id: str = "r-1"
) -> ResultEnvelope:
    request = ExecutionRequest.model_validate({"action": action, "project": "p", "params": params})
    return await run.execute(request, request_id, structlog.get_logger())


def assert_the_requests_fault(
    envelope: ResultEnvelope, run: ActionRunner, target: HttpTargetStandIn, attempts: int = 1
) -> None:
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.INVALID_PARAMS, envelope.error
    assert envelope.attempts == attempts
    upstream = f"127.0.0.1:{target.port}"
    assert run.breakers.state(upstream) == "closed"
    assert target.requests == [], "nothing was sent"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Note": "a\r\nInjected: 1"},
        {"X-Note": "a\nb"},
        {"X-Note": "a\rb"},
        {"X-Note": "nul\x00"},
        {"X-Note\r\nInjected": "1"},
        {"X Note": "1"},
        {"X-Note:": "1"},
    ],
)
async def test_a_bad_header_is_invalid_params_once_and_never_sent(
    clients: tuple[HttpClient, HttpClient], target: HttpTargetStandIn, headers: dict[str, str]
) -> None:
    run = runner(clients, target)
    envelope = await execute(
        run, "http_request", {"url": f"{target.base_url}/echo", "headers": headers}
    )
    assert_the_requests_fault(envelope, run, target)
    assert envelope.error is not None and "header" in envelope.error.message
    assert "Injected" not in envelope.error.message  # the value is never echoed


@pytest.mark.parametrize("prefix", ["Bearer\r\nX-Evil: 1 ", "Key\n", "\x00"])
async def test_a_line_break_in_credential_prefix_is_invalid_params(
    clients: tuple[HttpClient, HttpClient], target: HttpTargetStandIn, prefix: str
) -> None:
    run = runner(clients, target)
    credential = {"service": "target", "header": "X-Api-Key", "prefix": prefix}
    envelope = await execute(
        run, "http_request", {"url": f"{target.base_url}/echo", "credential": credential}
    )
    assert_the_requests_fault(envelope, run, target)


@pytest.mark.parametrize("token", ["tok\r\nX-Evil: 1", "tok\n", " tok", "tok ", "\ttok", ""])
async def test_a_malformed_credential_value_is_invalid_params(
    clients: tuple[HttpClient, HttpClient], target: HttpTargetStandIn, token: str
) -> None:
    credentials = FakeCredentials({("p", "target"): token, ("p", "slack"): token})
    run = runner(clients, target, credentials)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("http_request", {"url": f"{target.base_url}/echo", "credential": {"service": "target"}}),
        ("send_slack", {"channel": "#c", "message": "hi"}),
    ]
    for action, params in calls:
        envelope = await execute(run, action, params)
        assert_the_requests_fault(envelope, run, target)
        assert envelope.error is not None and "credential" in envelope.error.message
        if token.strip():
            assert token.strip() not in envelope.error.message


@pytest.mark.parametrize("timeout_s", [0.000001, 0.01, 0.0999])
async def test_an_impossible_timeout_is_invalid_params(
    clients: tuple[HttpClient, HttpClient], target: HttpTargetStandIn, timeout_s: float
) -> None:
    run = runner(clients, target)
    for action, params in [
        ("http_request", {"url": f"{target.base_url}/echo", "timeout_s": timeout_s}),
        ("send_webhook", {"url": f"{target.base_url}/echo", "payload": {}, "timeout_s": timeout_s}),
    ]:
        envelope = await execute(run, action, params)
        # Refused by the params schema (the floor is 0.1 s): before any attempt.
        assert_the_requests_fault(envelope, run, target, attempts=0)
        assert envelope.error is not None and "timeout_s" in envelope.error.message


@pytest.mark.parametrize(
    "location",
    ["http://[bad", "http://h.test:99999/", "http://h.test:port/", "https://", "http://exa mple/"],
)
async def test_a_redirect_to_a_location_that_does_not_parse_is_upstream_error(
    clients: tuple[HttpClient, HttpClient], target: HttpTargetStandIn, location: str
) -> None:
    run = runner(clients, target)
    target.fail_next(1, 302, headers={"Location": location})
    envelope = await execute(run, "http_request", {"url": f"{target.base_url}/start"})
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.UPSTREAM_ERROR, envelope.error
    assert envelope.error.details == {"status_code": 302}
    assert envelope.attempts == 1
    assert run.breakers.state(f"127.0.0.1:{target.port}") == "closed"
    assert [r.path for r in target.requests] == ["/start"]


async def test_a_non_ascii_header_value_is_sent_as_utf8(
    clients: tuple[HttpClient, HttpClient], target: HttpTargetStandIn
) -> None:
    run = runner(clients, target)
    envelope = await execute(
        run, "http_request", {"url": f"{target.base_url}/echo", "headers": {"X-Name": "José"}}
    )
    assert envelope.status == "success", envelope.error
    [request] = target.requests
    # The stand-in (http.server) reads header bytes as Latin-1: what arrived is UTF-8.
    assert request.headers["x-name"].encode("latin-1").decode("utf-8") == "José"


async def test_a_non_ascii_request_id_is_an_rfc_8187_value_in_the_engines_headers(
    clients: tuple[HttpClient, HttpClient], target: HttpTargetStandIn
) -> None:
    run = runner(clients, target)
    http = await execute(run, "http_request", {"url": f"{target.base_url}/echo"}, "café-1")
    hook = await execute(
        run, "send_webhook", {"url": f"{target.base_url}/echo", "payload": {}}, "café-1"
    )
    assert http.status == "success" and hook.status == "success", (http.error, hook.error)
    first, second = target.requests
    assert first.headers["idempotency-key"] == "UTF-8''caf%C3%A9-1"
    # A webhook's key is its delivery id (`webhook-id`): ASCII, and per project.
    assert second.headers["idempotency-key"] == second.headers["webhook-id"]
    assert second.headers["puraify-delivery"] == "UTF-8''caf%C3%A9-1"


async def test_distinct_request_ids_stay_distinct_idempotency_keys(
    clients: tuple[HttpClient, HttpClient], target: HttpTargetStandIn
) -> None:
    run = runner(clients, target)
    for request_id in ("café-1", "caf%C3%A9-1", "plain-1"):
        envelope = await execute(
            run, "http_request", {"url": f"{target.base_url}/echo"}, request_id
        )
        assert envelope.status == "success"
    keys = [r.headers["idempotency-key"] for r in target.requests]
    assert keys == ["UTF-8''caf%C3%A9-1", "caf%C3%A9-1", "plain-1"]
