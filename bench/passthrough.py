"""Scenario 1, pass-through: engine vs the raw aiokafka floor vs FastStream, same data."""

from __future__ import annotations

import uuid

from bench.kafka_io import RunTopics, create_topics, load, request_bytes
from bench.processes import python_module
from bench.report import median, say
from bench.runner import Context, RunResult, output_topics, run_until

KINDS = ("engine", "raw", "faststream")
# Not a baseline: the engine with its four per-record log events turned off (log level
# warning), to show what they cost. Run with --kinds engine,raw,faststream,engine-quiet.
QUIET = "engine-quiet"
LABELS = {
    "engine": "engine",
    "baseline": "engine of BENCH_BASELINE",
    "raw": "raw aiokafka floor",
    "faststream": "FastStream",
    QUIET: "engine at log level warning (no per-record log events)",
}
PARTITIONS = 3


async def run(
    ctx: Context,
    records: int,
    rounds: int,
    transactional_floor: bool,
    kinds: tuple[str, ...] = KINDS,
) -> None:
    say(
        f"\n== 1. pass-through: {records:,} log_message requests, {PARTITIONS} partitions, "
        f"runs alternated ({', '.join(kinds)}) x {rounds}"
    )
    requests = f"bench.requests.passthrough.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], PARTITIONS)
    loaded = await load(
        ctx.bootstrap,
        requests,
        (
            (
                f"key-{i % 1000}".encode(),
                request_bytes(f"pt-{i}", "log_message", {"message": f"n{i}"}),
            )
            for i in range(records)
        ),
    )
    say(f"  loaded {loaded:,} records into {requests}")
    results: dict[str, list[RunResult]] = {kind: [] for kind in kinds}
    for round_no in range(1, rounds + 1):
        for kind in kinds:
            result = await _one(
                ctx,
                kind,
                requests,
                records=records,
                transactional=transactional_floor,
                round_no=round_no,
            )
            results[kind].append(result)
            say(
                f"  round {round_no} {kind:<10} {result.processing_s:7.2f} s taken up->visible "
                f"({result.rate:,.0f}/s), {result.total_s:6.2f} s from spawn, "
                f"CPU {result.cpu_s:.1f} s, peak RSS {result.peak_rss_mb:.0f} MB, "
                f"duplicates {result.seen.duplicates}"
                + ("" if result.completed else "  INCOMPLETE")
            )
    _figures(ctx, results, records, transactional_floor)


async def _one(
    ctx: Context, kind: str, requests: str, *, records: int, transactional: bool, round_no: int
) -> RunResult:
    topics = RunTopics.fresh(requests, f"{kind}{round_no}")
    await output_topics(ctx, topics, PARTITIONS)
    name = f"passthrough-{kind}-{round_no}"
    args = [ctx.bootstrap, topics.requests, topics.results, topics.group]
    if kind == "engine":
        child = ctx.engine(name, topics)
    elif kind == "baseline":
        child = ctx.engine(name, topics, baseline=True)
    elif kind == QUIET:
        child = ctx.engine(name, topics, EXECUTION_LOG_LEVEL="warning")
    elif kind == "raw":
        child = python_module(
            name,
            "bench.floor",
            [*args, *(["--transactional"] if transactional else [])],
            ctx.log_dir,
        )
    else:
        child = python_module(name, "bench.faststream_app", args, ctx.log_dir)
    return await run_until(
        ctx, name, topics, [child], records, timeout_s=60 + records / 200, keep_values=True
    )


def _figures(
    ctx: Context, results: dict[str, list[RunResult]], records: int, transactional: bool
) -> None:
    scenario = "1 pass-through"
    times = {kind: median([r.processing_s for r in runs]) for kind, runs in results.items()}
    complete = all(r.completed for runs in results.values() for r in runs)
    for kind in results:
        mode = " (transaction per batch)" if kind == "raw" and transactional else ""
        ctx.report.add(
            scenario,
            f"{LABELS[kind]}{mode}: {records:,} envelopes, median first taken up -> last visible",
            f"{times[kind]:.2f} s ({records / times[kind]:,.0f}/s)",
        )
    # CPU per envelope does not depend on how busy the machine is: the fairest comparison on
    # a shared host, and what bounds throughput once the engine is CPU-bound.
    cpu = {kind: median([r.cpu_s for r in runs]) / records * 1e6 for kind, runs in results.items()}
    ctx.report.add(
        scenario,
        f"CPU per envelope: {' / '.join(results)}",
        " / ".join(f"{cpu[kind]:.0f}" for kind in results) + " us",
    )
    if "engine" in results:
        peak = max(r.peak_rss_mb for r in results["engine"])
        ctx.report.add(scenario, "engine peak RSS", f"{peak:.0f} MB")
    if not set(KINDS) <= set(results):
        return
    engine_raw = times["engine"] / times["raw"]
    engine_fs = times["engine"] / times["faststream"]
    ctx.report.add(
        scenario, "engine / raw", f"{engine_raw:.2f}", "<= 1.3", complete and engine_raw <= 1.3
    )
    ctx.report.add(
        scenario, "engine / FastStream", f"{engine_fs:.2f}", "< 1.0", complete and engine_fs < 1.0
    )
    ctx.report.add(
        scenario, "engine / raw, in CPU per envelope", f"{cpu['engine'] / cpu['raw']:.1f}"
    )
    totals = {kind: median([r.total_s for r in runs]) for kind, runs in results.items()}
    ctx.report.add(
        scenario,
        "from process start (imports, group join included): engine / raw / FastStream",
        f"{totals['engine']:.2f} / {totals['raw']:.2f} / {totals['faststream']:.2f} s",
    )
