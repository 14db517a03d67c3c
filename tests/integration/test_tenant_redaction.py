"""Redaction is scoped per record and structure-safe, against a real broker.

Hostile tenants store credentials chosen to break everybody's output (`request_id`,
`","status":"`) and an upstream reflects tokens cut by a size cap or escaped; another project
then works as usual. Every envelope and log event must stay whole and parseable, each record's
outputs carry none of ITS credentials (nor the engine's own Vault token), and one project's
credential is not a pattern in another project's outputs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging
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

    assert len(results) == len(cases)
    # Each finding checked on the raw bytes (keyed as Kafka keys them), so that all of them are
    # reported at once, even where an envelope is too corrupt to read.
    raw = {r.key.decode(): r.value.decode() for r in results}
    raw_events: dict[str, str] = {}
    for record in logs:
        key = record.key.decode() if record.key else ""
        raw_events[key] = raw_events.get(key, "") + record.value.decode() + "\n"
    written = {
        request_id: text + raw_events.get(request_id, "") for request_id, text in raw.items()
    }
    said = [json.loads(line) for line in raw_events.get("b-log", "").splitlines()]
    said_message = [e.get("message") for e in said if e.get("event") == "log_message"]
    findings = {
        "every envelope is whole (parseable, own request_id, every field, a status)": all(
            _whole_envelope(key, text) for key, text in raw.items()
        ),
        "every log event is whole (a record's events keyed by and carrying its request_id)": all(
            _whole_event(key, line)
            for key, lines in raw_events.items()
            for line in lines.splitlines()
        ),
        "project B's envelopes are right": '"status":"success"' in raw["b-slack"]
        and '"project":"p-b"' in raw["b-slack"],
        "project A's token is not a pattern in project B's output": said_message
        == [f"request_id status success {A_TOKEN} [REDACTED]"],
        "the engine's Vault token is scrubbed everywhere": all(
            VAULT_TOKEN not in text for text in written.values()
        ),
        "a 5-character token is redacted": SHORT_TOKEN not in written["short"]
        and "Bearer [REDACTED]" in raw["short"],
        "a cut error body leaves no more than 3 characters of the token": CUT_TOKEN[:4]
        not in written["cut-400"]
        and '"body":"' + "x" * 965 + 'Bearer [REDACTED]"' in raw["cut-400"],
        "a body cut by the response cap leaves no more than 3 characters": CUT_TOKEN[:4]
        not in written["cut-200"]
        and '"body_truncated":true' in raw["cut-200"],
        "an HTML-escaped reflection is redacted": CORE not in written["html"],
        "a \\/-escaped reflection is redacted": CORE not in written["slash"],
    }
    open_findings = [finding for finding, closed in findings.items() if not closed]
    assert open_findings == [], "\n".join(open_findings)


def _whole_event(key: str, line: str) -> bool:
    event = json.loads(line)
    if not {"event", "level", "timestamp", "service"} <= event.keys():
        return False
    # A record's events (they name its offset) carry its request_id and are keyed by it.
    return "offset" not in event or (bool(key) and event.get("request_id") == key)


def _whole_envelope(key: str, text: str) -> bool:
    try:
        envelope = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(envelope, dict)
        and envelope.keys() >= ENVELOPE_KEYS
        and envelope["request_id"] == key
        and envelope["status"] in ("success", "error")
    )
