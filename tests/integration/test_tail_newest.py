"""`tail -n N` on a big topic: the N newest across partitions, read from the end, not the whole
topic; `-n 0` prints none, and with --follow only what comes next."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from consumer.cli.tail import TailFilter, tail
from tests.integration.conftest import Topics, engine_settings
from tests.integration.kafka_io import create_topic

RECORDS = 100_000
PARTITIONS = 6
ERROR_EVERY = 500  # one error envelope in 500: a filter that matches rarely
# ms; record i is stamped T0 + i: recent, or the topic's retention would delete them.
T0 = int(time.time() * 1000) - 3_600_000


def envelope(i: int) -> bytes:
    status = "error" if i % ERROR_EVERY == 0 else "success"
    body = {
        "request_id": f"r{i}",
        "action": "log_message",
        "project": "big",
        "status": status,
        "error": {"code": "upstream_error", "message": "boom"} if status == "error" else None,
        "finished_at": f"t{i}",
        "duration_ms": 1.0,
        "attempts": 1,
    }
    return json.dumps(body).encode()


@pytest.fixture
async def big_results(kafka_bootstrap: str, topics: Topics) -> AsyncIterator[Topics]:
    """100,000 envelopes over 6 partitions, record i in partition i % 6 at time T0 + i."""
    await create_topic(kafka_bootstrap, topics.results, PARTITIONS)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=50)
    await producer.start()
    try:
        for p in range(PARTITIONS):
            batch = producer.create_batch()
            sent = []
            for i in range(p, RECORDS, PARTITIONS):
                value = envelope(i)
                if batch.append(key=None, value=value, timestamp=T0 + i) is None:
                    sent.append(await producer.send_batch(batch, topics.results, partition=p))
                    batch = producer.create_batch()
                    batch.append(key=None, value=value, timestamp=T0 + i)
            sent.append(await producer.send_batch(batch, topics.results, partition=p))
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    yield topics


def request_ids(out: io.StringIO) -> list[int]:
    return [int(json.loads(line)["request_id"][1:]) for line in out.getvalue().splitlines()]


async def test_the_newest_across_partitions_read_from_the_end(
    kafka_bootstrap: str, big_results: Topics
) -> None:
    settings = engine_settings(kafka_bootstrap, big_results)

    out = io.StringIO()
    shown = await tail(settings, "results", TailFilter(), out, lines=10, as_json=True)
    assert request_ids(out) == list(range(RECORDS - 10, RECORDS))  # newest, in time order
    assert len(shown.items) == 10
    assert shown.read <= 500, shown.read

    out = io.StringIO()
    shown = await tail(settings, "results", TailFilter(status="error"), out, lines=5, as_json=True)
    last_error = (RECORDS - 1) // ERROR_EVERY * ERROR_EVERY
    assert request_ids(out) == [last_error - ERROR_EVERY * k for k in (4, 3, 2, 1, 0)]
    # The 5 newest errors lie in the last ~2,500 records: a few thousand read, not 100,000.
    assert shown.read <= 6_000, shown.read

    out = io.StringIO()
    shown = await tail(settings, "results", TailFilter(), out, lines=0)
    assert out.getvalue() == "" and shown.read == 0


async def test_no_lines_with_follow_prints_only_what_comes_next(
    kafka_bootstrap: str, topics: Topics
) -> None:
    await create_topic(kafka_bootstrap, topics.results, 2)
    settings = engine_settings(kafka_bootstrap, topics)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.results, envelope(1))
        out = io.StringIO()
        stop = asyncio.Event()
        follower = asyncio.create_task(
            tail(settings, "results", TailFilter(), out, lines=0, follow=True, stop=stop)
        )
        await asyncio.sleep(3)  # past the start: an old record would have been printed
        assert out.getvalue() == ""
        await producer.send_and_wait(topics.results, envelope(2))
        for _ in range(100):
            if out.getvalue():
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(follower, 10)
    finally:
        await producer.stop()
    [line] = out.getvalue().splitlines()
    assert " r2 " in line
