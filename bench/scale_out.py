"""Scenario 5, scale-out: 1, 2, 3 engine processes in one group on a 6-partition topic."""

from __future__ import annotations

import uuid

from bench.kafka_io import RunTopics, create_topics, load, recount, request_bytes
from bench.report import say
from bench.runner import Context, output_topics, run_until

PARTITIONS = 6


async def run(ctx: Context, records: int, process_counts: list[int]) -> None:
    say(
        f"\n== 5. scale-out: {records:,} log_message requests on {PARTITIONS} partitions, "
        f"{', '.join(map(str, process_counts))} engine processes"
    )
    requests = f"bench.requests.scale.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], PARTITIONS)
    await load(
        ctx.bootstrap,
        requests,
        (
            (f"key-{i % 1000}".encode(), request_bytes(f"so-{i}", "log_message", {"message": "s"}))
            for i in range(records)
        ),
    )
    base: float | None = None
    for count in process_counts:
        topics = RunTopics.fresh(requests, f"x{count}")
        await output_topics(ctx, topics, PARTITIONS)
        engines = [ctx.engine(f"scale-{count}-{i}", topics) for i in range(count)]
        result = await run_until(
            ctx, f"scale-{count}", topics, engines, records, timeout_s=120 + records / 200
        )
        base = base or result.rate
        ctx.report.add(
            "5 scale-out",
            f"{count} process{'es' if count > 1 else ''}",
            f"{result.rate:,.0f}/s (x{result.rate / base:.2f}); between 10 % and 90 % of the "
            f"envelopes {result.seen.rate_between(0.1, 0.9):,.0f}/s; CPU {result.cpu_s:.1f} s, "
            f"duplicates {result.seen.duplicates}"
            + ("" if result.completed else f", INCOMPLETE {result.seen.count:,}/{records:,}"),
        )
        if result.seen.duplicate_records:
            # A read_committed reader must never see one: keep the evidence for diagnosis.
            sample = ", ".join(
                f"{key.decode()}@{partition}:{offset}"
                for key, partition, offset in result.seen.duplicate_records[:10]
            )
            say(f"  !! duplicates on {topics.results} (key@partition:offset): {sample}")
            distinct, total = await recount(ctx.bootstrap, topics.results)
            say(
                f"  !! re-read by a fresh read_committed consumer: {total:,} records, "
                f"{distinct:,} distinct request ids"
            )
