"""Fleet state on a real Valkey server (`EXECUTION_STATE_URL`), with real engine processes and a
real broker: shared pacing, one Vault fetch, idempotency across partitions and a kill -9, and
the store killed mid-stream. Run with `-s` for the pacing timestamps quoted in the notes.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import valkey.asyncio as aiovalkey
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import Topics
from tests.integration.engine_processes import EngineProcess, engine_env
from tests.integration.kafka_io import create_topic, read_topic
from tests.standins import HttpTargetStandIn, SlackStandIn, VaultStandIn
from tests.valkey_server import ValkeyServer, free_port

pytestmark = pytest.mark.slow

SLACK_TOKEN = "xoxb-fleet-secret-token-7731"
ENCRYPTION_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
PARTITIONS = 6


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    with VaultStandIn(tokens={("proj-a", "slack"): SLACK_TOKEN}) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(
        valid_tokens={SLACK_TOKEN},
        channels={
            "#general": "CGEN00001",
            "#other": "COTHER001",
        },
    ) as server:
        yield server


@pytest.fixture
def target() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


def fleet_env(
    bootstrap: str, topics: Topics, store: ValkeyServer, prefix: str, **extra: str
) -> dict[str, str]:
    return engine_env(
        bootstrap,
        topics,
        EXECUTION_STATE_URL=store.url,
        EXECUTION_STATE_PREFIX=prefix,
        EXECUTION_STATE_ENCRYPTION_KEY=ENCRYPTION_KEY,
        SLACK_RATE_LIMIT_PER_CHANNEL="1/s",
        **extra,
    )


def slack_request(request_id: str, channel: str, text: str | None = None) -> bytes:
    body = {
        "request_id": request_id,
        "action": "send_slack",
        "project": "proj-a",
        "params": {"channel": channel, "message": text or request_id},
    }
    return json.dumps(body).encode()


async def produce_to(bootstrap: str, topic: str, records: list[tuple[int, bytes, str]]) -> None:
    """(partition, value, key) each: the test decides where every record lands."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, value=value, key=key.encode(), partition=partition)
            for partition, value, key in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M:%S.%f")[:-3]


def ran_by(engines: list[EngineProcess], request_id: str) -> list[int]:
    return [
        index
        for index, engine in enumerate(engines)
        for event in engine.events("action.succeeded")
        if event.get("request_id") == request_id
    ]


def as_bytes(value: bytes | str | None) -> bytes:
    return value.encode() if isinstance(value, str) else (value or b"")


async def store_values(store: ValkeyServer, prefix: str) -> dict[bytes, bytes]:
    """Every key under `prefix` and its value (hashes flattened), as the store holds them."""
    client = aiovalkey.Valkey.from_url(store.url)
    found: dict[bytes, bytes] = {}
    try:
        async for key in client.scan_iter(f"{prefix}:*"):
            kind = await client.type(key)
            if kind == b"string":
                found[key] = as_bytes(await client.get(key))
            elif kind == b"hash":
                fields = await client.hgetall(key)
                found[key] = b" ".join(as_bytes(k) + b"=" + as_bytes(v) for k, v in fields.items())
            else:
                found[key] = as_bytes(kind)
    finally:
        await client.aclose()
    return found


