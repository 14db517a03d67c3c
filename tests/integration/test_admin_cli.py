"""`execution-engine topics create` and `execution-engine tail` on the real broker."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from consumer.cli.tail import TailFilter, tail
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, produce, read_topic
from tests.integration.test_cli import COMMAND, cli_env


def cli(bootstrap: str, topics: Topics, *args: str) -> str:
    done = subprocess.run(
        [*COMMAND, *args],
        env=cli_env(bootstrap, topics),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def retention_of(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})]
        )
        for resource in response.resources:
            for entry in resource[4]:
                if entry[0] == "retention.ms":
                    return str(entry[1])
    finally:
        await admin.close()
    raise AssertionError("no retention.ms")


async def test_topics_create_is_idempotent(kafka_bootstrap: str, topics: Topics) -> None:
    args = ("topics", "create", "--partitions", "2", "--config", "retention.ms=86400000")
    first = await asyncio.to_thread(cli, kafka_bootstrap, topics, *args)
    rows = [line.split() for line in first.splitlines()[1:]]
    assert sorted(rows) == sorted(
        [
            [name, "created", "2", "1"]
            for name in (topics.requests, topics.results, topics.logs, topics.dead_letter)
        ]
    ), first
    assert await retention_of(kafka_bootstrap, topics.results) == "86400000"

    again = await asyncio.to_thread(
        cli, kafka_bootstrap, topics, "topics", "create", "--partitions", "5"
    )
    rows = [line.split() for line in again.splitlines()[1:]]
    assert {tuple(row[1:]) for row in rows} == {("exists", "2", "1")}, again


async def test_tail_filters_and_pretty_prints(kafka_bootstrap: str, topics: Topics) -> None:
    settings = engine_settings(kafka_bootstrap, topics)
    ok = {
        "request_id": "t-ok",
        "action": "log_message",
        "project": "p1",
        "params": {"message": "hi"},
    }
    bad = {"request_id": "t-bad", "action": "no_such_action", "project": "p2", "params": {}}
    sink = KafkaLogSink()
    configure_logging("info", sink=sink)
    async with running_engine(settings, log_sink=sink):
        await produce(
            kafka_bootstrap,
            topics.requests,
            [Outgoing.request(ok), Outgoing.request(bad), Outgoing(b"{oops", key=b"k")],
        )
        await read_topic(kafka_bootstrap, topics.results, expect=3, grace_s=0)
        await read_topic(kafka_bootstrap, topics.dead_letter, expect=1, grace_s=0)

        errors = await asyncio.to_thread(
            cli, kafka_bootstrap, topics, "tail", "results", "--status", "error"
        )
        lines = errors.splitlines()
        assert len(lines) == 2, errors  # t-bad and the unreadable record
        assert any("t-bad" in line and "unknown_action" in line for line in lines)
        assert not any("t-ok" in line for line in lines)

        by_project = await asyncio.to_thread(
            cli, kafka_bootstrap, topics, "tail", "results", "--project", "p1", "--json"
        )
        [envelope] = [json.loads(line) for line in by_project.splitlines()]
        assert envelope["request_id"] == "t-ok" and envelope["status"] == "success"

        code = await asyncio.to_thread(
            cli, kafka_bootstrap, topics, "tail", "results", "--status", "invalid_json"
        )
        assert len(code.splitlines()) == 1 and f"{topics.requests}:" in code

        dead = await asyncio.to_thread(cli, kafka_bootstrap, topics, "tail", "dead-letter")
        assert "invalid_json" in dead and "value={oops" in dead and "key=k" in dead

        # Follow: what arrives after the catch-up is printed too, until stopped.
        out = io.StringIO()
        stop = asyncio.Event()
        follower = asyncio.create_task(
            tail(settings, "logs", TailFilter(request_id="t-late"), out, follow=True, stop=stop)
        )
        late = {**ok, "request_id": "t-late"}
        await produce(kafka_bootstrap, topics.requests, [Outgoing.request(late)])
        for _ in range(200):
            if "action.succeeded" in out.getvalue():
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(follower, 10)

    logs = await asyncio.to_thread(
        cli, kafka_bootstrap, topics, "tail", "logs", "--request-id", "t-ok", "-n", "all"
    )
    events = [line.split()[2] for line in logs.splitlines()]
    assert events == ["log_message", "action.succeeded"]
    followed = [line.split()[2] for line in out.getvalue().splitlines()]
    assert "action.succeeded" in followed and all(
        "t-late" in line for line in out.getvalue().splitlines()
    )


def test_a_missing_topic_is_one_line_naming_its_setting(
    kafka_bootstrap: str, topics: Topics
) -> None:
    done = subprocess.run(
        [*COMMAND, "tail", "results"],
        env=cli_env(kafka_bootstrap, topics),  # topics never created
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"execution-engine tail: topic {topics.results!r} (EXECUTION_RESULTS_TOPIC) does not "
        "exist: create the engine's topics with `execution-engine topics create`, or set the "
        "variable to an existing one\n"
    )
