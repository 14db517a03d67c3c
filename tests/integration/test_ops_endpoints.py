"""/healthz, /readyz and /metrics of a running engine, on a real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumer.app import Application
from consumer.localkafka import LocalKafka
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, produce, read_topic
from tests.standins import SlackStandIn, VaultStandIn

TOKEN = "xoxb-ops-token-0001"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        assert family.name.startswith(("execution_", "process_")), family.name
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def ops_port(engine: Application) -> int:
    assert engine.ops is not None
    return engine.ops.port


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    with VaultStandIn(tokens={("proj-a", "slack"): TOKEN}) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(valid_tokens={TOKEN}) as server:
        yield server


def slack_request(request_id: str) -> Outgoing:
    body = {
        "request_id": request_id,
        "action": "send_slack",
        "project": "proj-a",
        "params": {"channel": "#general", "message": request_id},
    }
    return Outgoing.request(body, key="slack")


async def test_metrics_after_a_run(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, slack: SlackStandIn
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    settings = engine_settings(
        kafka_bootstrap, topics, vault_url=vault.base_url, slack_api_url=slack.base_url
    )
    slack.rate_limit_next(1, retry_after=0)  # the first call is retried once
    records = [
        slack_request("s1"),
        slack_request("s2"),
        slack_request("s3"),
        Outgoing.request({"action": "log_message", "project": "p", "params": {"message": "a"}}),
        Outgoing.request({"action": "log_message", "project": "p", "params": {"message": "b"}}),
        Outgoing.request({"action": "no_such_action", "project": "p", "params": {}}),
        Outgoing(b"\xff not json"),
    ]
    async with running_engine(settings) as engine:
        port = ops_port(engine)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health = await client.get("/healthz")
            ready = await client.get("/readyz")
        assert health.status_code == 200
        assert ready.status_code == 200, ready.text
        assert ready.json()["ready"] is True

        await produce(kafka_bootstrap, topics.requests, records)
        await read_topic(kafka_bootstrap, topics.results, expect=len(records), grace_s=0)
        await asyncio.sleep(3 * settings.commit_interval_s)  # a commit after the last envelope
        samples = await asyncio.to_thread(scrape, port)

    consumed = "execution_records_consumed_total"
    assert value(samples, consumed, topic=topics.requests, partition="0") == 7
    envelopes = "execution_envelopes_total"
    assert value(samples, envelopes, action="send_slack", status="success", error_code="none") == 3
    assert value(samples, envelopes, action="log_message", status="success", error_code="none") == 2
    unknown = {"action": "_unknown", "status": "error"}
    assert value(samples, envelopes, **unknown, error_code="unknown_action") == 1
    assert value(samples, envelopes, **unknown, error_code="invalid_json") == 1
    assert value(samples, "execution_dead_letters_total", error_code="invalid_json") == 1
    assert value(samples, "execution_dead_letters_total", error_code="invalid_request") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert total(samples, envelopes) == 7
    assert value(samples, "execution_action_retries_total", action="send_slack") == 1
    duration = "execution_action_duration_seconds_count"
    assert value(samples, duration, action="send_slack", status="success") == 3
    assert value(samples, duration, action="log_message", status="success") == 2
    # Four credential lookups (three requests, one of them retried): one went to the Vault.
    assert value(samples, "execution_vault_cache_misses_total") == 1
    assert value(samples, "execution_vault_cache_hits_total") == 3
    assert len(vault.requests) == 1
    assert value(samples, "execution_commit_seconds_count") >= 1
    assert value(samples, "execution_in_flight") == 0
    assert value(samples, "execution_buffered_records") == 0
    assert value(samples, "execution_fetch_paused") == 0
    assert value(samples, "execution_consumer_lag", topic=topics.requests, partition="0") == 0


async def http_status(port: int, path: str) -> tuple[int, str]:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{port}{path}")
    return response.status_code, response.text


async def wait_for_status(port: int, wanted: int, within_s: float) -> float:
    """Seconds until /readyz answered `wanted`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        status, body = await http_status(port, "/readyz")
        if status == wanted:
            return loop.time() - started
        assert loop.time() - started < within_s, f"/readyz still {status} {body}"
        await asyncio.sleep(0.2)


async def test_readyz_follows_the_group_and_the_broker(tmp_path: Path, topics: Topics) -> None:
    # Its own broker: stopping the session's broker would disturb every other test.
    broker = LocalKafka(data_dir=tmp_path / "kafka")
    await asyncio.to_thread(broker.start)
    try:
        settings = engine_settings(broker.bootstrap_servers, topics, session_timeout_ms=6000)
        stop = asyncio.Event()
        engine = Application(settings)
        task = asyncio.create_task(engine.run(stop))
        try:
            while engine.ops is None:
                assert not task.done(), task
                await asyncio.sleep(0.005)
            port = engine.ops.port
            first = await http_status(port, "/readyz")
            assert first[0] == 503, first  # up and alive, not in its group yet
            assert (await http_status(port, "/healthz"))[0] == 200
            await wait_for_status(port, 200, within_s=60)
            assert engine.assigned

            await asyncio.to_thread(broker.kill)  # the broker is gone
            took = await wait_for_status(port, 503, within_s=30)
            status, body = await http_status(port, "/readyz")
            assert status == 503 and "coordinator" in body, body
            assert (await http_status(port, "/healthz"))[0] == 200  # alive all the same

            await asyncio.to_thread(broker.start)
            await wait_for_status(port, 200, within_s=90)
            print(f"not ready {took:.1f} s after the broker died")  # shown with -s
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
    finally:
        await asyncio.to_thread(broker.stop)