async def test_two_engines_share_pacing_one_vault_fetch_and_idempotency(
    kafka_bootstrap: str,
    topics: Topics,
    tmp_path: Path,
    state_server: ValkeyServer,
    vault: VaultStandIn,
    slack: SlackStandIn,
) -> None:
    prefix = f"fleet-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topics.requests, partitions=PARTITIONS)
    env = fleet_env(
        kafka_bootstrap,
        topics,
        state_server,
        prefix,
        VAULT_URL=vault.base_url,
        SLACK_API_URL=slack.base_url,
    )
    engines = [EngineProcess(env, tmp_path / f"engine-{i}.log") for i in range(2)]
    try:
        deadline = time.monotonic() + 90
        while not all(len(e.assigned_partitions()) == PARTITIONS // 2 for e in engines):
            assert time.monotonic() < deadline, [e.tail() for e in engines]
            await asyncio.sleep(0.2)
        # Each engine sends a first message and so holds the token: no Vault or store round
        # trip skews the pacing timestamps below. These two take the channel's first slots, so
        # every one of the eight measured below waits for its slot (none goes straight out
        # while its engine is still busy taking the batch in).
        warm = [
            (0, slack_request("warm-0", "#general"), "w0"),
            (3, slack_request("warm-3", "#general"), "w3"),
        ]
        await produce_to(kafka_bootstrap, topics.requests, warm)
        await read_topic(kafka_bootstrap, topics.results, expect=2, timeout_s=60, grace_s=0)
        paced = [
            (i % PARTITIONS, slack_request(f"paced-{i}", "#general"), f"key-{i}") for i in range(8)
        ]
        # The same request (same request_id) published twice, on two partitions (so, here, to
        # two engines), to a channel of its own.
        duplicate = slack_request("dup-1", "#other", "published twice")
        twice = [(0, duplicate, "dup-a"), (3, duplicate, "dup-b")]
        await produce_to(kafka_bootstrap, topics.requests, [*paced, *twice])
        results = await read_topic(kafka_bootstrap, topics.results, expect=12, timeout_s=90)
        stored = await store_values(state_server, prefix)
    finally:
        for engine in engines:
            engine.terminate()

    envelopes: dict[str, list[dict[str, Any]]] = {}
    for record in results:
        envelope = json.loads(record.value)
        envelopes.setdefault(envelope["request_id"], []).append(envelope)
    assert all(envelopes[f"paced-{i}"][0]["status"] == "success" for i in range(8)), envelopes

    posts = [r for r in slack.requests if r.path.endswith("chat.postMessage")]
    on_general = sorted(
        (r.received_at, r.json()["text"]) for r in posts if r.json()["channel"] == "#general"
    )
    paced_posts = [(moment, text) for moment, text in on_general if text.startswith("paced-")]
    first = paced_posts[0][0]
    print("\nchat.postMessage to #general from two engines sharing one store (1/s):")
    for moment, text in on_general:
        print(
            f"  {clock(moment)}  +{moment - first:6.3f} s  {text}  engine {ran_by(engines, text)}"
        )
    assert len(paced_posts) == 8
    # Seven intervals of 1 s between the first and the last; the arrivals carry the engines'
    # wake-up jitter (tens of ms on a loaded 2-core machine), hence the 0.1 s of tolerance.
    assert paced_posts[-1][0] - first >= 6.9, "8 messages to one channel take >= 7 s"
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(paced_posts)]
    assert min(gaps) >= 0.9, f"evenly spaced across the fleet: {gaps}"
    runners = {index for i in range(8) for index in ran_by(engines, f"paced-{i}")}
    assert runners == {0, 1}, "both engines sent to the channel"

    fetches = [r for r in vault.requests if r.path == "/vault/token/proj-a/slack"]
    print(f"Vault fetches of (proj-a, slack) by the two engines: {len(fetches)}")
    assert len(fetches) == 1, "one Vault fetch served both engines"

    dup = envelopes["dup-1"]
    assert len(dup) == 2, "each record gets its own envelope"
    marked = [e for e in dup if e.get("deduplicated")]
    assert len(marked) == 1 and marked[0]["attempts"] == 0 and marked[0]["status"] == "success"
    executed = next(e for e in dup if not e.get("deduplicated"))
    assert "deduplicated" not in executed and executed["attempts"] == 1
    assert marked[0]["data"] == executed["data"]
    assert [r.json()["text"] for r in posts].count("published twice") == 1, "ran once"

    assert stored, "the engines shared state through the store"
    for key, value in stored.items():
        for spelling in (SLACK_TOKEN.encode(), base64.b64encode(SLACK_TOKEN.encode())):
            assert spelling not in key and spelling not in value, f"plaintext token in {key!r}"
    assert any(b":cred:" in key for key in stored), "the token is cached, sealed"


