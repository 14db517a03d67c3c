"""The engine against a real broker: every error code of the contract, end to end.

One batch of requests covering every outcome goes in; exactly one envelope per record comes out,
unreadable records also land byte for byte on the dead-letter topic, offsets are committed, log
events reach the logs topic, and no credential appears anywhere the engine wrote.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actions.egress import IPAddress, system_resolver
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging
from schemas import OUTCOME_EVENTS
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import (
    Outgoing,
    committed_total,
    create_topic,
    envelopes_by_id,
    produce,
    read_topic,
)
from tests.integration.testing_actions import Crash, registry_with
from tests.standins import HttpTargetStandIn, SheetsStandIn, SlackStandIn, VaultStandIn

SLACK_TOKEN = "xoxb-test-secret-AAAA111122223333"
SHEETS_TOKEN = "ya29.test-secret-BBBB44445555"
TARGET_TOKEN = "tgt-test-secret-CCCC66667777"
SECRETS = (SLACK_TOKEN, SHEETS_TOKEN, TARGET_TOKEN)


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    tokens = {
        ("proj-a", "slack"): SLACK_TOKEN,
        ("proj-a", "google_sheets"): SHEETS_TOKEN,
        ("proj-a", "target"): TARGET_TOKEN,
    }
    with VaultStandIn(tokens=tokens, required_bearer="engine-vault-token") as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(valid_tokens={SLACK_TOKEN}, channels={"#general": "C024BE91L"}) as server:
        yield server


@pytest.fixture
def sheets() -> Iterator[SheetsStandIn]:
    with SheetsStandIn(valid_tokens={SHEETS_TOKEN}, spreadsheets={"sheet-1"}) as server:
        yield server


@pytest.fixture
def target() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


async def metadata_resolver(host: str, port: int) -> Sequence[IPAddress]:
    """`metadata.test` answers like a cloud metadata endpoint; the engine must never connect."""
    if host == "metadata.test":
        return [ipaddress.ip_address("169.254.169.254")]
    return await system_resolver(host, port)


def request(request_id: str, action: str, params: dict[str, Any], **extra: Any) -> Outgoing:
    body = {"request_id": request_id, "action": action, "project": "proj-a", "params": params}
    body.update(extra)
    return Outgoing.request(body, key=request_id)


async def test_every_outcome_yields_exactly_one_envelope(
    kafka_bootstrap: str,
    topics: Topics,
    vault: VaultStandIn,
    slack: SlackStandIn,
    sheets: SheetsStandIn,
    target: HttpTargetStandIn,
) -> None:
    echo = f"{target.base_url}/echo"
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    oversized = json.dumps(
        {"action": "log_message", "project": "proj-a", "params": {"message": "x" * 5000}}
    ).encode()
    cases: list[tuple[str, Outgoing, str | None]] = [
        ("ok-log", request("ok-log", "log_message", {"message": "hi", "fields": {"n": 1}}), None),
        (
            "bad-utf8",
            Outgoing(b"\xff\xfe{}", headers=(("request-id", b"bad-utf8"),)),
            "invalid_json",
        ),
        (
            "bad-json",
            Outgoing(b'{"action": ', headers=(("request-id", b"bad-json"),)),
            "invalid_json",
        ),
        ("bad-array", Outgoing(b"[1, 2]", headers=(("request-id", b"bad-array"),)), "invalid_json"),
        (
            "tombstone",
            Outgoing(None, key=b"k", headers=(("request-id", b"tombstone"),)),
            "invalid_json",
        ),
        (
            "no-project",
            Outgoing.request({"request_id": "no-project", "action": "log_message", "params": {}}),
            "invalid_request",
        ),
        (
            "typo-field",
            Outgoing.request(
                {
                    "request_id": "typo-field",
                    "action": "log_message",
                    "project": "proj-a",
                    "params": {"message": "x"},
                    "paramz": {},
                }
            ),
            "invalid_request",
        ),
        (
            "too-big",
            Outgoing(oversized, headers=(("request-id", b"too-big"),)),
            "payload_too_large",
        ),
        ("no-such-action", request("no-such-action", "send_fax", {}), "unknown_action"),
        (
            "bad-params",
            request("bad-params", "send_slack", {"message": "no channel"}),
            "invalid_params",
        ),
        (
            "no-creds",
            Outgoing.request(
                {
                    "request_id": "no-creds",
                    "action": "send_slack",
                    "project": "proj-b",
                    "params": {"channel": "#general", "message": "hi"},
                }
            ),
            "missing_credentials",
        ),
        (
            "slack-ok",
            request("slack-ok", "send_slack", {"channel": "#general", "message": "hi"}),
            None,
        ),
        (
            "slack-no-channel",
            request("slack-no-channel", "send_slack", {"channel": "#nowhere", "message": "hi"}),
            "upstream_error",
        ),
        (
            "sheet-ok",
            request(
                "sheet-ok", "create_sheet", {"spreadsheet_id": "sheet-1", "values": ["a", 1, True]}
            ),
            None,
        ),
        (
            "sheet-missing",
            request("sheet-missing", "create_sheet", {"spreadsheet_id": "nope", "values": ["a"]}),
            "upstream_error",
        ),
        (
            "http-ok",
            request(
                "http-ok",
                "http_request",
                {
                    "url": echo,
                    "method": "POST",
                    "json": {"a": 1},
                    "credential": {"service": "target"},
                },
            ),
            None,
        ),
        (
            "http-metadata",
            request("http-metadata", "http_request", {"url": "http://metadata.test/latest"}),
            "forbidden_destination",
        ),
        (
            "http-503",
            request("http-503", "http_request", {"url": f"{target.base_url}/status/503"}),
            "upstream_unavailable",
        ),
        (
            "http-404",
            request("http-404", "http_request", {"url": f"{target.base_url}/status/404"}),
            "upstream_error",
        ),
        (
            "http-429",
            request("http-429", "http_request", {"url": f"{target.base_url}/status/429"}),
            "rate_limited",
        ),
        (
            "late",
            request("late", "log_message", {"message": "too late"}, deadline=past),
            "deadline_exceeded",
        ),
        ("crash", request("crash", "test_crash", {}), "internal_error"),
    ]
    # A record without any id gets the deterministic one: <topic>:<partition>:<offset>.
    anonymous = Outgoing(b"not json at all")

    await create_topic(kafka_bootstrap, topics.requests, partitions=3)
    await produce(kafka_bootstrap, topics.requests, [c[1] for c in cases] + [anonymous])

    sink = KafkaLogSink()
    configure_logging("info", sink=sink)
    settings = engine_settings(
        kafka_bootstrap,
        topics,
        vault_url=vault.base_url,
        vault_token="engine-vault-token",
        slack_api_url=slack.base_url,
        google_sheets_api_url=sheets.base_url,
        http_allowed_networks="127.0.0.0/8",
        max_record_bytes=4096,
        retry_max_attempts=2,
    )
    async with running_engine(
        settings, registry=registry_with(Crash()), resolver=metadata_resolver, log_sink=sink
    ):
        results = await read_topic(kafka_bootstrap, topics.results, expect=len(cases) + 1)

    by_id = envelopes_by_id(results)
    assert len(results) == len(cases) + 1, "exactly one envelope per record"
    for request_id, _, code in cases:
        assert len(by_id[request_id]) == 1, request_id
        envelope = by_id[request_id][0]
        if code is None:
            assert envelope["status"] == "success", envelope
            assert envelope["error"] is None
        else:
            assert envelope["status"] == "error", envelope
            assert envelope["data"] is None
            assert envelope["error"]["code"] == code, envelope
            assert envelope["error"]["retryable"] is (
                code in ("vault_unavailable", "upstream_unavailable", "rate_limited")
            )
    anonymous_ids = [i for i in by_id if i.startswith(f"{topics.requests}:")]
    assert len(anonymous_ids) == 1 and by_id[anonymous_ids[0]][0]["error"]["code"] == "invalid_json"

    # What each outcome says.
    assert by_id["slack-ok"][0]["data"] == {
        "slack_message_id": slack.messages[0]["ts"],
        "channel": "C024BE91L",
    }
    assert by_id["slack-no-channel"][0]["error"]["details"]["provider_code"] == "channel_not_found"
    assert by_id["sheet-ok"][0]["data"]["updated_rows"] == 1
    assert sheets.rows["sheet-1"] == [["a", 1, True]]
    assert by_id["sheet-missing"][0]["error"]["details"]["status_code"] == 404
    assert by_id["http-ok"][0]["data"]["status_code"] == 200
    assert by_id["http-ok"][0]["data"]["body"]["json"] == {"a": 1}
    assert by_id["http-ok"][0]["data"]["body"]["headers"]["idempotency-key"] == "http-ok"
    assert by_id["http-503"][0]["attempts"] == 2
    assert "params.channel" in by_id["bad-params"][0]["error"]["message"]
    assert "paramz" in by_id["typo-field"][0]["error"]["message"]
    assert by_id["ok-log"][0]["action"] == "log_message"
    assert by_id["bad-utf8"][0]["action"] is None and by_id["bad-utf8"][0]["project"] is None
    assert "secret-path" not in json.dumps(by_id["crash"][0])
    assert by_id["late"][0]["attempts"] == 0
    # The engine sent its own Vault token and the project's tokens only where they belong.
    assert all(r.headers["authorization"] == "Bearer engine-vault-token" for r in vault.requests)
    assert slack.messages[0]["token"] == SLACK_TOKEN

    # Dead letters: the unreadable records, byte for byte, with the contract's headers.
    dead = await read_topic(kafka_bootstrap, topics.dead_letter, expect=8)
    originals = {
        c[0]: c[1]
        for c in cases
        if c[2] in ("invalid_json", "invalid_request", "payload_too_large")
    }
    assert len(dead) == len(originals) + 1
    by_source: dict[bytes | None, dict[str, str]] = {}
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["source-topic"] == topics.requests
        assert headers["source-offset"].isdigit() and headers["source-partition"].isdigit()
        by_source[record.value] = headers
    for request_id, outgoing in originals.items():
        headers = by_source[outgoing.value]  # the original bytes, unchanged
        assert headers["error-code"] == by_id[request_id][0]["error"]["code"], request_id
        assert headers["error-message"] == by_id[request_id][0]["error"]["message"]
    assert by_source[b"not json at all"]["error-code"] == "invalid_json"

    # Every consumed offset is committed.
    assert await committed_total(kafka_bootstrap, topics.group, topics.requests) == len(cases) + 1

    # Log events reached the logs topic, keyed by request_id.
    logs = await read_topic(kafka_bootstrap, topics.logs, expect=len(cases) + 1, grace_s=1.0)
    events = [json.loads(r.value) for r in logs]
    names = {e["event"] for e in events}
    assert {
        "request.invalid",
        "action.succeeded",
        "action.failed",
        "action.retrying",
        "log_message",
        "engine.started",
    } <= names
    # One outcome event per request (the canonical log line); received/started are debug.
    assert not names & {"request.received", "action.started"}
    outcomes = [e for e in events if e["event"] in OUTCOME_EVENTS]
    assert len(outcomes) == len(cases) + 1
    assert sorted(e["request_id"] for e in outcomes) == sorted(by_id)
    for outcome in outcomes:
        assert {"partition", "offset", "attempts", "duration_ms", "queued_ms"} <= set(outcome)
    logged = next(e for e in events if e["event"] == "log_message")
    assert logged["message"] == "hi" and logged["fields"] == {"n": 1}
    assert logged["request_id"] == "ok-log" and logged["service"] == "execution-engine"

    # No credential anywhere the engine wrote, although the echo target reflected one back.
    for record in [*results, *dead, *logs]:
        for secret in SECRETS:
            assert secret.encode() not in (record.value or b""), secret
