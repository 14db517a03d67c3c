"""Redaction is scoped per record and structure-safe, against a real broker.

Hostile tenants store credentials chosen to break everybody's output (`request_id`,
`","status":"`) and an upstream reflects tokens cut by a size cap or escaped; another project
then works as usual. Every envelope and log event must stay whole and parseable, each record's
outputs carry none of ITS credentials (nor the engine's own Vault token), and one project's
credential is not a pattern in another project's outputs.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from consumer.ops.logging import KafkaLogSink, configure_logging
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, produce, read_topic
from tests.standins import HttpTargetStandIn, SlackStandIn, VaultStandIn

CORE = uuid.uuid4().hex[:16]
VAULT_TOKEN = f"engine-vault-{CORE}"
B_TOKEN = f"xoxb-project-b-{CORE}"
A_TOKEN = f"tok-project-a-{CORE}"
SHORT_TOKEN = "k3Y9z"  # five characters: a real (if weak) token, redacted like any other
CUT_TOKEN = f"SECRETtoken-{CORE}x"  # 29 characters: the cut at 1,000 leaves 28 of them
ESCAPED_TOKEN = f"tok/{CORE}<&>'q"
CAP = 2048
ENVELOPE_KEYS = {
    "request_id",
    "action",
    "project",
    "status",
    "data",
    "error",
    "attempts",
    "started_at",
    "finished_at",
    "duration_ms",
    "metadata",
    "environment",
}


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    tokens = {
        ("p-weapon-1", "slack"): "request_id",
        ("p-weapon-2", "slack"): '","status":"',
        ("p-b", "slack"): B_TOKEN,
        ("p-a", "target"): A_TOKEN,
        ("p-short", "target"): SHORT_TOKEN,
        ("p-cut", "target"): CUT_TOKEN,
        ("p-escaped", "target"): ESCAPED_TOKEN,
    }
    with VaultStandIn(tokens=tokens, required_bearer=VAULT_TOKEN) as server:
        yield server


def request(request_id: str, action: str, project: str, params: dict[str, Any]) -> Outgoing:
    body = {"request_id": request_id, "action": action, "project": project, "params": params}
    # One key: executed in this order, so the hostile credentials are fetched first.
    return Outgoing.request(body, key="one-lane")


async def test_hostile_credentials_and_reflections_harm_no_output(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn
) -> None:
    with SlackStandIn(valid_tokens={B_TOKEN}) as slack, HttpTargetStandIn() as target:
        cred = {"service": "target"}
        reflect = f"{target.base_url}/reflect"
        slack_params = {"channel": "#general", "message": "hi request_id"}
        cases = [
            request("w1", "send_slack", "p-weapon-1", slack_params),
            request("w2", "send_slack", "p-weapon-2", slack_params),
            request(
                "a-echo",
                "http_request",
                "p-a",
                {"url": f"{target.base_url}/echo", "credential": cred},
            ),
            request("b-slack", "send_slack", "p-b", slack_params),
            request(
                "b-log",
                "log_message",
                "p-b",
                {
                    "message": f"request_id status success {A_TOKEN} {VAULT_TOKEN}",
                    "fields": {"status": "ok"},
                },
            ),
            request(
                "short",
                "http_request",
                "p-short",
                {"url": f"{target.base_url}/echo", "credential": cred},
            ),
            # 965 bytes of padding, then `Bearer <token>`: the error body is cut at 1,000.
            request(
                "cut-400",
                "http_request",
                "p-cut",
                {"url": reflect, "query": {"pad": 965, "status": 400}, "credential": cred},
            ),
            # The body cap (CAP bytes) falls 8 characters before the token's end.
            request(
                "cut-200",
                "http_request",
                "p-cut",
                {
                    "url": reflect,
                    "query": {"pad": CAP - 7 - len(CUT_TOKEN) + 8},
                    "credential": cred,
                },
            ),
            request(
                "html",
                "http_request",
                "p-escaped",
                {"url": reflect, "query": {"style": "html"}, "credential": cred},
            ),
            request(
                "slash",
                "http_request",
                "p-escaped",
                {"url": reflect, "query": {"style": "slash"}, "credential": cred},
            ),
        ]
        await create_topic(kafka_bootstrap, topics.requests, partitions=1)
        await produce(kafka_bootstrap, topics.requests, cases)
        sink = KafkaLogSink()
        configure_logging("info", sink=sink)
        settings = engine_settings(
            kafka_bootstrap,
            topics,
            vault_url=vault.base_url,
            vault_token=VAULT_TOKEN,
            slack_api_url=slack.base_url,
            http_allowed_networks="127.0.0.0/8",
            http_max_response_bytes=CAP,
            retry_max_attempts=1,
        )
        async with running_engine(settings, log_sink=sink):
            results = await read_topic(kafka_bootstrap, topics.results, expect=len(cases))
        logs = await read_topic(kafka_bootstrap, topics.logs, expect=3 * len(cases))
        reflected = [r.headers.get("authorization", "") for r in target.requests]
    assert f"Bearer {CUT_TOKEN}" in reflected and f"Bearer {SHORT_TOKEN}" in reflected

    # Every envelope whole: parseable, its own request_id, the contract's fields, a status.
    assert len(results) == len(cases)
    envelopes: dict[str, dict[str, Any]] = {}
    for record in results:
        text = record.value.decode()
        envelope = json.loads(text)
        assert isinstance(envelope, dict), text
        assert envelope.keys() >= ENVELOPE_KEYS, text
        assert envelope["request_id"] == record.key.decode(), text
        assert envelope["status"] in ("success", "error"), text
        envelopes[envelope["request_id"]] = envelope
    assert envelopes["b-slack"]["status"] == "success"
    assert envelopes["b-slack"]["project"] == "p-b"
    assert envelopes["b-log"]["status"] == "success"
    assert envelopes["w1"]["project"] == "p-weapon-1"

    # Every log event whole, and the other project's text kept as it was written.
    events = [json.loads(r.value) for r in logs]
    assert all({"event", "level", "timestamp"} <= e.keys() for e in events), events
    b_events = [e for e in events if e.get("request_id") in ("b-slack", "b-log")]
    assert b_events and all(e["project"] == "p-b" for e in b_events)
    [said] = [e for e in events if e["event"] == "log_message"]
    # Project A's token is not a pattern in project B's output; the engine's own Vault token is.
    assert said["message"] == f"request_id status success {A_TOKEN} [REDACTED]"
    assert said["fields"] == {"status": "ok"}

    # Each record's own credentials never appear in its outputs, in any spelling or in part.
    written = {
        request_id: json.dumps(envelope)
        + "".join(json.dumps(e) for e in events if e.get("request_id") == request_id)
        for request_id, envelope in envelopes.items()
    }
    assert SHORT_TOKEN not in written["short"]
    assert "Bearer [REDACTED]" in json.dumps(envelopes["short"]["data"])
    cut_body = envelopes["cut-400"]["error"]["details"]["body"]
    assert cut_body == "x" * 965 + "Bearer [REDACTED]", cut_body
    assert envelopes["cut-200"]["data"]["body_truncated"] is True
    assert envelopes["cut-200"]["data"]["body"].endswith("Bearer [REDACTED]")
    for request_id in ("cut-400", "cut-200"):
        assert CUT_TOKEN[:4] not in written[request_id]
    for request_id in ("html", "slash"):
        assert CORE not in written[request_id]
        assert html.escape(ESCAPED_TOKEN) not in written[request_id]
    assert all(VAULT_TOKEN not in text for text in written.values())
