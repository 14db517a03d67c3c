"""`execution-engine replay` end to end: a live engine, the real broker, the real command."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumer.broker.topics import partitions_of
from consumer.cli.replay import REPLAY_HEADER, OffsetRange, ReplayOptions, Verdict, replay
from consumer.cli.replay.reading import latest_envelopes
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import (
    Outgoing,
    committed_total,
    create_topic,
    envelopes_by_id,
    produce,
    read_topic,
)
from tests.integration.test_cli import COMMAND, cli_env
from tests.standins import SlackStandIn, VaultStandIn

TOKEN_A = "xoxb-replay-token-a"
TOKEN_B = "xoxb-replay-token-b"


@pytest.fixture
def vault() -> Iterator[VaultStandIn]:
    with VaultStandIn(tokens={("proj-a", "slack"): TOKEN_A}) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(valid_tokens={TOKEN_A, TOKEN_B}) as server:
        yield server


def slack_request(request_id: str, project: str) -> Outgoing:
    body = {
        "request_id": request_id,
        "action": "send_slack",
        "project": project,
        "params": {"channel": "#general", "message": request_id},
    }
    return Outgoing.request(body, key=request_id)


def run_replay(bootstrap: str, topics: Topics, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*COMMAND, "replay", *args],
        env=cli_env(bootstrap, topics),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def table_row(stdout: str, first_cell: str) -> list[str]:
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no {first_cell!r} row in:\n{stdout}")


async def test_replay_re_executes_failures_only_and_never_resends_successes(
    kafka_bootstrap: str, topics: Topics, vault: VaultStandIn, slack: SlackStandIn
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=2)
    records = [
        slack_request("ok-1", "proj-a"),
        slack_request("ok-2", "proj-a"),
        slack_request("miss-1", "proj-b"),  # no credential yet: missing_credentials
        slack_request("miss-2", "proj-b"),
        slack_request("miss-1", "proj-b"),  # the producer sent it twice: replayed once
        Outgoing(b"not json at all", key=b"bad"),
        Outgoing.request({"action": "no_such_action", "project": "p", "params": {}}, key="n"),
        Outgoing.request({"action": "log_message", "project": "p", "params": {"message": "x"}}),
    ]
    settings = engine_settings(
        kafka_bootstrap, topics, vault_url=vault.base_url, slack_api_url=slack.base_url
    )
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, records)
        first = envelopes_by_id(
            await read_topic(kafka_bootstrap, topics.results, expect=8, grace_s=0)
        )
        assert first["miss-1"][0]["error"]["code"] == "missing_credentials"
        assert len(slack.messages) == 2
        vault.set_token("proj-b", "slack", TOKEN_B)  # the operator fixes the Vault

        dry = await asyncio.to_thread(run_replay, kafka_bootstrap, topics, "--all", "--dry-run")
        # total: scanned, would replay, skipped: succeeded, filtered, invalid, duplicate
        assert table_row(dry.stdout, "total")[1:] == ["8", "2", "3", "0", "2", "1"], dry.stdout
        assert "would replay" in dry.stdout
        assert "reading requests" in dry.stderr  # the progress indicator
        for label in ("reading requests", "reading results"):
            # The results topic holds transaction markers too: still, each bar ends full.
            last = [line for line in dry.stderr.splitlines() if line.startswith(label)][-1]
            assert last.endswith("100%"), dry.stderr
        listed = dry.stdout.split("request_id (would replay)")[1]
        assert "miss-1" in listed and "miss-2" in listed and "ok-1" not in listed, dry.stdout
        await asyncio.sleep(1)
        assert len(slack.messages) == 2, "a dry run executes nothing"

        done = await asyncio.to_thread(
            run_replay,
            kafka_bootstrap,
            topics,
            "--all",
            "--only-failed",
            "--codes",
            "missing_credentials",
            "--wait",
            "60",
        )
        assert table_row(done.stdout, "total")[1:] == ["8", "2", "3", "0", "2", "1"], done.stdout
        assert table_row(done.stdout, "success") == ["success", "-", "2"], done.stdout
        print(done.stdout)  # shown with -s: the summary table

        again = await asyncio.to_thread(run_replay, kafka_bootstrap, topics, "--all")
        # 10 records now (2 copies); all that can succeed have: nothing left to replay.
        assert table_row(again.stdout, "total")[1:] == ["10", "0", "8", "0", "2", "0"], again.stdout
        await asyncio.sleep(1)
        requests = await read_topic(kafka_bootstrap, topics.requests, expect=10)
        results = await read_topic(kafka_bootstrap, topics.results, expect=10)

    assert len(requests) == 10
    copies = [r for r in requests if dict(r.headers).get(REPLAY_HEADER)]
    assert sorted(json.loads(r.value)["request_id"] for r in copies) == ["miss-1", "miss-2"]
    originals = {(r.partition, r.offset): r for r in requests}
    for copy in copies:
        partition, offset = dict(copy.headers)[REPLAY_HEADER].decode().rsplit(":", 2)[1:]
        original = originals[(int(partition), int(offset))]
        assert (copy.key, copy.value) == (original.key, original.value)
    by_id = envelopes_by_id(results)
    assert [e["status"] for e in by_id["miss-1"]] == ["error", "error", "success"]
    assert [e["status"] for e in by_id["ok-1"]] == ["success"]
    # Slack got each message exactly once: the successes were never re-sent.
    assert sorted(m["text"] for m in slack.messages) == ["miss-1", "miss-2", "ok-1", "ok-2"]


async def test_replay_by_offsets_and_time_keeps_the_deterministic_id(
    kafka_bootstrap: str, topics: Topics
) -> None:
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    settings = engine_settings(kafka_bootstrap, topics)
    no_id = {"action": "log_message", "project": "p", "params": {"message": "again"}}
    async with running_engine(settings):
        await produce(
            kafka_bootstrap,
            topics.requests,
            [Outgoing.request({**no_id, "request_id": f"r{i}"}) for i in range(3)]
            + [Outgoing.request(no_id)],
        )
        await read_topic(kafka_bootstrap, topics.results, expect=4, grace_s=0)
        committed_before = await committed_total(kafka_bootstrap, topics.group, topics.requests)

        future = datetime.now(UTC) + timedelta(hours=1)
        nothing = await replay(settings, ReplayOptions(since=future, dry_run=True))
        assert sum(p.scanned for p in nothing.partitions.values()) == 0
        past = datetime.now(UTC) - timedelta(hours=1)
        before = await replay(settings, ReplayOptions(until=past, dry_run=True))
        assert sum(p.scanned for p in before.partitions.values()) == 0

        options = ReplayOptions(ranges=(OffsetRange(0, 1, 3),), wait_s=30)
        skipped = await replay(settings, options)
        assert sum(p.scanned for p in skipped.partitions.values()) == 3
        assert skipped.outcomes == {}, "all three succeeded: nothing replayed"

        included = ReplayOptions(
            ranges=(OffsetRange(0, 3),),
            selection=options.selection.__class__(include_succeeded=True),
            wait_s=30,
        )
        report = await replay(settings, included)
        assert report.outcomes == {("success", ""): 1}
        results = await read_topic(kafka_bootstrap, topics.results, expect=5)
        # The group the engine commits for was never touched by the replay's reader.
        assert await committed_total(kafka_bootstrap, topics.group, topics.requests) >= (
            committed_before
        )

    deterministic = f"{topics.requests}:0:3"
    by_id: dict[str, list[Any]] = envelopes_by_id(results)
    assert len(by_id[deterministic]) == 2, "the copy's envelope has the original's id"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_replay_refuses_what_the_engine_refused_under_the_same_settings(
    kafka_bootstrap: str, topics: Topics
) -> None:
    # Limits far below the defaults: a replay judging by the defaults would republish all three.
    limits = {"max_json_depth": 5, "max_params_bytes": 256}
    base = {"action": "log_message", "project": "p", "params": {"message": "m"}}
    records = [
        Outgoing.request({**base, "request_id": "deep", "metadata": nested(8)}, key="d"),
        Outgoing.request({**base, "request_id": "big", "params": {"message": "x" * 400}}, key="b"),
        Outgoing.request(
            {**base, "request_id": "fb", "fallback": {"action": "no_such_action", "params": {}}},
            key="f",
        ),
    ]
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    settings = engine_settings(kafka_bootstrap, topics, **limits)
    async with running_engine(settings):
        await produce(kafka_bootstrap, topics.requests, records)
        found = envelopes_by_id(
            await read_topic(kafka_bootstrap, topics.results, expect=3, grace_s=0)
        )
    codes = {request_id: found[request_id][0]["error"]["code"] for request_id in found}
    assert codes == {"deep": "invalid_request", "big": "payload_too_large", "fb": "unknown_action"}

    report = await replay(settings, ReplayOptions(dry_run=True))
    assert report.total(Verdict.INVALID) == 3, report
    assert report.total(Verdict.REPLAY) == 0

    # The command reads the same limits from the environment the engine reads them from.
    env = cli_env(kafka_bootstrap, topics)
    env.update({"EXECUTION_MAX_JSON_DEPTH": "5", "EXECUTION_MAX_PARAMS_BYTES": "256"})
    done = await asyncio.to_thread(
        subprocess.run,
        [*COMMAND, "replay", "--all", "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # total: scanned, would replay, skipped: succeeded, filtered, invalid, duplicate
    assert table_row(done.stdout, "total")[1:] == ["3", "0", "0", "0", "3", "0"], done.stdout


async def test_the_latest_envelopes_are_read_from_a_time_not_the_beginning(
    kafka_bootstrap: str, topics: Topics
) -> None:
    await create_topic(kafka_bootstrap, topics.results, partitions=1)
    now = int(datetime.now(UTC).timestamp() * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for request_id, status, at in (("old", "success", now - 7_200_000), ("new", "error", now)):
            body = json.dumps({"request_id": request_id, "status": status, "error": None})
            await producer.send_and_wait(
                topics.results, body.encode(), key=request_id.encode(), timestamp_ms=at
            )
    finally:
        await producer.stop()
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = await partitions_of(reader, topics.results)
        end = await reader.end_offsets(partitions)
        latest = await latest_envelopes(
            reader, partitions, end, {"old", "new"}, io.StringIO(), since_ms=now - 3_600_000
        )
    finally:
        await reader.stop()
    # The envelope from before the cut was never read: the topic is not read from its start.
    assert set(latest) == {"new"} and latest["new"].status == "error"
