"""Scenario `fairness`: one project's flood of slow calls beside another project's quick ones.

Project A publishes `a_calls` http_request calls to a target answering after `a_latency_ms`;
`b_delay_s` later project B publishes `b_calls` calls to another target answering at once, on
the same partitions (3), one key per call: a burst of distinct events, each ready to run. B's
latency is from just before its records were produced to each envelope visible to a
read_committed consumer; A's throughput from A's first action start to its last envelope
visible.

Rounds, each on a fresh engine and topics: A alone; A then B; A then B with sharing off
(`EXECUTION_MAX_IN_FLIGHT_PER_PROJECT` = `EXECUTION_MAX_IN_FLIGHT`: one queue, first come first
served); A then B with A's backlog over `EXECUTION_MAX_BUFFERED` (then B's records are not
fetched until A's backlog fits the buffer).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench.io_bound import DEFAULT_MAX_IN_FLIGHT, start_target
from bench.kafka_io import ResultsWatcher, RunTopics, create_topics, load, request_bytes
from bench.processes import Child
from bench.report import percentile, say
from bench.runner import Context, output_topics

PARTITIONS = 3
SCENARIO = "fairness"


@dataclass(frozen=True)
class Load:
    a_calls: int
    a_latency_ms: int
    b_calls: int
    b_delay_s: float
    a_port: int
    b_port: int

    def a_records(self) -> list[tuple[bytes, bytes]]:
        out = []
        for i in range(self.a_calls):
            key = f"a-{i}"
            url = f"http://127.0.0.1:{self.a_port}/d/{self.a_latency_ms}/{key}/0"
            out.append((key.encode(), request_bytes(f"a-{i}", "http_request", {"url": url}, "a")))
        return out

    def b_records(self) -> list[tuple[bytes, bytes]]:
        out = []
        for i in range(self.b_calls):
            url = f"http://127.0.0.1:{self.b_port}/d/0/b-{i}/0"
            out.append(
                (f"b-{i}".encode(), request_bytes(f"b-{i}", "http_request", {"url": url}, "b"))
            )
        return out


@dataclass(frozen=True)
class Round:
    label: str
    a_rate: float  # A's envelopes per second
    a_span_s: float
    b_latencies: list[float]
    completed: bool


async def run(
    ctx: Context,
    *,
    a_calls: int,
    a_latency_ms: int,
    b_calls: int,
    b_delay_s: float,
    over_buffer: int,
) -> None:
    max_in_flight = int(ctx.engine_env.get("EXECUTION_MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT))
    say(
        f"\n== fairness: project A {a_calls:,} http_request calls answered after "
        f"{a_latency_ms} ms; {b_delay_s:g} s later project B {b_calls} calls answered at once; "
        f"{PARTITIONS} partitions, EXECUTION_MAX_IN_FLIGHT {max_in_flight}"
    )
    a_target, a_port = await start_target(ctx, "fairness-a-target")
    b_target, b_port = await start_target(ctx, "fairness-b-target")
    load_ = Load(a_calls, a_latency_ms, b_calls, b_delay_s, a_port, b_port)
    try:
        alone = await _round(ctx, "A alone", load_, with_b=False)
        shared = await _round(ctx, "A then B", load_, with_b=True)
        off = await _round(
            ctx,
            "A then B, sharing off",
            load_,
            with_b=True,
            EXECUTION_MAX_IN_FLIGHT_PER_PROJECT=str(max_in_flight),
        )
        over = await _round(
            ctx,
            f"A then B, EXECUTION_MAX_BUFFERED {over_buffer:,}",
            load_,
            with_b=True,
            EXECUTION_MAX_BUFFERED=str(over_buffer),
        )
    finally:
        a_target.stop()
        b_target.stop()
    _figures(ctx, alone, shared, off, over)


async def _round(ctx: Context, label: str, load_: Load, *, with_b: bool, **settings: str) -> Round:
    requests = f"bench.requests.fair.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], PARTITIONS)
    topics = RunTopics.fresh(requests, "fair")
    await output_topics(ctx, topics, PARTITIONS)
    watcher = ResultsWatcher(ctx.bootstrap, topics.results, keep_values=True)
    await watcher.start()
    # Engine settings only (str values): never `ctx.engine`'s own `baseline` flag.
    env: dict[str, Any] = {"EXECUTION_HTTP_ALLOWED_NETWORKS": "127.0.0.0/8", **settings}
    engine = ctx.engine("fairness-engine", topics, **env)
    expected = 1 + load_.a_calls + (load_.b_calls if with_b else 0)
    try:
        engine.start()
        warm_url = f"http://127.0.0.1:{load_.b_port}/d/0/warm/0"
        warm = request_bytes("warm-up", "http_request", {"url": warm_url}, "warm")
        await load(ctx.bootstrap, requests, [(b"warm", warm)])
        if not await watcher.wait_for(1, 120, lambda: engine.alive):
            raise RuntimeError(f"the engine did not answer:\n{engine.stderr_tail()}")
        await load(ctx.bootstrap, requests, load_.a_records())
        b_sent = 0.0
        if with_b:
            await asyncio.sleep(load_.b_delay_s)
            b_sent = datetime.now().timestamp()
            await load(ctx.bootstrap, requests, load_.b_records())
        timeout = 60 + 3 * load_.a_calls * load_.a_latency_ms / 1000 / 100
        completed = await watcher.wait_for(expected, timeout, lambda: engine.alive)
    finally:
        await asyncio.to_thread(engine.stop)
        await watcher.stop()
    if not completed:
        _explain(engine, watcher.seen.count, expected)
    result = _measure(label, watcher.seen.envelopes(), b_sent, completed=completed)
    b = result.b_latencies
    say(
        f"  {label}: A {result.a_rate:,.1f}/s over {result.a_span_s:.1f} s"
        + (f"; B p50 {percentile(b, 50):.2f} s, p99 {percentile(b, 99):.2f} s" if b else "")
    )
    return result


def _explain(engine: Child, seen: int, expected: int) -> None:
    say(f"  !! saw {seen}/{expected} envelopes\n{engine.stderr_tail()}")


def _measure(
    label: str, envelopes: list[tuple[float, dict[str, Any]]], b_sent: float, *, completed: bool
) -> Round:
    a = [(seen, e) for seen, e in envelopes if e["request_id"].startswith("a-")]
    first_start = min(datetime.fromisoformat(e["started_at"]).timestamp() for _, e in a)
    last_seen = max(seen for seen, _ in a)
    span = last_seen - first_start
    b = [seen - b_sent for seen, e in envelopes if e["request_id"].startswith("b-")]
    return Round(label, len(a) / span if span > 0 else float("nan"), span, b, completed)


def _figures(ctx: Context, alone: Round, shared: Round, off: Round, over: Round) -> None:
    report = ctx.report
    for r in (shared, off, over):
        if not r.b_latencies:
            report.add(SCENARIO, f"{r.label}: B's envelopes", "none seen", "all", False)
            continue
        p50, p99 = percentile(r.b_latencies, 50), percentile(r.b_latencies, 99)
        met = None if r is not shared else (p99 < 1.0 and r.completed)
        report.add(
            SCENARIO,
            f"{r.label}: B's publish -> envelope visible p50 / p99 ({len(r.b_latencies)} calls)",
            f"{p50:.2f} / {p99:.2f} s",
            "p99 < 1 s" if r is shared else "",
            met,
        )
    ratio = shared.a_rate / alone.a_rate
    report.add(
        SCENARIO,
        "A's throughput beside B / alone (first start -> last envelope visible)",
        f"{shared.a_rate:,.1f} / {alone.a_rate:,.1f} per s = {100 * ratio:.0f} %",
        ">= 90 %",
        ratio >= 0.9 and shared.completed and alone.completed,
    )
    report.add(
        SCENARIO,
        "A's throughput, sharing off / over the buffer",
        f"{off.a_rate:,.1f} / {over.a_rate:,.1f} per s",
    )
