"""Scenario 2, I/O-bound: http_request calls to a slow loopback target, many keys, ONE partition.

Throughput is measured from the first action start (the envelopes' `started_at`) to the last
envelope visible, against the ideal `max_in_flight / latency`. The target records the arrival
order of each key's calls: a key's calls must arrive in offset order."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx

from bench import io_candidates
from bench.kafka_io import ResultsWatcher, RunTopics, create_topics, load, request_bytes
from bench.processes import Child, cpu_seconds, free_port, python_module
from bench.report import percentile, say
from bench.runner import Context, output_topics

DEFAULT_MAX_IN_FLIGHT = 200


async def start_target(ctx: Context, name: str) -> tuple[Child, int]:
    port = free_port()
    target = python_module(name, "bench.http_target", [str(port)], ctx.log_dir).start()
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            try:
                await client.get(f"http://127.0.0.1:{port}/arrivals")
                return target, port
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"the HTTP target did not start:\n{target.stderr_tail()}")


async def arrivals(port: int) -> tuple[list[tuple[str, int, float]], int]:
    """The calls the target received, in order, and the connections it accepted."""
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"http://127.0.0.1:{port}/arrivals")
        connections = int((await client.get(f"http://127.0.0.1:{port}/connections")).text)
    calls = [(key, int(seq), float(at)) for key, seq, at in answer.json()]
    # Our own two requests came on one more connection.
    return calls, connections - 1


def order_violations(seen: list[tuple[str, int, float]]) -> int:
    """Calls that arrived before an earlier call of the same key (per-key order broken)."""
    last: dict[str, int] = {}
    broken = 0
    for key, seq, _ in seen:
        if seq < last.get(key, -1):
            broken += 1
        last[key] = max(seq, last.get(key, -1))
    return broken


async def connections_accepted(port: int) -> int:
    """The target's count of accepted connections (asked on a connection of its own)."""
    async with httpx.AsyncClient(timeout=30) as client:
        return int((await client.get(f"http://127.0.0.1:{port}/connections")).text)


async def clients_alone(
    port: int, calls: int, keys: int, latency_ms: int, limit: int
) -> list[io_candidates.Measured]:
    """Each candidate HTTP client on its own (no Kafka, no engine), the same calls at the same
    concurrency, in this process: what the client costs by itself bounds what the engine can
    do. Returns (name, CPU seconds per call, calls/s, connections opened) per candidate."""
    run = {"calls": calls, "keys": keys, "latency_ms": latency_ms, "limit": limit}

    async def counter() -> int:
        return await connections_accepted(port)

    found = [
        await io_candidates.chosen(port, counter, **run),
        await io_candidates.aiohttp_plain(port, counter, **run),
        await io_candidates.httpx_over_aiohttp(port, counter, **run),
        await io_candidates.httpx_guarded(port, counter, **run),
    ]
    return [m for m in found if m is not None]


