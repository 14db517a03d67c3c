"""ExecutionClient against the real engine: many concurrent calls each get their own envelope on
the process's reply partition (and `send --wait --reply-topic` its own), a call nobody answers
times out, and a call in flight when the engine is killed still gets exactly one envelope."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumer import ExecutionClient, KafkaSettings, ReplyTimeout
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.engine_processes import COMMAND, EngineProcess, engine_env
from tests.integration.kafka_io import create_topic, read_topic
from tests.integration.test_cli import cli_env
from tests.standins import HttpTargetStandIn


def client_settings(bootstrap: str, topics: Topics) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        requests_topic=topics.requests,
        results_topic=topics.results,
        logs_topic=topics.logs,
        dead_letter_topic=topics.dead_letter,
    )


def copies_by_id(records: list[Any]) -> Counter[str]:
    return Counter(json.loads(r.value)["request_id"] for r in records)


async def test_many_concurrent_calls_each_get_their_own_envelope(
    kafka_bootstrap: str, topics: Topics
) -> None:
    replies = f"test.replies.{topics.group}"
    await create_topic(kafka_bootstrap, replies, partitions=3)
    settings = engine_settings(kafka_bootstrap, topics, reply_topics=f"{replies},other.*")
    calls = 300
    async with (
        running_engine(settings),
        ExecutionClient(
            client_settings(kafka_bootstrap, topics), reply_topic=replies, reply_partition=1
        ) as client,
    ):

        async def call(i: int) -> dict[str, Any]:
            action = "send_fax" if i % 10 == 0 else "log_message"
            return await client.execute(
                action,
                "proj",
                {"message": f"m{i}"},
                timeout=60,
                request_id=f"call-{i}",
                key=f"k{i % 17}",
            )

        envelopes = await asyncio.gather(*(call(i) for i in range(calls)))
        assert client.pending == 0
        # `send --wait --reply-topic` awaits its own the same way (on the key's partition).
        sent = await asyncio.create_subprocess_exec(
            *COMMAND[:1],
            "send",
            "log_message",
            "--project",
            "demo",
            "--params",
            '{"message": "hello"}',
            "--request-id",
            "cli-1",
            "--wait",
            "--reply-topic",
            replies,
            "--timeout",
            "60",
            env=cli_env(kafka_bootstrap, topics),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(sent.communicate(), 90)
    assert sent.returncode == 0, err.decode()
    assert json.loads(out)["request_id"] == "cli-1"
    for i, envelope in enumerate(envelopes):
        assert envelope["request_id"] == f"call-{i}"
        expected = "error" if i % 10 == 0 else "success"
        assert envelope["status"] == expected, envelope
    copies = await read_topic(kafka_bootstrap, replies, expect=calls + 1, grace_s=1)
    by_id = copies_by_id(copies)
    assert by_id.pop("cli-1") == 1
    assert by_id == Counter(f"call-{i}" for i in range(calls))
    assert {r.partition for r in copies if r.key != b"cli-1"} == {1}, "the client's partition"


async def test_a_call_nobody_answers_times_out_and_the_results_topic_mode_works(
    kafka_bootstrap: str, topics: Topics
) -> None:
    await create_topic(kafka_bootstrap, topics.results, partitions=3)
    kafka = client_settings(kafka_bootstrap, topics)
    async with ExecutionClient(kafka) as client:
        started = time.monotonic()
        with pytest.raises(ReplyTimeout) as timed_out:
            await client.execute("log_message", "p", {"message": "x"}, timeout=1.0)
        assert 1.0 <= time.monotonic() - started < 5
        assert client.pending == 0
        # The engine starts later: without a reply topic the client reads the results topic.
        async with running_engine(engine_settings(kafka_bootstrap, topics)):
            envelope = await client.execute(
                "log_message", "p", {"message": "y"}, timeout=60, request_id="later"
            )
    assert timed_out.value.request_id != "later"
    assert envelope["request_id"] == "later" and envelope["status"] == "success"


@pytest.fixture
def target() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


@pytest.mark.slow
async def test_calls_in_flight_across_an_engine_kill_get_exactly_one_envelope(
    kafka_bootstrap: str, topics: Topics, target: HttpTargetStandIn, tmp_path: Path
) -> None:
    replies = f"test.replies.{topics.group}"
    await create_topic(kafka_bootstrap, topics.requests, partitions=6)
    await create_topic(kafka_bootstrap, replies, partitions=2)
    env = engine_env(kafka_bootstrap, topics, EXECUTION_REPLY_TOPICS=replies)
    engine = EngineProcess(env, tmp_path / "engine-0.log")
    engines = [engine]
    slow, quick = 40, 160
    try:
        await engine.wait_for_event("partitions.assigned")
        async with ExecutionClient(
            client_settings(kafka_bootstrap, topics), reply_topic=replies, reply_partition=0
        ) as client:

            async def call(i: int) -> dict[str, Any]:
                if i < slow:  # in flight when the engine dies: a 1.5 s GET
                    action, params = "http_request", {"url": f"{target.base_url}/delay/1500"}
                    key = f"slow-{i}"
                else:  # most answered before it dies, the rest queued behind each other
                    action, params = "log_message", {"message": f"m{i}"}
                    key = f"quick-{i % 23}"
                return await client.execute(
                    action, "proj", params, timeout=120, request_id=f"c-{i}", key=key
                )

            calls = [asyncio.create_task(call(i)) for i in range(slow + quick)]
            await asyncio.sleep(0.7)
            in_flight = client.pending
            engine.kill()
            engine = EngineProcess(env, tmp_path / "engine-1.log")
            engines.append(engine)
            envelopes = await asyncio.gather(*calls)
    finally:
        for process in engines:
            process.stop()
    total = slow + quick
    assert [e["request_id"] for e in envelopes] == [f"c-{i}" for i in range(total)]
    assert all(e["status"] == "success" for e in envelopes), [
        e["error"] for e in envelopes if e["status"] != "success"
    ]
    copies = copies_by_id(await read_topic(kafka_bootstrap, replies, expect=total, grace_s=3))
    results = copies_by_id(await read_topic(kafka_bootstrap, topics.results, expect=total))
    targets_hit = sum(1 for r in target.requests if r.path.startswith("/delay/"))
    print(
        f"engine kill mid-call: calls={total} in_flight_at_kill={in_flight} "
        f"replies={sum(copies.values())} distinct={len(copies)} "
        f"results={sum(results.values())} slow_calls_run={targets_hit}"
    )
    assert in_flight > 0, "calls were waiting when the engine died"
    assert copies == Counter(f"c-{i}" for i in range(total)), "exactly one reply each"
    assert results == copies, "exactly one results envelope each, the same ids"