async def test_a_record_redelivered_after_kill_9_does_not_run_again(
    kafka_bootstrap: str,
    topics: Topics,
    tmp_path: Path,
    state_server: ValkeyServer,
    target: HttpTargetStandIn,
) -> None:
    """Killed after its success was recorded and before its envelope was committed: the next
    owner gets the record again and answers from the record, without calling the target."""
    prefix = f"kill-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    request = {
        "request_id": "charge-1",
        "action": "http_request",
        "project": "proj-a",
        "params": {"url": f"{target.base_url}/echo", "method": "POST", "json": {"n": 1}},
    }
    # Commits far apart: the envelope waits long after the call, the window of this test.
    slow_commits = fleet_env(
        kafka_bootstrap, topics, state_server, prefix, EXECUTION_COMMIT_INTERVAL_S="60"
    )
    first = EngineProcess(slow_commits, tmp_path / "first.log")
    client = aiovalkey.Valkey.from_url(state_server.url)
    try:
        await first.wait_for_event("partitions.assigned", timeout_s=90)
        await produce_to(kafka_bootstrap, topics.requests, [(0, json.dumps(request).encode(), "k")])
        done_key = f"{prefix}:done:proj-a/charge-1"
        deadline = time.monotonic() + 60
        while not as_bytes(await client.get(done_key)).startswith(b"s"):
            assert time.monotonic() < deadline, first.tail()
            await asyncio.sleep(0.05)
        first.kill()
        calls = [r for r in target.requests if r.path == "/echo"]
        assert len(calls) == 1
        second = EngineProcess(
            fleet_env(kafka_bootstrap, topics, state_server, prefix), tmp_path / "second.log"
        )
        try:
            results = await read_topic(kafka_bootstrap, topics.results, expect=1, timeout_s=90)
        finally:
            second.terminate()
    finally:
        first.stop()
        await client.aclose()
    assert len(results) == 1, "the first engine's envelope was never committed"
    envelope = json.loads(results[0].value)
    assert envelope["deduplicated"] is True and envelope["attempts"] == 0
    assert envelope["status"] == "success" and envelope["data"]["status_code"] == 200
    assert len([r for r in target.requests if r.path == "/echo"]) == 1, "not called again"
    [outcome] = second.events("action.succeeded")
    assert outcome["deduplicated"] is True and outcome["attempts"] == 0


async def test_the_store_killed_mid_stream_loses_nothing(
    kafka_bootstrap: str,
    topics: Topics,
    tmp_path: Path,
    restarted_state_server: ValkeyServer,
    target: HttpTargetStandIn,
) -> None:
    store = restarted_state_server
    prefix = f"outage-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka_bootstrap, topics.requests, partitions=3)
    ops_port = free_port()
    env = fleet_env(
        kafka_bootstrap,
        topics,
        store,
        prefix,
        EXECUTION_STATE_TIMEOUT_S="0.2",
        EXECUTION_HTTP_PORT=str(ops_port),
    )
    engine = EngineProcess(env, tmp_path / "engine.log")
    total = 900
    try:
        await engine.wait_for_event("partitions.assigned", timeout_s=90)
        records = []
        for i in range(total):
            if i % 3 == 0:
                params: dict[str, Any] = {"url": f"{target.base_url}/echo"}
                body = {"action": "http_request", "params": params}
            else:
                body = {"action": "log_message", "params": {"message": f"m{i}"}}
            body.update(request_id=f"r-{i}", project="proj-a")
            records.append((i % 3, json.dumps(body).encode(), f"k-{i % 40}"))
        feeder = asyncio.create_task(_paced(kafka_bootstrap, topics.requests, records, 150))
        await asyncio.sleep(2.0)
        store.kill()  # mid-stream: the store vanishes with everything it held
        await asyncio.sleep(1.5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ops_port}", timeout=5) as ops:
            ready = await ops.get("/readyz")
            metrics = (await ops.get("/metrics")).text
        await asyncio.sleep(1.0)
        store.start()  # back, empty
        await feeder
        results = await read_topic(kafka_bootstrap, topics.results, expect=total, timeout_s=120)
        await asyncio.sleep(1.5)  # a call after the guard's retry interval brings it back
        await _paced(
            kafka_bootstrap,
            topics.requests,
            [(0, json.dumps({**json.loads(records[1][1]), "request_id": "late"}).encode(), "k")],
            10,
        )
        await read_topic(kafka_bootstrap, topics.results, expect=total + 1, timeout_s=60)
        await engine.wait_for_event("state.recovered", timeout_s=30)
    finally:
        engine.terminate()
    ids = [json.loads(r.value)["request_id"] for r in results]
    assert len(ids) == total and len(set(ids)) == total, "one envelope per record, none lost"
    statuses = {json.loads(r.value)["status"] for r in results}
    assert statuses == {"success"}
    unavailable, recovered = engine.events("state.unavailable"), engine.events("state.recovered")
    print(f"\nstore outage: {len(unavailable)} state.unavailable, {len(recovered)} recovered")
    assert len(unavailable) >= 1 and len(recovered) >= 1
    assert ready.status_code == 200, "/readyz does not depend on the store"
    assert "execution_state_available 0.0" in metrics
    assert "execution_state_fallbacks_total" in metrics


async def _paced(
    bootstrap: str, topic: str, records: list[tuple[int, bytes, str]], per_second: float
) -> None:
    started = time.monotonic()
    for index in range(0, len(records), 30):
        await produce_to(bootstrap, topic, records[index : index + 30])
        ahead = (index + 30) / per_second - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)
