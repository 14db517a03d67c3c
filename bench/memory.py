"""Scenario 4, memory: a large backlog (peak RSS stays bounded: the engine pauses fetching when
its buffer is full), then a steady stream (RSS does not grow over time)."""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import AIOKafkaProducer

from bench.kafka_io import ResultsWatcher, RunTopics, create_topics, load, request_bytes
from bench.processes import Child
from bench.report import say
from bench.runner import Context, output_topics

PARTITIONS = 3
PEAK_TARGET_MB = 300
SCENARIO = "4 memory"


def _log_record(i: int) -> tuple[bytes, bytes]:
    return f"key-{i % 1000}".encode(), request_bytes(f"mem-{i}", "log_message", {"message": "m"})


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return cov / var * 60


async def run(ctx: Context, backlog: int, steady_s: float, rate: float) -> None:
    say(f"\n== 4. memory: {backlog:,}-record backlog, then {rate:g}/s for {steady_s:g} s")
    requests = f"bench.requests.memory.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], PARTITIONS)
    loaded_at = time.monotonic()
    await load(ctx.bootstrap, requests, (_log_record(i) for i in range(backlog)))
    say(f"  loaded {backlog:,} records in {time.monotonic() - loaded_at:.0f} s")
    topics = RunTopics.fresh(requests, "memory")
    await output_topics(ctx, topics, PARTITIONS)
    watcher = ResultsWatcher(ctx.bootstrap, topics.results)
    await watcher.start()
    engine = ctx.engine("memory-engine", topics)
    engine.sample_every_s = 1.0
    try:
        engine.start()
        if not await watcher.wait_for(backlog, 120 + backlog / 300, lambda: engine.alive):
            say(f"  !! backlog: {watcher.seen.count:,}/{backlog:,}\n{engine.stderr_tail()}")
        _backlog_figures(ctx, backlog, watcher, engine.peak_rss_mb)
        window, sent = await _steady(ctx, topics, engine, backlog, seconds=steady_s, rate=rate)
        await watcher.wait_for(sent, 60, lambda: engine.alive)
    finally:
        await asyncio.to_thread(engine.stop)
        await watcher.stop()
    _steady_figures(ctx, engine, window, steady_s, rate)
    ctx.report.add(SCENARIO, "envelopes seen / requests sent", f"{watcher.seen.count:,} / {sent:,}")
    ctx.report.add(SCENARIO, "peak RSS over the whole run", f"{engine.peak_rss_mb:.0f} MB")


def _backlog_figures(ctx: Context, backlog: int, watcher: ResultsWatcher, peak: float) -> None:
    drained = watcher.seen
    took = (drained.last_seen or 0) - (drained.first_seen or 0)
    ctx.report.add(
        SCENARIO,
        f"backlog of {backlog:,}: drained in",
        f"{took:.0f} s ({drained.count / max(took, 1e-9):,.0f}/s)",
    )
    ctx.report.add(
        SCENARIO,
        "peak RSS while draining the backlog",
        f"{peak:.0f} MB",
        f"< {PEAK_TARGET_MB} MB",
        drained.count >= backlog and peak < PEAK_TARGET_MB,
    )


async def _steady(
    ctx: Context, topics: RunTopics, engine: Child, first: int, *, seconds: float, rate: float
) -> tuple[tuple[float, float], int]:
    """Produce at `rate` for `seconds`; returns the window (seconds since the engine started)
    and how many records the topic holds in all."""
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap, linger_ms=5, enable_idempotence=True
    )
    await producer.start()
    sent = first
    try:
        window_start = time.time() - engine.started_at
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            due = first + int(elapsed * rate)
            while sent < due:
                key, value = _log_record(sent)
                await producer.send(topics.requests, value=value, key=key)
                sent += 1
            await asyncio.sleep(0.05)
        await producer.flush()
    finally:
        await producer.stop()
    return (window_start, time.time() - engine.started_at), sent


def _steady_figures(
    ctx: Context, engine: Child, window: tuple[float, float], seconds: float, rate: float
) -> None:
    samples = [(t, mb) for t, mb in engine.rss if window[0] <= t <= window[1]]
    if len(samples) < 10:
        ctx.report.add(SCENARIO, "steady state", "too few RSS samples", "", False)
        return
    # The first fifth is the warm-up after the backlog; compare it with the last fifth.
    fifth = max(1, len(samples) // 5)
    early = sum(mb for _, mb in samples[:fifth]) / fifth
    late = sum(mb for _, mb in samples[-fifth:]) / fifth
    ctx.report.add(
        SCENARIO,
        f"steady {rate:g}/s for {seconds:g} s: RSS first fifth -> last fifth",
        f"{early:.0f} -> {late:.0f} MB ({late - early:+.1f} MB)",
        "no growth (< +5 %)",
        late < early * 1.05,
    )
    ctx.report.add(
        SCENARIO,
        "steady state RSS trend after the first fifth",
        f"{slope_mb_per_min(samples[fifth:]):+.2f} MB/min",
    )
