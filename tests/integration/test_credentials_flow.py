"""Credentials and retries through the running engine: rotation, Vault outages, Retry-After."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, envelopes_by_id, produce, read_topic
from tests.standins import HashiCorpVaultStandIn, SlackStandIn, VaultStandIn

OLD_TOKEN = "xoxb-old-token-0001"
NEW_TOKEN = "xoxb-new-token-0002"


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    with VaultStandIn(tokens={("proj-a", "slack"): OLD_TOKEN}) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(valid_tokens={OLD_TOKEN, NEW_TOKEN}) as server:
        yield server


def slack_request(request_id: str, project: str = "proj-a") -> Outgoing:
    return Outgoing.request(
        {
            "request_id": request_id,
            "action": "send_slack",
            "project": project,
            "params": {"channel": "#general", "message": request_id},
        },
        key="same-key",
    )


async def test_rotated_token_is_fetched_again_once(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, slack: SlackStandIn
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    settings = engine_settings(
        kafka_bootstrap, topics, vault_url=vault.base_url, slack_api_url=slack.base_url
    )
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, [slack_request("first")])
        await read_topic(kafka_bootstrap, topics.results, expect=1, grace_s=0)
        # The token is rotated in the Vault and revoked at Slack; the engine still caches it.
        vault.set_token("proj-a", "slack", NEW_TOKEN)
        slack.revoke(OLD_TOKEN)
        await produce(kafka_bootstrap, topics.requests, [slack_request("second")])
        results = await read_topic(kafka_bootstrap, topics.results, expect=2)

    by_id = envelopes_by_id(results)
    assert by_id["first"][0]["status"] == "success"
    assert by_id["second"][0]["status"] == "success", by_id["second"]
    assert by_id["second"][0]["attempts"] == 2
    assert [m["token"] for m in slack.messages] == [OLD_TOKEN, NEW_TOKEN]
    assert len(vault.requests) == 2, "one fetch, then exactly one re-fetch after invalid_auth"


async def test_vault_outage_is_retried_then_vault_unavailable(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, slack: SlackStandIn
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    vault.fail_next(2, 503)  # the first request's two attempts fail...
    settings = engine_settings(
        kafka_bootstrap,
        topics,
        vault_url=vault.base_url,
        slack_api_url=slack.base_url,
        retry_max_attempts=2,
    )
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, [slack_request("outage")])
        await read_topic(kafka_bootstrap, topics.results, expect=1, grace_s=0)
        await produce(kafka_bootstrap, topics.requests, [slack_request("recovered")])  # ...not this
        results = await read_topic(kafka_bootstrap, topics.results, expect=2)
    by_id = envelopes_by_id(results)
    error = by_id["outage"][0]["error"]
    assert error["code"] == "vault_unavailable" and error["retryable"] is True
    assert by_id["outage"][0]["attempts"] == 2
    assert by_id["recovered"][0]["status"] == "success"


async def test_slack_retry_after_is_honoured(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, slack: SlackStandIn
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    slack.rate_limit_next(1, retry_after=1)
    settings = engine_settings(
        kafka_bootstrap, topics, vault_url=vault.base_url, slack_api_url=slack.base_url
    )
    async with running_engine(settings):
        started = time.monotonic()
        await produce(kafka_bootstrap, topics.requests, [slack_request("limited")])
        results = await read_topic(kafka_bootstrap, topics.results, expect=1, grace_s=0)
        elapsed = time.monotonic() - started
    envelope = envelopes_by_id(results)["limited"][0]
    assert envelope["status"] == "success" and envelope["attempts"] == 2
    assert elapsed >= 1.0, "waited the Retry-After second before trying again"
    assert envelope["duration_ms"] >= 1000


async def test_rate_limit_past_the_budget_is_rate_limited(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, slack: SlackStandIn
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    slack.rate_limit_next(10, retry_after=5)
    settings = engine_settings(
        kafka_bootstrap,
        topics,
        vault_url=vault.base_url,
        slack_api_url=slack.base_url,
        retry_budget_s=2.0,
    )
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, [slack_request("limited")])
        results = await read_topic(kafka_bootstrap, topics.results, expect=1)
    envelope = envelopes_by_id(results)["limited"][0]
    assert envelope["error"]["code"] == "rate_limited"
    assert envelope["error"]["retryable"] is True
    # Retry-After 5 s does not fit a 2 s budget: it gives up at once rather than sleep past it.
    assert envelope["attempts"] == 1 and envelope["duration_ms"] < 2000


async def test_hashicorp_kv_v2_backend_end_to_end(
    kafka_bootstrap: str, topics: Topics, slack: SlackStandIn
) -> None:
    """VAULT_BACKEND=hashicorp: the token comes from KV v2; a sealed Vault is retried, and a
    project without a secret is missing_credentials."""
    secrets = {("secret", "puraify/proj-a/slack"): {"token": OLD_TOKEN}}
    with HashiCorpVaultStandIn(secrets, tokens={"hvs.engine-0001"}) as kv:
        kv.fail_next(1, 503, body={"errors": ["Vault is sealed"]})
        await create_topic(kafka_bootstrap, topics.requests, partitions=1)
        settings = engine_settings(
            kafka_bootstrap,
            topics,
            vault_backend="hashicorp",
            vault_url=kv.base_url,
            vault_token="hvs.engine-0001",
            slack_api_url=slack.base_url,
        )
        async with running_engine(settings):
            await produce(
                kafka_bootstrap,
                topics.requests,
                [slack_request("from-kv"), slack_request("no-secret", project="proj-z")],
            )
            results = await read_topic(kafka_bootstrap, topics.results, expect=2)
        paths = [r.path for r in kv.requests]

    by_id = envelopes_by_id(results)
    assert by_id["from-kv"][0]["status"] == "success", by_id["from-kv"]
    assert by_id["from-kv"][0]["attempts"] == 2, "the sealed answer was retried"
    assert by_id["no-secret"][0]["error"]["code"] == "missing_credentials"
    assert [m["token"] for m in slack.messages] == [OLD_TOKEN]
    assert paths.count("/v1/secret/data/puraify/proj-a/slack") == 2
    assert "/v1/secret/data/puraify/proj-z/slack" in paths
