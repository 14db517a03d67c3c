"""Valid but unusual values through the running engine on a real broker: a non-ASCII request id
reaches the receivers' Idempotency-Key, a mail subject with a line separator or NUL is refused
before SMTP, and an upstream's lone surrogates stay (escaped) in the envelope."""

from __future__ import annotations

from email.header import decode_header, make_header
from typing import Any

from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, envelopes_by_id, produce, read_topic
from tests.standins import HttpTargetStandIn, VaultStandIn
from tests.standins.smtp import SmtpStandIn
from tests.standins.surrogate_json import KEPT, SurrogateJsonStandIn


def request(request_id: str, action: str, params: dict[str, Any]) -> Outgoing:
    return Outgoing.request(
        {"request_id": request_id, "action": action, "project": "proj-a", "params": params},
        key="one-lane",
    )


def mail(subject: str) -> dict[str, Any]:
    return {"to": ["ada@example.test"], "subject": subject, "text": "Hello"}


async def test_unusual_values_end_to_end(kafka_bootstrap: str, topics: Topics) -> None:
    tokens = {("proj-a", "webhook"): "whsec_e2e_0001", ("proj-a", "smtp"): "m@puraify.test:pw"}
    with (
        VaultStandIn(tokens=tokens) as vault,
        HttpTargetStandIn() as target,
        SurrogateJsonStandIn() as surrogates,
        SmtpStandIn({"m@puraify.test": "pw"}) as smtp,
    ):
        records = [
            request("café-1", "http_request", {"url": f"{target.base_url}/echo"}),
            request(
                "café-2",
                "send_webhook",
                {"url": f"{target.base_url}/echo", "payload": {"n": 1}},
            ),
            request("mail-nul", "send_email", mail("Hi\x00Bcc: victim@evil.test")),
            request("mail-u2028", "send_email", mail("Hi\u2028Bcc: victim@evil.test")),
            request("mail-nel", "send_email", mail("Hi\x85there")),
            request("mail-ok", "send_email", mail("Hi ✓")),
            request("lone", "http_request", {"url": f"{surrogates.base_url}/answer"}),
        ]
        await create_topic(kafka_bootstrap, topics.requests, partitions=1)
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
        )
        async with running_engine(settings):
            results = await read_topic(kafka_bootstrap, topics.results, expect=len(records))
        received = target.requests
        mails = list(smtp.received)

    by_id = envelopes_by_id(results)
    assert set(by_id) == {
        "café-1",
        "café-2",
        "mail-nul",
        "mail-u2028",
        "mail-nel",
        "mail-ok",
        "lone",
    }
    assert by_id["café-1"][0]["status"] == "success", by_id["café-1"]
    assert by_id["café-2"][0]["status"] == "success", by_id["café-2"]
    # http_request's Idempotency-Key, send_webhook's Puraify-Delivery: the request id, ASCII.
    keys = [r.headers.get("puraify-delivery", r.headers["idempotency-key"]) for r in received]
    assert keys == ["UTF-8''caf%C3%A9-1", "UTF-8''caf%C3%A9-2"]
    for refused in ("mail-nul", "mail-u2028", "mail-nel"):
        error = by_id[refused][0]["error"]
        assert error["code"] == "invalid_params" and "subject" in error["message"], error
        assert by_id[refused][0]["attempts"] == 0
    assert by_id["mail-ok"][0]["status"] == "success"
    (sent,) = mails  # the refused ones never left
    assert sent.rcpt_tos == ["ada@example.test"]
    assert str(make_header(decode_header(sent.message["Subject"]))) == "Hi ✓"
    assert by_id["lone"][0]["status"] == "success", by_id["lone"]
    assert by_id["lone"][0]["data"]["body"] == KEPT
