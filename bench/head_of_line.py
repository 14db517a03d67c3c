"""Scenario 3, head-of-line: one key whose calls take 2 s among 99 keys of fast calls.

All on ONE partition (the worst case: the slow key holds the partition's committed watermark).
Requests arrive while the engine runs; a fast request's end-to-end latency is from just before
it was produced to its envelope being visible to a read_committed consumer."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer

from bench.io_bound import start_target
from bench.kafka_io import ResultsWatcher, RunTopics, create_topics, request_bytes
from bench.report import percentile, say
from bench.runner import Context, output_topics

FAST_KEYS = 99
FAST_MS = 5
SLOW_MS = 2000
SLOW_EVERY_S = 1.0


async def run(ctx: Context, seconds: float, rate: float) -> None:
    say(f"\n== 3. head-of-line: 1 key of {SLOW_MS} ms calls (one per {SLOW_EVERY_S:g} s) among "
        f"{FAST_KEYS} keys of {FAST_MS} ms calls ({rate:g}/s) for {seconds:g} s, 1 partition")
    target, port = await start_target(ctx, "hol-target")
    requests = f"bench.requests.hol.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], 1)
    topics = RunTopics.fresh(requests, "hol")
    await output_topics(ctx, topics, 3)
    watcher = ResultsWatcher(ctx.bootstrap, topics.results, keep_values=True)
    await watcher.start()
    engine = ctx.engine("hol-engine", topics, EXECUTION_HTTP_ALLOWED_NETWORKS="127.0.0.0/8")
    producer = AIOKafkaProducer(bootstrap_servers=ctx.bootstrap, linger_ms=0)
    await producer.start()
    sent: dict[str, float] = {}
    fast_ids: list[str] = []
    slow_ids: list[str] = []

    async def send(request_id: str, key: str, ms: int, seq: int) -> None:
        url = f"http://127.0.0.1:{port}/d/{ms}/{key}/{seq}"
        value = request_bytes(request_id, "http_request", {"url": url})
        sent[request_id] = time.time()
        await producer.send(topics.requests, value=value, key=key.encode())

    try:
        engine.start()
        await send("warm-up", "warm-up", FAST_MS, 0)
        if not await watcher.wait_for(1, 120, lambda: engine.alive):
            raise RuntimeError(f"the engine did not answer:\n{engine.stderr_tail()}")
        started = time.monotonic()
        next_slow = started
        n = 0
        while (now := time.monotonic()) < started + seconds:
            if now >= next_slow:
                slow_ids.append(f"slow-{len(slow_ids)}")
                await send(slow_ids[-1], "slow-key", SLOW_MS, len(slow_ids) - 1)
                next_slow += SLOW_EVERY_S
            due = started + n / rate
            if now >= due:
                key = n % FAST_KEYS
                fast_ids.append(f"fast-{n}")
                await send(fast_ids[-1], f"fast-key-{key}", FAST_MS, n // FAST_KEYS)
                n += 1
            else:
                await asyncio.sleep(min(due, next_slow) - now)
        await producer.flush()
        fast = set(fast_ids)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and engine.alive:
            seen_fast = sum(1 for _, key, _ in watcher.seen.records if key.decode() in fast)
            if seen_fast >= len(fast):
                break
            await asyncio.sleep(0.2)
    finally:
        await producer.stop()
        await asyncio.to_thread(engine.stop)
        await watcher.stop()
        target.stop()
    seen_at = {key.decode(): at for at, key, _ in watcher.seen.records}
    latencies = [seen_at[i] - sent[i] for i in fast_ids if i in seen_at]
    slow_latencies = [seen_at[i] - sent[i] for i in slow_ids if i in seen_at]
    scenario = "3 head-of-line"
    if not latencies:
        ctx.report.add(scenario, "fast keys' envelopes", "none seen", "all", False)
        return
    p99 = percentile(latencies, 99)
    ctx.report.add(scenario, f"fast keys' end-to-end latency p99 ({len(fast_ids):,} requests)",
                   f"{p99 * 1000:.0f} ms", "< 200 ms",
                   p99 < 0.2 and len(latencies) == len(fast_ids))
    ctx.report.add(scenario, "fast keys' latency p50 / max",
                   f"{percentile(latencies, 50) * 1000:.0f} / {max(latencies) * 1000:.0f} ms")
    ctx.report.add(scenario, "fast envelopes seen / slow envelopes seen (of sent)",
                   f"{len(latencies):,}/{len(fast_ids):,} / {len(slow_latencies)}/{len(slow_ids)}")
