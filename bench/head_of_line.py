"""Scenario 3, head-of-line: one key whose calls take 2 s among 99 keys of fast calls.

All on ONE partition (the worst case: the slow key holds the partition's committed watermark).
Requests arrive while the engine runs; a fast request's end-to-end latency is from just before
it was produced to its envelope being visible to a read_committed consumer."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.io_bound import start_target
from bench.kafka_io import ResultsWatcher, RunTopics, create_topics, request_bytes
from bench.report import percentile, say
from bench.runner import Context, output_topics

FAST_KEYS = 99
FAST_MS = 5
SLOW_MS = 2000
SLOW_EVERY_S = 1.0


@dataclass
class Sender:
    """Produces http_request records and remembers when each was sent."""

    producer: AIOKafkaProducer
    topic: str
    port: int
    sent: dict[str, float] = field(default_factory=dict)
    fast: list[str] = field(default_factory=list)
    slow: list[str] = field(default_factory=list)

    async def send(self, request_id: str, key: str, ms: int, seq: int) -> None:
        url = f"http://127.0.0.1:{self.port}/d/{ms}/{key}/{seq}"
        value = request_bytes(request_id, "http_request", {"url": url})
        self.sent[request_id] = time.time()
        await self.producer.send(self.topic, value=value, key=key.encode())

    async def mixed_load(self, seconds: float, rate: float) -> None:
        """Fast calls at `rate` over the fast keys, one slow call every SLOW_EVERY_S."""
        started = time.monotonic()
        next_slow = started
        while (now := time.monotonic()) < started + seconds:
            if now >= next_slow:
                self.slow.append(f"slow-{len(self.slow)}")
                await self.send(self.slow[-1], "slow-key", SLOW_MS, len(self.slow) - 1)
                next_slow += SLOW_EVERY_S
            due = started + len(self.fast) / rate
            if now >= due:
                n = len(self.fast)
                self.fast.append(f"fast-{n}")
                await self.send(self.fast[-1], f"fast-key-{n % FAST_KEYS}", FAST_MS, n // FAST_KEYS)
            else:
                await asyncio.sleep(min(due, next_slow) - now)
        await self.producer.flush()


async def run(ctx: Context, seconds: float, rate: float) -> None:
    say(
        f"\n== 3. head-of-line: 1 key of {SLOW_MS} ms calls (one per {SLOW_EVERY_S:g} s) among "
        f"{FAST_KEYS} keys of {FAST_MS} ms calls ({rate:g}/s) for {seconds:g} s, 1 partition"
    )
    target, port = await start_target(ctx, "hol-target")
    requests = f"bench.requests.hol.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], 1)
    topics = RunTopics.fresh(requests, "hol")
    await output_topics(ctx, topics, 3)
    watcher = ResultsWatcher(ctx.bootstrap, topics.results, keep_values=True)
    await watcher.start()
    engine = ctx.engine("hol-engine", topics, EXECUTION_HTTP_ALLOWED_NETWORKS="127.0.0.0/8")
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap, linger_ms=0, enable_idempotence=True
    )
    await producer.start()
    sender = Sender(producer, requests, port)
    try:
        engine.start()
        await sender.send("warm-up", "warm-up", FAST_MS, 0)
        if not await watcher.wait_for(1, 120, lambda: engine.alive):
            raise RuntimeError(f"the engine did not answer:\n{engine.stderr_tail()}")
        await sender.mixed_load(seconds, rate)
        # Every fast envelope (plus the warm-up's); the slow key's are still queued behind it.
        await watcher.wait_for(len(sender.fast) + 1, 60, lambda: engine.alive)
    finally:
        await producer.stop()
        await asyncio.to_thread(engine.stop)
        await watcher.stop()
        target.stop()
    _figures(ctx, sender, {key.decode(): at for at, key, _ in watcher.seen.records})
    _stages(ctx, sender, watcher.seen.envelopes())


def _figures(ctx: Context, sender: Sender, seen_at: dict[str, float]) -> None:
    latencies = [seen_at[i] - sender.sent[i] for i in sender.fast if i in seen_at]
    slow_seen = sum(1 for i in sender.slow if i in seen_at)
    scenario = "3 head-of-line"
    if not latencies:
        ctx.report.add(scenario, "fast keys' envelopes", "none seen", "all", False)
        return
    p99 = percentile(latencies, 99)
    ctx.report.add(
        scenario,
        f"fast keys' end-to-end latency p99 ({len(sender.fast):,} requests)",
        f"{p99 * 1000:.0f} ms",
        "< 200 ms",
        p99 < 0.2 and len(latencies) == len(sender.fast),
    )
    ctx.report.add(
        scenario,
        "fast keys' latency p50 / max",
        f"{percentile(latencies, 50) * 1000:.0f} / {max(latencies) * 1000:.0f} ms",
    )
    ctx.report.add(
        scenario,
        "fast / slow envelopes seen (of sent)",
        f"{len(latencies):,}/{len(sender.fast):,} / {slow_seen}/{len(sender.slow)}",
    )


def _stages(ctx: Context, sender: Sender, envelopes: list[tuple[float, dict[str, Any]]]) -> None:
    """Where a fast request's time goes: waiting to start (fetch, queue), running, and from
    its end to its envelope being visible (the partition's next transaction)."""
    fast = set(sender.fast)
    waits, runs, publishes = [], [], []
    for seen, envelope in envelopes:
        request_id = envelope["request_id"]
        if request_id not in fast:
            continue
        started = datetime.fromisoformat(envelope["started_at"]).timestamp()
        finished = datetime.fromisoformat(envelope["finished_at"]).timestamp()
        waits.append(started - sender.sent[request_id])
        runs.append(finished - started)
        publishes.append(seen - finished)
    if not waits:
        return
    ctx.report.add(
        "3 head-of-line",
        "fast keys p50 / p99: produced -> started / running / finished -> visible",
        " / ".join(
            f"{percentile(stage, 50) * 1000:.0f}-{percentile(stage, 99) * 1000:.0f}"
            for stage in (waits, runs, publishes)
        )
        + " ms",
    )
