"""Scenario 7, rpc: a Gateway awaiting its own envelope (request -> reply latency).

One engine; one `ExecutionClient` in this process calls `log_message` at a fixed rate and
awaits each envelope, either on a reply partition it names (`reply-topic` + `reply-partition`),
on a reply topic of its own with as many partitions as the requests topic, or by reading the
shared results topic (every envelope of the platform, filtered by key: what a
Gateway had to do before). The three alternate on the same engine and requests topic. Other
Gateways' traffic (`background` requests/s, without a reply topic) also lands on the results
topic, as on a shared platform; they are produced by a child process. Latency is from just
before `execute` to its return; the client's CPU is this process's (the engine and the other
Gateways are child processes) over the calls made.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from bench.kafka_io import RunTopics, create_topics, request_bytes
from bench.report import percentile, say
from bench.runner import Context, output_topics
from consumer import ExecutionClient, KafkaSettings

SCENARIO = "7 rpc"
# A reply partition is written by every input partition's transactional producer; a reply
# topic of the Gateway's own, with as many partitions as the requests topic, spreads them.
MODES = ("reply partition", "own reply topic (6 partitions)", "results topic")
REQUEST_PARTITIONS = 6
WARM_UP_S = 3.0


@dataclass
class Run:
    mode: str
    rate: float
    latencies: list[float]
    failed: int
    cpu_s: float

    @property
    def calls(self) -> int:
        return len(self.latencies)


async def run(
    ctx: Context, rates: list[float], seconds: float, background: float, rounds: int = 1
) -> None:
    say(
        f"\n== 7. rpc: log_message calls awaited through ExecutionClient at {rates} /s for "
        f"{seconds:g} s each, via its reply topic vs the shared results topic "
        f"(+{background:g}/s of other Gateways' requests)"
    )
    requests = f"bench.requests.rpc.{uuid.uuid4().hex[:8]}"
    run_id = uuid.uuid4().hex[:8]
    replies = {
        MODES[0]: f"bench.replies.rpc.{run_id}.shared",
        MODES[1]: f"bench.replies.rpc.{run_id}.own",
    }
    topics = RunTopics.fresh(requests, "rpc")
    await create_topics(ctx.bootstrap, [requests], REQUEST_PARTITIONS)
    await create_topics(ctx.bootstrap, [replies[MODES[0]]], 1)
    await create_topics(ctx.bootstrap, [replies[MODES[1]]], REQUEST_PARTITIONS)
    await output_topics(ctx, topics, 6)
    engine = ctx.engine(
        "rpc-engine", topics, EXECUTION_REPLY_TOPICS=f"bench.replies.rpc.{run_id}.*"
    )
    settings = KafkaSettings(
        bootstrap_servers=ctx.bootstrap,
        requests_topic=requests,
        results_topic=topics.results,
        logs_topic=topics.logs,
        dead_letter_topic=topics.dead_letter,
    )
    runs: list[Run] = []
    engine.start()
    others = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.rpc", ctx.bootstrap, requests, str(background)
    )
    try:
        # The engine's group, its partitions' producers, the topics' metadata: warmed up, in
        # both modes, before anything is measured.
        for mode in MODES:
            await _measure(settings, mode, replies, min(rates), WARM_UP_S)
        for _ in range(rounds):
            for rate in rates:
                for mode in MODES:
                    result = await _measure(settings, mode, replies, rate, seconds)
                    runs.append(result)
                    _report_run(ctx, result)
                    await _settled(settings)
    finally:
        others.kill()
        await others.wait()
        await asyncio.to_thread(engine.stop)
    _summary(ctx, runs)


async def _measure(
    settings: KafkaSettings, mode: str, replies: dict[str, str], rate: float, seconds: float
) -> Run:
    """One run with a client of its own (so its CPU is this run's alone)."""
    latencies: list[float] = []
    failed = 0
    reply_topic = replies.get(mode)
    # The shared topic's one partition is named, as a Gateway instance names its own.
    partition = 0 if mode == MODES[0] else None
    async with ExecutionClient(
        settings, reply_topic=reply_topic, reply_partition=partition
    ) as client:
        await client.execute("log_message", "bench", {"message": "first"}, timeout=120)

        async def call(n: int) -> None:
            nonlocal failed
            began = time.perf_counter()
            try:
                envelope = await client.execute(
                    "log_message", "bench", {"message": f"m{n}"}, timeout=30, key=f"k{n % 64}"
                )
            except TimeoutError:
                failed += 1
                return
            latencies.append(time.perf_counter() - began)
            if envelope.get("status") != "success":
                failed += 1

        total = round(rate * seconds)
        calls: list[asyncio.Task[None]] = []
        cpu_before = time.process_time()
        started = time.perf_counter()
        for n in range(total):
            ahead = started + n / rate - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
            calls.append(asyncio.create_task(call(n)))
        await asyncio.gather(*calls)
        cpu_s = time.process_time() - cpu_before
    return Run(mode, rate, latencies, failed, cpu_s)


async def _settled(settings: KafkaSettings) -> None:
    """Wait until the engine has worked off what a run left queued (calls that timed out are
    still run), so the next run does not inherit a backlog: a call on every key is answered."""
    async with ExecutionClient(settings) as client:
        await asyncio.gather(
            *(
                client.execute(
                    "log_message", "bench", {"message": "settle"}, timeout=300, key=f"k{n}"
                )
                for n in range(64)
            )
        )


async def _other_gateways(bootstrap: str, topic: str, rate: float) -> None:
    """Requests nobody in this process waits for: their envelopes crowd the results topic."""
    if rate <= 0:
        return
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        started, n = time.perf_counter(), 0
        while True:
            n += 1
            value = request_bytes(f"other-{n}", "log_message", {"message": "x"})
            await producer.send(topic, value=value, key=f"o{n % 64}".encode())
            ahead = started + n / rate - time.perf_counter()
            if ahead > 0:
                await asyncio.sleep(ahead)
    finally:
        await producer.stop()


def _report_run(ctx: Context, result: Run) -> None:
    if not result.latencies:
        ctx.report.add(SCENARIO, f"{result.rate:g}/s via {result.mode}", "no envelope", "", False)
        return
    p50 = percentile(result.latencies, 50) * 1000
    p99 = percentile(result.latencies, 99) * 1000
    per_call_us = result.cpu_s / max(result.calls + result.failed, 1) * 1e6
    ctx.report.add(
        SCENARIO,
        f"{result.rate:g}/s via {result.mode}: latency p50 / p99 ({result.calls:,} calls)",
        f"{p50:.1f} / {p99:.1f} ms",
        "every call answered",
        result.failed == 0,
    )
    ctx.report.add(
        SCENARIO,
        f"{result.rate:g}/s via {result.mode}: client CPU per call",
        f"{per_call_us:.0f} us",
    )


def _summary(ctx: Context, runs: list[Run]) -> None:
    """Each way against the results topic, as ratios, rate by rate."""
    for rate in sorted({r.rate for r in runs}):
        by_mode = {mode: [r for r in runs if r.rate == rate and r.mode == mode] for mode in MODES}
        if not all(r.latencies for rs in by_mode.values() for r in rs) or not all(by_mode.values()):
            continue
        latencies = {m: [x for r in rs for x in r.latencies] for m, rs in by_mode.items()}
        cpu = {m: sum(r.cpu_s for r in rs) / sum(r.calls for r in rs) for m, rs in by_mode.items()}
        base = MODES[-1]
        for mode in MODES[:-1]:
            ctx.report.add(
                SCENARIO,
                f"{rate:g}/s: {mode} / results topic (p50, p99, CPU per call)",
                f"{percentile(latencies[mode], 50) / percentile(latencies[base], 50):.2f}x, "
                f"{percentile(latencies[mode], 99) / percentile(latencies[base], 99):.2f}x, "
                f"{cpu[mode] / cpu[base]:.2f}x",
            )


if __name__ == "__main__":  # the other Gateways: python -m bench.rpc BOOTSTRAP TOPIC RATE
    asyncio.run(_other_gateways(sys.argv[1], sys.argv[2], float(sys.argv[3])))