async def run(ctx: Context, requests_count: int, keys: int, latency_ms: int) -> None:
    max_in_flight = int(ctx.engine_env.get("EXECUTION_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT))
    ideal = max_in_flight / (latency_ms / 1000)
    say(
        f"\n== 2. I/O-bound: {requests_count:,} http_request calls answered after {latency_ms} ms, "
        f"{keys} keys, 1 partition; ideal {max_in_flight}/{latency_ms / 1000:g} s = {ideal:,.0f}/s"
    )
    target, port = await start_target(ctx, "io-target")
    requests = f"bench.requests.io.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], 1)
    topics = RunTopics.fresh(requests, "io")
    await output_topics(ctx, topics, 3)

    def record(i: int, key: str, seq: int) -> tuple[bytes, bytes]:
        url = f"http://127.0.0.1:{port}/d/{latency_ms}/{key}/{seq}"
        return key.encode(), request_bytes(f"io-{i}", "http_request", {"url": url})

    watcher = ResultsWatcher(ctx.bootstrap, topics.results, keep_values=True)
    await watcher.start()
    engine = ctx.engine("io-engine", topics, EXECUTION_HTTP_ALLOWED_NETWORKS="127.0.0.0/8")
    try:
        engine.start()
        # A warm-up call first: start-up and joining the group stay out of the figures.
        await load(ctx.bootstrap, requests, [record(-1, "warm-up", 0)])
        if not await watcher.wait_for(1, 120, lambda: engine.alive):
            raise RuntimeError(f"the engine did not answer:\n{engine.stderr_tail()}")
        assert engine.proc is not None
        cpu_before = cpu_seconds(engine.proc.pid)
        await load(
            ctx.bootstrap,
            requests,
            (record(i, f"key-{i % keys}", i // keys) for i in range(requests_count)),
        )
        completed = await watcher.wait_for(requests_count + 1, 120, lambda: engine.alive)
        cpu = cpu_seconds(engine.proc.pid) - cpu_before
        calls, connections = await arrivals(port)
        alone = await clients_alone(port, requests_count, keys, latency_ms, max_in_flight)
    finally:
        await asyncio.to_thread(engine.stop)
        await watcher.stop()
        target.stop()
    envelopes = [(seen, e) for seen, e in watcher.seen.envelopes() if e["request_id"] != "io--1"]
    calls = [call for call in calls if call[0].startswith("key-")]
    per_call = _figures(
        ctx, envelopes, calls, connections - 1, cpu, completed=completed, ideal=ideal
    )
    baseline = alone[0].cpu_per_call_s
    for measured in alone:
        ctx.report.add(
            "2 I/O-bound",
            f"alone (no Kafka, no engine): {measured.name}: CPU per call, x the engine's "
            "client, calls/s, connections opened",
            f"{measured.cpu_per_call_s * 1e6:.0f} us, x{measured.cpu_per_call_s / baseline:.2f}, "
            f"{measured.calls_per_s:,.0f}/s, {measured.connections:,}",
        )
    ctx.report.add(
        "2 I/O-bound",
        "engine CPU per call beyond its HTTP client's own (Kafka, envelope, logs, runner)",
        f"{(per_call - baseline) * 1e6:.0f} us",
    )


def _figures(
    ctx: Context,
    envelopes: list[tuple[float, dict[str, Any]]],
    calls: list[tuple[str, int, float]],
    connections: int,
    cpu: float,
    *,
    completed: bool,
    ideal: float,
) -> float:
    """Adds the run's figures to the report; returns the engine's CPU seconds per call."""
    requests_count = len(envelopes)
    ok = sum(1 for _, e in envelopes if e.get("status") == "success")
    first_start = min(datetime.fromisoformat(e["started_at"]).timestamp() for _, e in envelopes)
    last_seen = max(seen for seen, _ in envelopes)
    rate = len(envelopes) / (last_seen - first_start)
    broken = order_violations(calls)
    repeated = len(calls) - len({(key, seq) for key, seq, _ in calls})
    scenario = "2 I/O-bound"
    ctx.report.add(
        scenario,
        f"throughput ({requests_count:,} calls, first start -> last envelope visible)",
        f"{rate:,.0f}/s = {100 * rate / ideal:.0f} % of ideal {ideal:,.0f}/s",
        ">= 70 %",
        completed and rate >= 0.7 * ideal,
    )
    ctx.report.add(
        scenario,
        "per-key order (calls arriving out of order)",
        f"{broken}",
        "0",
        broken == 0 and len(calls) >= requests_count,
    )
    ctx.report.add(
        scenario,
        "successful envelopes / calls received / repeated calls",
        f"{ok:,} / {len(calls):,} / {repeated}",
    )
    durations = [float(e["duration_ms"]) for _, e in envelopes]
    ctx.report.add(
        scenario,
        "action duration p50 / p99 (envelope duration_ms)",
        f"{percentile(durations, 50):.0f} / {percentile(durations, 99):.0f} ms",
    )
    first_call = min(at for _, _, at in calls)
    last_call = max(at for _, _, at in calls)
    ctx.report.add(
        scenario,
        "first start -> last call arrived -> last envelope visible",
        f"{first_call - first_start:.2f} / {last_call - first_start:.2f} / "
        f"{last_seen - first_start:.2f} s",
    )
    ctx.report.add(
        scenario,
        f"TCP connections the engine opened ({requests_count:,} calls)",
        f"{connections:,}",
    )
    per_call = cpu / len(envelopes)
    # One event loop is one core: this is the most it could do if it had a core to itself.
    ctx.report.add(
        scenario,
        "engine CPU per call -> one-core ceiling",
        f"{per_call * 1e6:.0f} us -> {1 / per_call:,.0f}/s" if per_call > 0 else "n/a",
        "<= 180 us",
        0 < per_call <= 180e-6,
    )
    return per_call
