"""A refused Vault token says `vault_unavailable`, `retryable: true`, and the engine's own retries
agree with the envelope: it is retried like every other `vault_unavailable`."""

from __future__ import annotations

import structlog
from pydantic import SecretStr

from actions.builtin.send_slack import SendSlack, SlackSettings
from actions.registry import ActionRegistry
from actions.runtime.retry import RetryPolicy
from actions.runtime.runner import ActionRunner
from consumer.credentials.cache import CredentialCache, VaultEngineClient
from schemas import ErrorCode, ExecutionRequest
from tests.standins import SlackStandIn, VaultStandIn
from tests.unit.support import action_settings, plain_client


async def test_a_refused_engine_token_is_retried_then_vault_unavailable() -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    with (
        VaultStandIn({("demo", "slack"): "xoxb-1"}, required_bearer="right") as vault,
        SlackStandIn() as slack,
    ):
        async with plain_client() as http:
            fetch = VaultEngineClient(vault.base_url, http, SecretStr("wrong")).fetch
            runner = ActionRunner(
                registry=ActionRegistry([SendSlack()]),
                credentials=CredentialCache(fetch),
                http=http,
                egress_http=http,
                settings=action_settings(SlackSettings(slack_api_url=slack.base_url)),
                retry=RetryPolicy(max_attempts=3),
                sleep=sleep,
            )
            request = ExecutionRequest.model_validate(
                {
                    "action": "send_slack",
                    "project": "demo",
                    "params": {"channel": "#general", "message": "m"},
                }
            )
            envelope = await runner.execute(request, "req-1", structlog.get_logger())
        vault_calls = len(vault.requests)
    assert envelope.error is not None
    assert envelope.error.code is ErrorCode.VAULT_UNAVAILABLE and envelope.error.retryable
    assert envelope.error.details == {"status_code": 401}
    assert envelope.attempts == 3 and len(delays) == 2 and vault_calls == 3
    assert not slack.requests
