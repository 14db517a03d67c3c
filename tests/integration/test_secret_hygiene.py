"""No secret the engine holds appears in anything it writes.

Distinctive secrets are planted in the Vault stand-in (and the engine's own Vault token). The
real `execution-engine run` process then uses them on every path that touches a credential:
success, third-party retries and rate limits, a revoked token re-fetched, a destination that
echoes the credential back, 5xx answers, a Vault that fails first, a token no HTTP header can
carry (its error text), a cross-origin redirect. Everything it wrote is scanned: the results,
logs and dead-letter topics (values, keys, headers), its stdout and stderr. Each secret is
searched in every spelling it could take (raw, JSON-escaped, Python repr, URL-encoded, base64
at every alignment) and by its random core alone, which survives truncation and most escaping.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.integration.conftest import Topics
from tests.integration.kafka_io import Outgoing, produce, read_topic
from tests.integration.test_cli import COMMAND, cli_env
from tests.standins import HttpTargetStandIn, SheetsStandIn, SlackStandIn, VaultStandIn


def planted(kind: str) -> tuple[str, str]:
    """A secret with characters that every encoding spells differently, and its random core."""
    core = uuid.uuid4().hex
    return f'{kind}-{core}/"q"\\+x=y', core


VAULT_TOKEN, VAULT_CORE = planted("vault")
SLACK_TOKEN, SLACK_CORE = planted("xoxb")
SHEETS_TOKEN, SHEETS_CORE = planted("ya29")
TARGET_TOKEN, TARGET_CORE = planted("tgt")
REVOKED_TOKEN, REVOKED_CORE = planted("xoxb-old")
# A newline cannot go into an HTTP header: an error message that quoted the value would leak it.
UNSENDABLE_TOKEN, UNSENDABLE_CORE = planted("bad")
UNSENDABLE_TOKEN += "\n"
SECRETS = {
    VAULT_TOKEN: VAULT_CORE,
    SLACK_TOKEN: SLACK_CORE,
    SHEETS_TOKEN: SHEETS_CORE,
    TARGET_TOKEN: TARGET_CORE,
    REVOKED_TOKEN: REVOKED_CORE,
    UNSENDABLE_TOKEN: UNSENDABLE_CORE,
}


def needles(secret: str, core: str) -> set[bytes]:
    """The test's own list of spellings (independent of consumer.secrets.redaction)."""
    texts = {
        secret,
        core,
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        repr(secret.encode())[2:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
    }
    found = {t.encode() for t in texts}
    for value in (secret.encode(), core.encode()):
        for offset in range(3):
            encoded = base64.b64encode(bytes(offset) + value)
            # Keep the middle, which depends on the value's bytes alone.
            found.add(encoded[4:-4])
            found.add(base64.urlsafe_b64encode(bytes(offset) + value)[4:-4])
    return found


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    tokens = {
        ("proj-a", "slack"): SLACK_TOKEN,
        ("proj-r", "slack"): REVOKED_TOKEN,
        ("proj-a", "google_sheets"): SHEETS_TOKEN,
        ("proj-a", "target"): TARGET_TOKEN,
        ("proj-a", "unsendable"): UNSENDABLE_TOKEN,
    }
    with VaultStandIn(tokens=tokens, required_bearer=VAULT_TOKEN) as server:
        yield server


def request(request_id: str, action: str, params: dict[str, Any], project: str = "proj-a") -> Any:
    body = {"request_id": request_id, "action": action, "project": project, "params": params}
    return Outgoing.request(body, key=request_id)


def start_engine(env: dict[str, str], out: Path, err: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([*COMMAND, "run"], env=env, stdout=stdout, stderr=stderr)
    deadline = time.monotonic() + 60
    while b'"partitions.assigned"' not in out.read_bytes():
        assert process.poll() is None, f"the engine exited early:\n{err.read_text()}"
        assert time.monotonic() < deadline, "the engine did not join its group in 60 s"
        time.sleep(0.1)
    return process


async def test_no_secret_appears_anywhere_the_engine_writes(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, tmp_path: Path
) -> None:
    with (
        SlackStandIn(valid_tokens={SLACK_TOKEN}) as slack,
        SheetsStandIn(valid_tokens={SHEETS_TOKEN}, spreadsheets={"sheet-1"}) as sheets,
        HttpTargetStandIn() as target,
    ):
        slack.revoke(REVOKED_TOKEN)
        env = cli_env(kafka_bootstrap, topics)
        env.update(
            {
                "VAULT_URL": vault.base_url,
                "VAULT_TOKEN": VAULT_TOKEN,
                "SLACK_API_URL": slack.base_url,
                "GOOGLE_SHEETS_API_URL": sheets.base_url,
                "EXECUTION_HTTP_ALLOWED_NETWORKS": "127.0.0.0/8",
                "EXECUTION_LOG_LEVEL": "debug",
                "EXECUTION_RETRY_BASE_DELAY_S": "0.01",
                "EXECUTION_RETRY_MAX_DELAY_S": "0.05",
                "EXECUTION_RETRY_MAX_ATTEMPTS": "3",
                "EXECUTION_RETRY_AFTER_MAX_S": "2",
                # Make the process as talkative as it can be.
                "PYTHONWARNINGS": "always",
                "PYTHONASYNCIODEBUG": "1",
            }
        )
        out, err = tmp_path / "stdout", tmp_path / "stderr"
        engine = start_engine(env, out, err)
        try:
            # Failures that make the engine retry and log: Vault 503 once, Slack 429 once.
            vault.fail_next(1, 503, body={"error": "try again"})
            slack.rate_limit_next(1, retry_after=1)
            cred = {"service": "target"}
            # The other origin of a redirect: localhost vs 127.0.0.1.
            elsewhere = f"http://localhost:{target.port}/echo"
            cases = [
                request("slack", "send_slack", {"channel": "#general", "message": "hi"}),
                request(
                    "slack-revoked",
                    "send_slack",
                    {"channel": "#general", "message": "hi"},
                    "proj-r",
                ),
                request("sheet", "create_sheet", {"spreadsheet_id": "sheet-1", "values": ["a", 1]}),
                request(
                    "echo", "http_request", {"url": f"{target.base_url}/echo", "credential": cred}
                ),
                request(
                    "basic",
                    "http_request",
                    {
                        "url": f"{target.base_url}/headers",
                        "credential": {**cred, "prefix": "Basic "},
                    },
                ),
                request(
                    "custom-header",
                    "http_request",
                    {
                        "url": f"{target.base_url}/echo",
                        "credential": {**cred, "header": "X-Api-Key", "prefix": ""},
                    },
                ),
                request(
                    "5xx",
                    "http_request",
                    {"url": f"{target.base_url}/status/500", "credential": cred},
                ),
                request(
                    "redirect",
                    "http_request",
                    {
                        "url": f"{target.base_url}/redirect",
                        "query": {"to": elsewhere},
                        "credential": cred,
                    },
                ),
                request(
                    "unsendable",
                    "http_request",
                    {"url": f"{target.base_url}/echo", "credential": {"service": "unsendable"}},
                ),
                request(
                    "log",
                    "log_message",
                    {"message": "no secret here", "fields": {"token": "x" * 8}},
                ),
                Outgoing(b"{not json", headers=(("request-id", b"bad-json"),)),
            ]
            await produce(kafka_bootstrap, topics.requests, cases)
            results = await read_topic(kafka_bootstrap, topics.results, expect=len(cases))
        finally:
            engine.send_signal(signal.SIGTERM)
            exit_code = engine.wait(timeout=60)
        assert exit_code == 0, err.read_text()
        logs = await read_topic(kafka_bootstrap, topics.logs, expect=3 * len(cases))
        dead = await read_topic(kafka_bootstrap, topics.dead_letter, expect=1)

        # The secrets really went where they belong: the scan below is not vacuous.
        assert {r.bearer_token() for r in vault.requests} == {VAULT_TOKEN}
        assert {m["token"] for m in slack.messages} == {SLACK_TOKEN}
        assert sheets.requests and all(r.bearer_token() == SHEETS_TOKEN for r in sheets.requests)
        echoed = [r for r in target.requests if r.path == "/echo"]
        assert any(r.headers.get("authorization") == f"Bearer {TARGET_TOKEN}" for r in echoed)
        assert any(r.headers.get("x-api-key") == TARGET_TOKEN for r in echoed)
        assert any(r.path == "/status/500" for r in target.requests)
        # Cross-origin hop: it arrived, without the credential.
        hops = [r for r in target.requests if r.headers.get("host", "").startswith("localhost")]
        assert hops and all("authorization" not in r.headers for r in hops)

    envelopes = {json.loads(r.value)["request_id"]: json.loads(r.value) for r in results}
    assert len(envelopes) == len(cases)
    assert envelopes["slack"]["status"] == "success"
    assert envelopes["echo"]["status"] == "success"
    assert "[REDACTED]" in json.dumps(envelopes["echo"]["data"])  # the echo was scrubbed
    assert envelopes["5xx"]["error"]["code"] == "upstream_unavailable"
    assert envelopes["slack-revoked"]["error"]["code"] == "upstream_error"
    # A stored token with a line break cannot be a header value: the request's own fault,
    # refused before anything is sent (and the token still appears nowhere, checked below).
    assert envelopes["unsendable"]["error"]["code"] == "invalid_params"
    assert envelopes["basic"]["status"] == "success"

    written: list[tuple[str, bytes]] = [("stdout", out.read_bytes()), ("stderr", err.read_bytes())]
    for source, records in (("results", results), ("logs", logs), ("dead-letter", dead)):
        for record in records:
            written.append((source, record.value or b""))
            written.append((source, record.key or b""))
            written.extend((source, k.encode() + b"=" + v) for k, v in record.headers)
    assert b'"action.retrying"' in written[0][1]  # retries were logged, and scanned
    searched = set().union(*(needles(s, core) for s, core in SECRETS.items()))
    hits = [(source, n) for source, text in written for n in searched if n in text]
    scanned = sum(len(text) for _, text in written)
    print(
        f"\nscanned {scanned} bytes ({len(written)} chunks) for {len(SECRETS)} secrets in "
        f"{len(searched)} spellings: {len(hits)} hits"
    )
    assert hits == []
    assert scanned > 20_000
