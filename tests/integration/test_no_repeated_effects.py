"""Retries never repeat an effect on their own, through the running engine and a real broker:
the issue's reproduction (a Slack answer slower than EXECUTION_ACTION_TIMEOUT_S) posts once and
ends `outcome_unknown`; Slack's `fatal_error` is not repeated; `rate_limited` is waited out."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, envelopes_by_id, produce, read_topic
from tests.standins import SlackStandIn, VaultStandIn

SLACK_TOKEN = "xoxb-integration-no-repeat"


def post(request_id: str, key: str | None = None) -> Outgoing:
    value: dict[str, Any] = {
        "request_id": request_id,
        "action": "send_slack",
        "project": "proj-a",
        "params": {"channel": "#general", "message": f"hello from {request_id}"},
    }
    return Outgoing.request(value, key=key or request_id)


async def test_a_slow_slack_answer_posts_once_and_ends_outcome_unknown(
    kafka_bootstrap: str, topics: Topics
) -> None:
    with (
        VaultStandIn(tokens={("proj-a", "slack"): SLACK_TOKEN}) as vault,
        SlackStandIn(valid_tokens={SLACK_TOKEN}) as slack,
    ):
        slack.delay_s = 4.0  # the answer comes after 4 s; the attempt timeout is 2 s
        await create_topic(kafka_bootstrap, topics.requests, partitions=1)
        await produce(kafka_bootstrap, topics.requests, [post("slow")])
        settings = engine_settings(
            kafka_bootstrap,
            topics,
            vault_url=vault.base_url,
            slack_api_url=slack.base_url,
            action_timeout_s=2.0,
        )
        async with running_engine(settings):
            results = await read_topic(kafka_bootstrap, topics.results, expect=1)
            await asyncio.sleep(4.0)  # the stand-in's post lands; a second would too
        requests, messages = slack.requests, slack.messages

    (envelope,) = envelopes_by_id(results)["slow"]
    assert envelope["status"] == "error"
    assert envelope["error"]["code"] == "outcome_unknown"
    assert envelope["error"]["retryable"] is False
    assert envelope["error"]["details"] == {"sent": True}
    assert envelope["attempts"] == 1
    assert len(requests) == 1 and len(messages) == 1, "exactly one post"


async def test_slack_fatal_error_is_not_repeated_and_rate_limited_is_waited_out(
    kafka_bootstrap: str, topics: Topics
) -> None:
    with (
        VaultStandIn(tokens={("proj-a", "slack"): SLACK_TOKEN}) as vault,
        SlackStandIn(valid_tokens={SLACK_TOKEN}) as slack,
    ):
        # Slack's answers in order: fatal_error (after posting), rate_limited, then ok.
        slack.error_next(1, "fatal_error", after_post=True)
        slack.error_next(1, "rate_limited", retry_after=1)
        await create_topic(kafka_bootstrap, topics.requests, partitions=1)
        # One key, so in this order: the first meets fatal_error, the second is rate limited.
        records = [post("fatal", key="one-lane"), post("limited", key="one-lane")]
        await produce(kafka_bootstrap, topics.requests, records)
        settings = engine_settings(
            kafka_bootstrap, topics, vault_url=vault.base_url, slack_api_url=slack.base_url
        )
        async with running_engine(settings):
            results = await read_topic(kafka_bootstrap, topics.results, expect=2)
        messages = slack.messages

    by_id = envelopes_by_id(results)
    limited, fatal = by_id["limited"][0], by_id["fatal"][0]
    assert limited["status"] == "success" and limited["attempts"] == 2, limited
    assert fatal["error"]["code"] == "outcome_unknown" and fatal["attempts"] == 1, fatal
    assert fatal["error"]["details"] == {"provider_code": "fatal_error", "sent": True}
    assert [m["text"] for m in messages] == ["hello from fatal", "hello from limited"]
