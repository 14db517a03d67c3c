"""actions/builtin/send_slack.py against the loopback Slack stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import structlog
from pydantic import SecretStr

from actions import (
    CredentialRejected,
    OutcomeUnknown,
    RateLimited,
    UpstreamError,
    UpstreamUnavailable,
)
from actions.builtin.send_slack import ACTION, SendSlackParams, SlackSettings
from actions.http import HttpClient
from actions.registry import ActionRegistry
from actions.runtime.runner import ActionRunner
from actions.settings import ActionSettingsSet
from schemas import ErrorCode, ExecutionRequest
from tests.standins import SlackStandIn
from tests.unit.support import (
    FakeCredentials,
    action_settings,
    closed_port,
    make_context,
    plain_client,
)

TOKEN = "token-demo-project-slack"


@pytest.fixture(scope="module")
def slack_server() -> Iterator[SlackStandIn]:
    with SlackStandIn(valid_tokens={TOKEN}) as server:
        yield server


@pytest.fixture
def slack(slack_server: SlackStandIn) -> SlackStandIn:
    slack_server.clear()
    slack_server.add_token(TOKEN)
    return slack_server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


def config(slack: SlackStandIn) -> ActionSettingsSet:
    return action_settings(SlackSettings(slack_api_url=slack.base_url + "/"))


def params(**fields: object) -> SendSlackParams:
    return SendSlackParams.model_validate({"channel": "#general", "message": "hi", **fields})


async def test_success(slack: SlackStandIn, http: HttpClient) -> None:
    credentials = FakeCredentials()
    ctx = make_context(http=http, credentials=credentials, settings=config(slack))
    data = await ACTION.run(params(message="New user signed up!"), ctx)
    assert data == {"slack_message_id": "1732600000.000100", "channel": "C024BE91L"}
    [message] = slack.messages
    assert message["channel"] == "C024BE91L"
    assert message["text"] == "New user signed up!"
    assert message["token"] == TOKEN
    assert credentials.gets == [("demo-project", "slack")]
    [request] = slack.requests
    assert request.path == "/chat.postMessage"
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json() == {"channel": "#general", "text": "New user signed up!"}


async def test_thread_and_blocks_are_sent(slack: SlackStandIn, http: HttpClient) -> None:
    ctx = make_context(http=http, settings=config(slack))
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    await ACTION.run(params(thread_ts="1732600000.000100", blocks=blocks), ctx)
    [request] = slack.requests
    assert request.json()["thread_ts"] == "1732600000.000100"
    assert request.json()["blocks"] == blocks


async def test_channel_not_found_is_upstream_error(slack: SlackStandIn, http: HttpClient) -> None:
    ctx = make_context(http=http, settings=config(slack))
    with pytest.raises(UpstreamError) as info:
        await ACTION.run(params(channel="#nope"), ctx)
    assert info.value.code is ErrorCode.UPSTREAM_ERROR
    assert info.value.details == {"provider_code": "channel_not_found"}
    assert "channel_not_found" in info.value.message


async def test_invalid_auth_is_credential_rejected(slack: SlackStandIn, http: HttpClient) -> None:
    slack.revoke(TOKEN)
    ctx = make_context(http=http, settings=config(slack))
    with pytest.raises(CredentialRejected) as info:
        await ACTION.run(params(), ctx)
    assert info.value.service == "slack"
    assert info.value.details == {"provider_code": "invalid_auth"}
    assert TOKEN not in info.value.message


async def test_http_401_is_credential_rejected(slack: SlackStandIn, http: HttpClient) -> None:
    slack.fail_next(1, 401, body={"ok": False, "error": "not_authed"})
    with pytest.raises(CredentialRejected):
        await ACTION.run(params(), make_context(http=http, settings=config(slack)))


async def test_429_is_rate_limited_with_retry_after(slack: SlackStandIn, http: HttpClient) -> None:
    slack.rate_limit_next(1, retry_after=7)
    with pytest.raises(RateLimited) as info:
        await ACTION.run(params(), make_context(http=http, settings=config(slack)))
    assert info.value.retry_after_s == 7.0
    assert info.value.details == {"status_code": 429}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_other_5xx_is_outcome_unknown(
    slack: SlackStandIn, http: HttpClient, status: int
) -> None:
    slack.fail_next(1, status)
    with pytest.raises(OutcomeUnknown) as info:
        await ACTION.run(params(), make_context(http=http, settings=config(slack)))
    assert info.value.details == {"status_code": status, "sent": True}


async def test_slack_transient_error_is_upstream_unavailable(
    slack: SlackStandIn, http: HttpClient
) -> None:
    slack.fail_next(1, 200, body={"ok": False, "error": "service_unavailable"})
    with pytest.raises(UpstreamUnavailable) as info:
        await ACTION.run(params(), make_context(http=http, settings=config(slack)))
    assert info.value.details == {"provider_code": "service_unavailable"}


async def test_non_json_answer_is_outcome_unknown(slack: SlackStandIn, http: HttpClient) -> None:
    slack.fail_next(1, 200, headers={"Content-Type": "text/html"}, body=b"<html>")
    with pytest.raises(OutcomeUnknown):
        await ACTION.run(params(), make_context(http=http, settings=config(slack)))


async def test_connection_refused_is_upstream_unavailable(http: HttpClient) -> None:
    ctx = make_context(
        http=http,
        settings=action_settings(SlackSettings(slack_api_url=f"http://127.0.0.1:{closed_port()}")),
    )
    with pytest.raises(UpstreamUnavailable, match="connection failed"):
        await ACTION.run(params(), ctx)


async def test_through_the_runner_rotated_token_is_refetched(
    slack: SlackStandIn, http: HttpClient
) -> None:
    # The first token is stale (Slack says invalid_auth); the Vault then hands out the new one.
    tokens = iter(["stale-token-1", TOKEN])

    class Rotating(FakeCredentials):
        async def get(self, project: str, service: str) -> SecretStr:
            self.gets.append((project, service))
            return SecretStr(next(tokens))

    credentials = Rotating()
    runner = ActionRunner(
        registry=ActionRegistry([ACTION]),
        credentials=credentials,
        http=http,
        egress_http=http,
        settings=config(slack),
    )
    request = ExecutionRequest.model_validate(
        {
            "action": "send_slack",
            "project": "demo",
            "params": {"channel": "#general", "message": "m"},
        }
    )
    envelope = await runner.execute(request, "req-9", structlog.get_logger())
    assert envelope.status == "success", envelope.error
    assert envelope.attempts == 2
    assert credentials.invalidations == [("demo", "slack")]
    assert [r.bearer_token() for r in slack.requests] == ["stale-token-1", TOKEN]
