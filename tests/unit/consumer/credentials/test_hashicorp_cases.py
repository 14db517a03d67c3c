"""HashiCorp Vault KV v2 as Vault documents it: "no such secret" told from a wrong mount, a KV
v1 mount or a policy that denies the path; a standby's 307 followed; 412 and 429 retried."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import structlog
from pydantic import SecretStr

from actions import MissingCredentials
from actions.builtin.send_slack import SendSlack, SlackSettings
from actions.errors import VaultUnavailable
from actions.http import HttpClient
from actions.registry import ActionRegistry
from actions.runtime.runner import ActionRunner
from consumer.credentials.cache import CredentialCache, VaultRefused
from consumer.credentials.hashicorp import HashiCorpVaultClient
from schemas import ErrorCode, ExecutionRequest
from tests.standins import HashiCorpVaultStandIn, SlackStandIn
from tests.unit.support import action_settings, plain_client

CLIENT_TOKEN = "hvs.engine-client-token-0002"
SLACK_TOKEN = "xoxb-from-kv-0002"
SECRETS = {("secret", "puraify/proj-a/slack"): {"token": SLACK_TOKEN}}


@pytest.fixture
def kv() -> Iterator[HashiCorpVaultStandIn]:
    with HashiCorpVaultStandIn(SECRETS, tokens={CLIENT_TOKEN}) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client(timeout=2.0) as client:
        yield client


def client(
    kv: HashiCorpVaultStandIn, http: HttpClient, mount: str = "secret"
) -> HashiCorpVaultClient:
    return HashiCorpVaultClient(kv.base_url, http, mount=mount, token=SecretStr(CLIENT_TOKEN))


async def test_a_secret_that_is_not_there_is_missing_credentials(
    kv: HashiCorpVaultStandIn, http: HttpClient
) -> None:
    fetch = client(kv, http).fetch
    with pytest.raises(MissingCredentials):
        await fetch("proj-a", "notion")
    assert kv.requests[-1].path == "/v1/sys/internal/ui/mounts/secret", "v2 checked once"
    with pytest.raises(MissingCredentials):
        await fetch("proj-b", "notion")
    assert len(kv.requests) == 3, "the mount's version is asked only once"


async def test_a_deleted_version_is_missing_credentials(
    kv: HashiCorpVaultStandIn, http: HttpClient
) -> None:
    kv.delete("secret", "puraify/proj-a/slack")
    with pytest.raises(MissingCredentials):
        await client(kv, http).fetch("proj-a", "slack")


async def test_a_mount_that_does_not_exist_is_a_clear_vault_unavailable(
    kv: HashiCorpVaultStandIn, http: HttpClient
) -> None:
    with pytest.raises(VaultUnavailable) as info:
        await client(kv, http, mount="secrets").fetch("proj-a", "slack")
    assert info.value.code is ErrorCode.VAULT_UNAVAILABLE
    assert "no KV mount 'secrets'" in info.value.message and "VAULT_KV_MOUNT" in info.value.message
    assert "no handler for route" in info.value.message


async def test_a_kv_v1_mount_is_a_clear_vault_unavailable(
    kv: HashiCorpVaultStandIn, http: HttpClient
) -> None:
    kv.kv1_mounts.add("legacy")
    kv.put("legacy", "puraify/proj-a/slack", {"token": SLACK_TOKEN})
    with pytest.raises(VaultUnavailable) as info:
        await client(kv, http, mount="legacy").fetch("proj-a", "slack")
    assert "not KV version 2" in info.value.message
    assert not isinstance(info.value, MissingCredentials)


async def test_a_policy_that_denies_the_path_is_named(
    kv: HashiCorpVaultStandIn, http: HttpClient
) -> None:
    kv.policies[CLIENT_TOKEN] = ("secret/data/puraify/proj-b/",)
    with pytest.raises(VaultRefused) as info:
        await client(kv, http).fetch("proj-a", "slack")
    assert info.value.details == {"status_code": 403}
    assert "permission denied" in info.value.message and "policy" in info.value.message
    assert isinstance(info.value, VaultUnavailable), "retryable in the envelope, retried too"


async def test_a_standby_redirect_is_followed_to_the_active_node(
    kv: HashiCorpVaultStandIn, http: HttpClient
) -> None:
    with HashiCorpVaultStandIn(tokens={CLIENT_TOKEN}) as standby:
        standby.redirect_to = kv.base_url
        secret = await client(standby, http).fetch("proj-a", "slack")
    assert secret.get_secret_value() == SLACK_TOKEN
    assert standby.requests[0].path == kv.requests[0].path == "/v1/secret/data/puraify/proj-a/slack"
    assert kv.requests[0].headers["x-vault-token"] == CLIENT_TOKEN


async def test_a_redirect_loop_ends_as_vault_unavailable(http: HttpClient) -> None:
    with HashiCorpVaultStandIn(tokens={CLIENT_TOKEN}) as standby:
        standby.redirect_to = standby.base_url
        with pytest.raises(VaultUnavailable, match="kept redirecting"):
            await client(standby, http).fetch("proj-a", "slack")
        assert len(standby.requests) == 4


@pytest.mark.parametrize(
    ("status", "errors"),
    [
        (412, ["required index state not present"]),
        (429, ["request path kv/: rate limit quota exceeded"]),
    ],
)
async def test_412_and_429_are_retried_then_succeed(
    kv: HashiCorpVaultStandIn, http: HttpClient, status: int, errors: list[str]
) -> None:
    kv.fail_next(1, status, headers={"Retry-After": "1"}, body={"errors": errors})
    slack = SlackStandIn()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    with slack:
        runner = ActionRunner(
            registry=ActionRegistry([SendSlack()]),
            credentials=CredentialCache(client(kv, http).fetch),
            http=http,
            egress_http=http,
            settings=action_settings(SlackSettings(slack_api_url=slack.base_url)),
            sleep=sleep,
        )
        request = ExecutionRequest.model_validate(
            {
                "action": "send_slack",
                "project": "proj-a",
                "params": {"channel": "#general", "message": "m"},
            }
        )
        envelope = await runner.execute(request, "req-1", structlog.get_logger())
    assert envelope.status == "success", envelope.error
    assert envelope.attempts == 2 and delays == [1.0]
    assert len(slack.messages) == 1


async def test_a_mount_upgraded_to_v2_is_seen_without_a_restart(
    kv: HashiCorpVaultStandIn, http: HttpClient
) -> None:
    kv.kv1_mounts.add("legacy")
    fetch = client(kv, http, mount="legacy").fetch
    with pytest.raises(VaultUnavailable, match="not KV version 2"):
        await fetch("proj-a", "slack")
    kv.kv1_mounts.discard("legacy")  # `vault kv enable-versioning legacy/`
    kv.kv2_mounts.add("legacy")
    with pytest.raises(MissingCredentials):
        await fetch("proj-a", "slack")
