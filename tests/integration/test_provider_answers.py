"""Each provider's answers as it documents them, through the running engine, a real broker and
the loopback stand-ins: an effect applied and then answered 5xx (or answered too late) is never
applied twice, documented retryables are retried, slow providers are awaited as long as they
document, a deferred mail recipient is sent again alone, webhook ids are per project and signed
as the Standard Webhooks reference verifier expects, and a 429 pauses its quota for the fleet."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from typing import Any

from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, envelopes_by_id, produce, read_topic
from tests.standins import (
    HttpTargetStandIn,
    NotionStandIn,
    SheetsStandIn,
    SlackStandIn,
    VaultStandIn,
)
from tests.standins.smtp import SmtpStandIn
from tests.valkey_server import ValkeyServer

SMTP_USER, SMTP_PASSWORD = "mailer@puraify.test", "smtp-provider-answers"
NOTION_TOKEN = "secret_notion_provider_answers"
DATABASE = "d9824bdc84454327be8b5b47500af6ce"
# Project a stores its webhook secret bare and unpadded, project b as `whsec_` + padded base64.
SECRET_A = base64.b64encode(b"a-webhook-key-of-25-bytes").decode().rstrip("=")
SECRET_B = "whsec_" + base64.b64encode(b"b-webhook-key-of-25-bytes").decode()


def request(
    request_id: str, action: str, params: dict[str, Any], *, key: str, project: str = "proj-a"
) -> Outgoing:
    body = {"request_id": request_id, "action": action, "project": project, "params": params}
    return Outgoing.request(body, key=key)


def reference_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks reference verifier's algorithm (standard-webhooks/standard-webhooks,
    libraries/python/standardwebhooks/webhooks.py): `whsec_` stripped when present, the rest
    decoded with `base64.b64decode(rest + "==")`, HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    rest = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    key = base64.b64decode(rest + "==")
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return f"v1,{expected}" in headers["webhook-signature"].split()


async def test_no_effect_twice_and_documented_retries(kafka_bootstrap: str, topics: Topics) -> None:
    tokens = {
        ("proj-a", "google_sheets"): "ya29.provider-answers",
        ("proj-a", "notion"): NOTION_TOKEN,
        ("proj-a", "slack"): "xoxb-provider-answers",
        ("proj-a", "smtp"): f"{SMTP_USER}:{SMTP_PASSWORD}",
        ("proj-a", "webhook"): SECRET_A,
        ("proj-b", "webhook"): SECRET_B,
    }
    with (
        VaultStandIn(tokens=tokens) as vault,
        SheetsStandIn() as sheets,
        NotionStandIn({NOTION_TOKEN}, databases={DATABASE}) as notion,
        SlackStandIn() as slack,
        HttpTargetStandIn() as receiver,
        SmtpStandIn({SMTP_USER: SMTP_PASSWORD}) as smtp,
    ):
        google_unavailable = {"error": {"code": 503, "status": "UNAVAILABLE", "message": "m"}}
        sheets.fail_after_applying(1, 503, body=google_unavailable)  # sheet-503
        sheets.answer_late(1, 2.5)  # sheet-late: written, answered after GOOGLE_SHEETS_TIMEOUT_S
        notion.answer_late(1, 3.0)  # page-slow: Notion may take up to 60 s
        notion_unavailable = {"object": "error", "status": 503, "code": "service_unavailable"}
        notion.fail_after_applying(1, 503, body=notion_unavailable)  # page-503
        notion.overload_next(1, retry_after=1)  # page-529
        slack.fail_after_applying(1, 503)  # slack-503
        page = {"database_id": DATABASE, "title": "Ada"}
        mail = {"subject": "Hi", "text": "Hello"}
        hook = {"url": f"{receiver.base_url}/echo", "payload": {"order": 1}}
        records = [
            request("sheet-503", "create_sheet", {"spreadsheet_id": "S1", "values": [1]}, key="s"),
            request("sheet-late", "create_sheet", {"spreadsheet_id": "S1", "values": [2]}, key="s"),
            request("page-slow", "notion_create_page", page, key="n"),
            request("page-503", "notion_create_page", page, key="n"),
            request("page-529", "notion_create_page", page, key="n"),
            request("slack-503", "send_slack", {"channel": "#general", "message": "m"}, key="k"),
            request("order-1", "send_webhook", hook, key="hook-a"),
            request("order-1", "send_webhook", hook, key="hook-b", project="proj-b"),
            request(
                "mail-grey",
                "send_email",
                {"to": ["ada@a.test", "bob@greylist.test"], **mail},
                key="m1",
            ),
            request(
                "mail-busy",
                "send_email",
                {"to": ["cy@a.test", "busy@deferred.test"], **mail},
                key="m2",
            ),
            request("mail-slow", "send_email", {"to": ["dan@slow.test"], **mail}, key="m3"),
        ]
        await create_topic(kafka_bootstrap, topics.requests, partitions=3)
        await produce(kafka_bootstrap, topics.requests, records)
        settings = engine_settings(
            kafka_bootstrap,
            topics,
            vault_url=vault.base_url,
            google_sheets_api_url=sheets.base_url,
            google_sheets_timeout_s=1.0,
            notion_api_url=notion.base_url,
            slack_api_url=slack.base_url,
            http_allowed_networks="127.0.0.0/8",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_from="noreply@puraify.test",
            smtp_timeout_s=1.0,  # commands; the reply to DATA's dot has SMTP_DATA_TIMEOUT_S
            action_timeout_s=2.0,  # shorter than Notion's documented 60 s
        )
        async with running_engine(settings):
            results = await read_topic(kafka_bootstrap, topics.results, expect=len(records))
            await asyncio.sleep(1.0)  # sheet-late's row lands; a repeated call would too
        rows, pages, messages = sheets.rows, list(notion.created), slack.messages
        deliveries, mails = receiver.requests, list(smtp.received)

    by_id = envelopes_by_id(results)

    def outcome(request_id: str, project: str = "proj-a") -> tuple[str, int]:
        (envelope,) = [e for e in by_id[request_id] if e["project"] == project]
        error = envelope["error"]
        return (error["code"] if error else "success"), envelope["attempts"]

    # Applied, then 5xx (Google: UNAVAILABLE "not always safe to retry non-idempotent"), or
    # answered late: never written again.
    assert outcome("sheet-503") == ("outcome_unknown", 1)
    assert outcome("sheet-late") == ("outcome_unknown", 1)
    assert rows == {"S1": [[1], [2]]}, "one row per append"
    # Notion: a slow create is awaited; a 503 after creating is not repeated; 529 is retried.
    assert outcome("page-slow") == ("success", 1)
    assert outcome("page-503") == ("outcome_unknown", 1)
    assert outcome("page-529") == ("success", 2)
    assert len(pages) == 3, "one page per request"
    assert outcome("slack-503") == ("outcome_unknown", 1)
    assert len(messages) == 1

    # Two projects, one request id: two webhook ids, each verified as the reference does.
    assert outcome("order-1") == ("success", 1) and outcome("order-1", "proj-b") == ("success", 1)
    ids = {d.headers["webhook-id"] for d in deliveries}
    assert len(deliveries) == 2 and len(ids) == 2 and not any("." in i for i in ids)
    secrets = [SECRET_A, SECRET_B]
    for delivery in deliveries:
        assert any(reference_verify(s, delivery.headers, delivery.body) for s in secrets)
    assert json.loads(deliveries[0].body) == {"order": 1}

    # Mail: the greylisted recipient alone, again; the deferred one named; the slow reply waited.
    assert outcome("mail-grey") == ("success", 1)
    assert outcome("mail-busy") == ("success", 1)
    assert outcome("mail-slow") == ("success", 1)
    rcpts = sorted(m.rcpt_tos for m in mails)
    assert rcpts == [["ada@a.test"], ["bob@greylist.test"], ["cy@a.test"], ["dan@slow.test"]]
    (busy,) = by_id["mail-busy"][0]["data"]["undelivered"]
    assert (busy["recipient"], busy["smtp_code"], busy["retryable"]) == (
        "busy@deferred.test",
        450,
        True,
    )


async def test_a_429_pauses_the_workspace_for_every_request_of_the_fleet(
    kafka_bootstrap: str, topics: Topics, state_server: ValkeyServer
) -> None:
    channels = {"#general": "CGEN00001", "#other": "COTHER001"}
    with (
        VaultStandIn(tokens={("proj-a", "slack"): "xoxb-pause"}) as vault,
        SlackStandIn(channels=channels) as slack,
    ):
        slack.rate_limit_next(1, retry_after=2)
        await create_topic(kafka_bootstrap, topics.requests, partitions=2)
        settings = engine_settings(
            kafka_bootstrap,
            topics,
            vault_url=vault.base_url,
            slack_api_url=slack.base_url,
            state_url=state_server.url,
            state_prefix=topics.group,
        )
        async with running_engine(settings):
            general = {"channel": "#general", "message": "first"}
            await produce(
                kafka_bootstrap, topics.requests, [request("a", "send_slack", general, key="a")]
            )
            await asyncio.to_thread(slack.wait_for_requests, 1, 30.0)
            limited_at = time.time()
            await asyncio.sleep(0.3)  # the engine reads the 429 and pauses the workspace
            other = {"channel": "#other", "message": "second"}
            await produce(
                kafka_bootstrap, topics.requests, [request("b", "send_slack", other, key="b")]
            )
            results = await read_topic(kafka_bootstrap, topics.results, expect=2)
        calls = slack.requests

    by_id = envelopes_by_id(results)
    assert by_id["a"][0]["status"] == "success" and by_id["a"][0]["attempts"] == 2
    assert by_id["b"][0]["status"] == "success" and by_id["b"][0]["attempts"] == 1
    (other_call,) = [c for c in calls if c.json()["channel"] == "#other"]
    # Another channel of the workspace waited out the Retry-After instead of spending quota.
    assert other_call.received_at - limited_at >= 1.7, other_call.received_at - limited_at
