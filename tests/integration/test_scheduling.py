"""Key-ordered concurrency, backpressure and the committed watermark, on a real broker."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime

from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import (
    Outgoing,
    committed_total,
    create_topic,
    envelopes_by_id,
    produce,
    read_topic,
)
from tests.integration.testing_actions import Record, registry_with


def record_request(key: str, seq: int, sleep_ms: int, project: str = "proj") -> Outgoing:
    return Outgoing.request(
        {
            "request_id": f"{key}-{seq}",
            "action": "test_record",
            "project": project,
            "params": {"key": key, "seq": seq, "sleep_ms": sleep_ms},
        },
        key=key,
    )


async def test_same_key_in_offset_order_different_keys_concurrently(
    kafka_bootstrap: str, topics: Topics
) -> None:
    rng = random.Random(7)
    keys = [f"key-{i}" for i in range(20)]
    # Interleaved keys with random durations: a later record of a key finishing first would
    # show up as out-of-order if lanes were not respected.
    records = [record_request(k, seq, rng.randint(0, 30)) for seq in range(10) for k in keys]
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    await produce(kafka_bootstrap, topics.requests, records)

    recorder = Record()
    settings = engine_settings(
        kafka_bootstrap, topics, max_in_flight=8, max_in_flight_per_project=8
    )
    async with running_engine(settings, registry=registry_with(recorder)):
        results = await read_topic(kafka_bootstrap, topics.results, expect=len(records))

    assert len(results) == len(records)
    assert all(len(v) == 1 for v in envelopes_by_id(results).values())
    assert recorder.order == {k: list(range(10)) for k in keys}
    assert recorder.max_running == 8, "different keys run concurrently up to the limit"
    assert await committed_total(kafka_bootstrap, topics.group, topics.requests) == len(records)


async def test_a_slow_key_does_not_hold_back_other_keys(
    kafka_bootstrap: str, topics: Topics
) -> None:
    slow = [record_request("slow", seq, 1500) for seq in range(2)]
    fast = [record_request(f"fast-{i}", 0, 0) for i in range(50)]
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    await produce(kafka_bootstrap, topics.requests, slow + fast)

    recorder = Record()
    settings = engine_settings(kafka_bootstrap, topics, max_in_flight=10)
    async with running_engine(settings, registry=registry_with(recorder)):
        # All fast keys finish while the slow key's first call is still running.
        results = await read_topic(
            kafka_bootstrap, topics.results, expect=len(fast), grace_s=0.0, timeout_s=30
        )
        done = {r.key.decode() for r in results}
        assert {f"fast-{i}-0" for i in range(50)} <= done
        assert "slow-1" not in done
        final = await read_topic(kafka_bootstrap, topics.results, expect=len(slow) + len(fast))
    assert len(final) == len(slow) + len(fast)
    assert recorder.order["slow"] == [0, 1]


async def test_backpressure_bounds_what_is_held(kafka_bootstrap: str, topics: Topics) -> None:
    records = [record_request(f"k{i % 40}", i // 40, 5) for i in range(400)]
    await create_topic(kafka_bootstrap, topics.requests, partitions=2)
    await produce(kafka_bootstrap, topics.requests, records)

    recorder = Record()
    settings = engine_settings(kafka_bootstrap, topics, max_in_flight=4, max_buffered=20)
    async with running_engine(settings, registry=registry_with(recorder)) as engine:
        peak_held = 0
        paused_seen = False
        reader = asyncio.create_task(
            read_topic(kafka_bootstrap, topics.results, expect=len(records))
        )
        while not reader.done():
            peak_held = max(peak_held, engine.scheduler.held if engine.scheduler else 0)
            paused_seen = paused_seen or engine.paused
            await asyncio.sleep(0.005)
        results = reader.result()

    assert len(results) == len(records)
    assert paused_seen, "a full buffer pauses the partitions"
    # The bound: max_buffered, plus at most one record fetched per partition while pausing.
    assert 4 <= peak_held <= 20 + 2
    assert recorder.max_running <= 4
    assert all(recorder.order[f"k{i}"] == list(range(10)) for i in range(40))


async def test_unfinished_work_is_not_committed_and_runs_again(
    kafka_bootstrap: str, topics: Topics
) -> None:
    """Stopping with work still queued or running loses nothing: what was not finished is not
    committed, and the next engine in the group runs it (at-least-once)."""
    records = [record_request(f"k{i % 5}", i // 5, 200) for i in range(50)]
    await create_topic(kafka_bootstrap, topics.requests, partitions=1)
    await produce(kafka_bootstrap, topics.requests, records)

    settings = engine_settings(kafka_bootstrap, topics, max_in_flight=5, drain_timeout_s=0.05)
    async with running_engine(settings, registry=registry_with(Record())):
        await read_topic(kafka_bootstrap, topics.results, expect=5, grace_s=0.0)
    committed_after_stop = await committed_total(kafka_bootstrap, topics.group, topics.requests)
    assert 5 <= committed_after_stop < len(records)

    async with running_engine(settings, registry=registry_with(Record())):
        results = await read_topic(kafka_bootstrap, topics.results, expect=len(records))
    by_id = envelopes_by_id(results)
    assert set(by_id) == {f"k{i % 5}-{i // 5}" for i in range(50)}, "nothing lost"
    assert await committed_total(kafka_bootstrap, topics.group, topics.requests) == len(records)


async def test_a_projects_flood_does_not_hold_back_another_projects_requests(
    kafka_bootstrap: str, topics: Topics
) -> None:
    """The bench's `fairness` scenario, smaller: A's 60 one-second calls (one key each, all
    ready at once) fill its share of 10 slots (9 by default); B's 10 quick calls, published a
    second later on the same partitions, run in the slot A may not take, long before A's
    flood ends (first come first served, they waited for all of A's to start)."""
    flood = [record_request(f"a{i}", 0, 1000, project="a") for i in range(60)]
    quick = [record_request(f"b{i}", 0, 0, project="b") for i in range(10)]
    await create_topic(kafka_bootstrap, topics.requests, partitions=2)

    recorder = Record()
    settings = engine_settings(kafka_bootstrap, topics, max_in_flight=10)
    async with running_engine(settings, registry=registry_with(recorder)):
        await produce(kafka_bootstrap, topics.requests, [record_request("warm", 0, 0)])
        await read_topic(kafka_bootstrap, topics.results, expect=1, grace_s=0)
        await produce(kafka_bootstrap, topics.requests, flood)
        await asyncio.sleep(1.0)
        b_sent = time.time()
        await produce(kafka_bootstrap, topics.requests, quick)
        results = await read_topic(kafka_bootstrap, topics.results, expect=71, timeout_s=60)

    by_id = envelopes_by_id(results)
    assert len(results) == 71 and all(len(v) == 1 for v in by_id.values())
    envelopes = {rid: v[0] for rid, v in by_id.items()}

    def at(request_id: str, field: str) -> float:
        return datetime.fromisoformat(envelopes[request_id][field]).timestamp()

    b_done = max(at(f"b{i}-0", "finished_at") for i in range(10))
    a_ids = [f"a{i}-0" for i in range(60)]
    a_start = min(at(i, "started_at") for i in a_ids)
    a_done = max(at(i, "finished_at") for i in a_ids)
    # Old behaviour: B's calls waited behind A's whole flood (~5 s more).
    assert b_done - b_sent < 2.0, f"B finished {b_done - b_sent:.1f} s after it was published"
    assert a_done - b_done > 2.0, "B's calls ran while A's flood was still running"
    # A's flood at its share: 60 calls of 1 s, 9 at a time (7 rounds), with room for a slow
    # machine.
    assert a_done - a_start < 12.0
    assert recorder.max_running <= 10
