"""A request's fallback through the running engine: Slack refuses, the fallback logs instead."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, envelopes_by_id, produce, read_topic
from tests.standins import SlackStandIn, VaultStandIn

TOKEN = "xoxb-fallback-secret-0001"


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    with VaultStandIn(tokens={("proj-a", "slack"): TOKEN}) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(valid_tokens={TOKEN}) as server:
        yield server


async def test_the_envelope_records_the_failure_and_the_fallback(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, slack: SlackStandIn
) -> None:
    fallback = {"action": "log_message", "params": {"message": "slack failed", "level": "error"}}
    records = [
        Outgoing.request(
            {
                "request_id": "refused",
                "action": "send_slack",
                "project": "proj-a",
                "params": {"channel": "#nowhere", "message": "hi"},
                "fallback": fallback,
            }
        ),
        Outgoing.request(
            {
                "request_id": "delivered",
                "action": "send_slack",
                "project": "proj-a",
                "params": {"channel": "#general", "message": "hi"},
                "fallback": fallback,
            }
        ),
        Outgoing.request(
            {
                "request_id": "bad-fallback",
                "action": "send_slack",
                "project": "proj-a",
                "params": {"channel": "#general", "message": "hi"},
                "fallback": {"action": "log_message", "params": {}},
            }
        ),
    ]
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    await produce(kafka_bootstrap, topics.requests, records)
    settings = engine_settings(
        kafka_bootstrap, topics, vault_url=vault.base_url, slack_api_url=slack.base_url
    )
    async with running_engine(settings):
        results = await read_topic(kafka_bootstrap, topics.results, expect=3)

    by_id = envelopes_by_id(results)
    assert len(results) == 3
    refused = by_id["refused"][0]
    assert refused["status"] == "error"
    assert refused["error"]["code"] == "upstream_error"
    assert refused["error"]["details"]["provider_code"] == "channel_not_found"
    assert refused["fallback"] == {
        "action": "log_message",
        "status": "success",
        "data": {"logged": True},
        "error": None,
        "attempts": 1,
        "duration_ms": refused["fallback"]["duration_ms"],
    }
    delivered = by_id["delivered"][0]
    assert delivered["status"] == "success" and delivered["fallback"] is None
    bad = by_id["bad-fallback"][0]
    assert bad["error"]["code"] == "invalid_params"
    assert "fallback.params.message" in bad["error"]["message"]
    assert [m["channel"] for m in slack.messages] == ["C024BE91L"], "the bad request never ran"
    assert json.dumps(by_id).count(TOKEN) == 0
