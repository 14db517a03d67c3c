"""Rate limits and circuit breakers through the running engine, on a real broker.

The figures these tests print (run with `-s`) are the ones quoted in the notes: ten messages to
one Slack channel spread over >= 9 s while another channel's message goes out at once, and a
circuit opening, half-opening and closing in the log events on the logs topic.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, create_topic, envelopes_by_id, produce, read_topic
from tests.standins import HttpTargetStandIn, SlackStandIn, VaultStandIn

SLACK_TOKEN = "xoxb-limits-secret-0001"


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    with VaultStandIn(tokens={("proj-a", "slack"): SLACK_TOKEN}) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    channels = {"#busy": "CBUSY0001", "#quiet": "CQUIET001", "#warm": "CWARM0001"}
    with SlackStandIn(valid_tokens={SLACK_TOKEN}, channels=channels) as server:
        yield server


def slack_message(request_id: str, channel: str) -> Outgoing:
    return Outgoing.request(
        {
            "request_id": request_id,
            "action": "send_slack",
            "project": "proj-a",
            "params": {"channel": channel, "message": request_id},
        },
        key=request_id,  # different keys: they could all run at once if nothing limited them
    )


def clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M:%S.%f")[:-3]


async def test_one_slack_channel_is_limited_to_one_message_per_second(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, slack: SlackStandIn
) -> None:
    busy = [slack_message(f"busy-{i}", "#busy") for i in range(10)]
    quiet = slack_message("quiet-0", "#quiet")
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)

    settings = engine_settings(
        kafka_bootstrap,
        topics,
        vault_url=vault.base_url,
        slack_api_url=slack.base_url,
        # Two slots for eleven records: waiting for a rate-limit slot must not hold one.
        max_in_flight=2,
    )
    async with running_engine(settings):
        # A first message caches the Slack token, so no Vault round trip skews the timings.
        await produce(kafka_bootstrap, topics.requests, [slack_message("warm-up", "#warm")])
        await read_topic(kafka_bootstrap, topics.results, expect=1, grace_s=0)
        # The quiet channel's message is the last record of the partition, behind all ten.
        await produce(kafka_bootstrap, topics.requests, [*busy, quiet])
        results = await read_topic(kafka_bootstrap, topics.results, expect=12, grace_s=0.5)

    by_id = envelopes_by_id(results)
    assert all(by_id[f"busy-{i}"][0]["status"] == "success" for i in range(10)), by_id
    assert by_id["quiet-0"][0]["status"] == "success"
    posts = [r for r in slack.requests if r.path.endswith("chat.postMessage")]
    arrivals = {r.json()["text"]: r.received_at for r in posts if r.json()["text"] != "warm-up"}
    busy_times = sorted(t for text, t in arrivals.items() if text.startswith("busy-"))
    first = busy_times[0]
    print("\nSlack chat.postMessage arrivals (1/s per channel):")
    for text, moment in sorted(arrivals.items(), key=lambda item: item[1]):
        print(f"  {clock(moment)}  +{moment - first:6.3f} s  {text}")
    gaps = [b - a for a, b in itertools.pairwise(busy_times)]
    assert len(busy_times) == 10
    assert busy_times[-1] - first >= 8.9, "ten messages to one channel take >= 9 s"
    assert min(gaps) >= 0.9, f"smoothed, not in bursts: {gaps}"
    assert arrivals["quiet-0"] - first < 0.9, "the other channel's message went out at once"


async def test_a_circuit_opens_half_opens_and_closes_in_the_log_events(
    kafka_bootstrap: str, topics: Topics
) -> None:
    def call(request_id: str) -> Outgoing:
        return Outgoing.request(
            {
                "request_id": request_id,
                "action": "http_request",
                "project": "proj-a",
                "params": {"url": f"{target.base_url}/echo"},
            },
            key="one-lane",  # in order: fail, fail fast, then the probe
        )

    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    sink = KafkaLogSink()
    configure_logging("info", sink=sink, stream=io.StringIO())
    settings = engine_settings(
        kafka_bootstrap,
        topics,
        http_allowed_networks="127.0.0.0/8",
        retry_max_attempts=3,
        circuit_failure_threshold=3,
        circuit_open_s=1.0,
    )
    with HttpTargetStandIn() as target:
        target.fail_next(3, 503)
        async with running_engine(settings, log_sink=sink):
            await produce(kafka_bootstrap, topics.requests, [call("down"), call("fast-fail")])
            first = await read_topic(kafka_bootstrap, topics.results, expect=2, grace_s=0)
            await asyncio.sleep(1.05)  # the open period ends: the next call is the probe
            await produce(kafka_bootstrap, topics.requests, [call("probe"), call("after")])
            results = await read_topic(kafka_bootstrap, topics.results, expect=4)
        assert len(first) == 2
        calls = len(target.requests)
        upstream = f"127.0.0.1:{target.port}"

    by_id = envelopes_by_id(results)
    assert by_id["down"][0]["error"]["code"] == "upstream_unavailable"
    assert by_id["down"][0]["attempts"] == 3
    fast = by_id["fast-fail"][0]
    assert fast["error"]["code"] == "upstream_unavailable" and fast["error"]["retryable"]
    assert fast["error"]["details"]["circuit"] == "open" and fast["attempts"] == 0
    assert by_id["probe"][0]["status"] == "success"
    assert by_id["after"][0]["status"] == "success"
    assert calls == 5, "3 failed attempts, no call while open, the probe, the one after"

    logs = await read_topic(kafka_bootstrap, topics.logs, expect=10, grace_s=0.5)
    events = [json.loads(r.value) for r in logs]
    # Events are keyed by request id, so they sit on several partitions: order them by time
    # (a stable sort keeps the probe's two events, same key and partition, in their order).
    circuit = sorted(
        (e for e in events if e["event"].startswith("circuit.")), key=lambda e: e["timestamp"]
    )
    print("\nCircuit log events (logs topic):")
    for event in circuit:
        print("  " + json.dumps(event, sort_keys=True))
    names = [e["event"] for e in circuit]
    assert names == ["circuit.opened", "circuit.half_open", "circuit.closed"]
    assert {e["upstream"] for e in circuit} == {upstream}
    assert circuit[0]["request_id"] == "down" and circuit[1]["request_id"] == "probe"
