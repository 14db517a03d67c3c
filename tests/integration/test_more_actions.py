"""send_webhook, send_email and notion_create_page through the running engine: settings reach
the actions, credentials come from the Vault, and each lands at its loopback stand-in."""

from __future__ import annotations

import json
from typing import Any

from actions.builtin.webhook_signing import delivery_id, standard_verify
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, envelopes_by_id, produce, read_topic
from tests.standins import HttpTargetStandIn, NotionStandIn, VaultStandIn
from tests.standins.smtp import SmtpStandIn

WEBHOOK_SECRET = "whsec_integration_0001"
SMTP_LOGIN = "mailer@puraify.test:smtp-integration-secret"
NOTION_TOKEN = "secret_notion_integration"
DATABASE = "d9824bdc84454327be8b5b47500af6ce"


def request(request_id: str, action: str, params: dict[str, Any]) -> Outgoing:
    return Outgoing.request(
        {"request_id": request_id, "action": action, "project": "proj-a", "params": params},
        key=request_id,
    )


async def test_webhook_email_and_notion_end_to_end(kafka_bootstrap: str, topics: Topics) -> None:
    tokens = {
        ("proj-a", "webhook"): WEBHOOK_SECRET,
        ("proj-a", "smtp"): SMTP_LOGIN,
        ("proj-a", "notion"): NOTION_TOKEN,
    }
    with (
        VaultStandIn(tokens=tokens) as vault,
        HttpTargetStandIn() as receiver,
        SmtpStandIn({"mailer@puraify.test": "smtp-integration-secret"}) as smtp,
        NotionStandIn({NOTION_TOKEN}, databases={DATABASE}) as notion,
    ):
        records = [
            request(
                "hook",
                "send_webhook",
                {"url": f"{receiver.base_url}/echo", "payload": {"user": "ada"}, "event": "x.y"},
            ),
            request(
                "mail",
                "send_email",
                {"to": ["ada@example.test"], "subject": "Welcome", "text": "Hello Ada"},
            ),
            request("page", "notion_create_page", {"database_id": DATABASE, "title": "Ada"}),
            request("page-404", "notion_create_page", {"page_id": "0" * 32, "title": "x"}),
        ]
        await create_topic(kafka_bootstrap, topics.requests, partitions=2)
        await produce(kafka_bootstrap, topics.requests, records)
        settings = engine_settings(
            kafka_bootstrap,
            topics,
            vault_url=vault.base_url,
            http_allowed_networks="127.0.0.0/8",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="none",
            smtp_from="noreply@puraify.test",
            notion_api_url=notion.base_url,
        )
        async with running_engine(settings):
            results = await read_topic(kafka_bootstrap, topics.results, expect=len(records))
        hook_requests = receiver.requests
        mails = list(smtp.received)
        pages = list(notion.created)

    by_id = envelopes_by_id(results)
    assert by_id["hook"][0]["status"] == "success", by_id["hook"]
    (hook,) = hook_requests
    assert standard_verify(WEBHOOK_SECRET, hook.headers, hook.body)
    assert hook.headers["webhook-id"] == delivery_id("proj-a", "hook")
    assert json.loads(hook.body) == {"user": "ada"}

    assert by_id["mail"][0]["status"] == "success", by_id["mail"]
    (mail,) = mails
    assert mail.rcpt_tos == ["ada@example.test"] and mail.message["Subject"] == "Welcome"
    assert by_id["mail"][0]["data"]["message_id"] == mail.message["Message-ID"]

    assert by_id["page"][0]["status"] == "success", by_id["page"]
    assert pages[0]["properties"]["title"]["title"][0]["text"]["content"] == "Ada"
    missing = by_id["page-404"][0]["error"]
    assert missing["code"] == "upstream_error"
    assert missing["details"] == {"status_code": 404, "provider_code": "object_not_found"}

    for record in results:
        for secret in (WEBHOOK_SECRET, "smtp-integration-secret", NOTION_TOKEN):
            assert secret.encode() not in record.value
