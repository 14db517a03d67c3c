"""Scenario 7, partitions: one engine on a wide requests topic (128 and 512 partitions).

For each width, on fresh topics and a fresh group:
- start-up: engine spawned -> an envelope for a probe record on *every* partition (each one
  produced at spawn time): the moment every partition is served;
- idle: the engine's CPU over `idle_s` with nothing to do (% of one core), its open file
  descriptors and its established connections to the broker;
- live: `records` requests produced while the engine runs, spread over every partition (as a
  wide requests topic with live traffic sees them): envelopes per second from the first
  record sent to the last envelope visible;
- backlog: the same number preloaded into another topic of the same width, one engine from
  cold: envelopes per second from the first envelope to the last.

`--engine-env PYTHONPATH=/path/to/another/checkout` runs another version of the engine (the
baseline of an A/B comparison) against the same harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.kafka_io import ResultsWatcher, RunTopics, create_topics, request_bytes
from bench.processes import Child, cpu_seconds
from bench.report import say
from bench.runner import Context, output_topics

SCENARIO = "7 partitions"
OUTPUT_PARTITIONS = 6
CONNECTIONS_TARGET = 200  # at 512 partitions
IDLE_CPU_TARGET = 3.0  # % of one core
LIVE_TARGET = 5 * 679  # envelopes/s over 512 partitions; 679/s measured on 3bbe313


async def run(ctx: Context, widths: list[int], records: int, idle_s: float) -> None:
    say(
        f"\n== {SCENARIO}: one engine on {', '.join(map(str, widths))} partitions: start-up, "
        f"idle CPU ({idle_s:g} s), descriptors, {records:,} live and {records:,} backlog records"
    )
    for width in widths:
        await _live(ctx, width, records, idle_s)
        await _backlog(ctx, width, records)


async def _live(ctx: Context, width: int, records: int, idle_s: float) -> None:
    requests = f"bench.requests.wide.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], width)
    topics = RunTopics.fresh(requests, f"wide{width}")
    await output_topics(ctx, topics, OUTPUT_PARTITIONS)
    watcher = ResultsWatcher(ctx.bootstrap, topics.results)
    await watcher.start()
    engine = ctx.engine(f"wide-{width}", topics)
    engine.sample_every_s = 0.5
    label = f"{width} partitions"
    try:
        engine.start()
        spawned = time.time()
        await _send(ctx.bootstrap, requests, width, [f"probe-{p}" for p in range(width)])
        if not await watcher.wait_for(width, 300, lambda: engine.alive):
            say(f"  !! start-up: {watcher.seen.count}/{width} partitions served")
            say(engine.stderr_tail())
            return
        assert watcher.seen.last_seen is not None
        ctx.report.add(
            SCENARIO,
            f"{label}: start-up (every partition served)",
            f"{watcher.seen.last_seen - spawned:.1f} s",
        )
        await asyncio.sleep(5)  # the last transactions, the group settling
        proc = engine.proc
        assert proc is not None
        cpu_before, at_before = cpu_seconds(proc.pid), time.monotonic()
        await asyncio.sleep(idle_s)
        idle = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - at_before) * 100
        ctx.report.add(
            SCENARIO,
            f"{label}: idle CPU",
            f"{idle:.1f} % of a core",
            f"<= {IDLE_CPU_TARGET:g} %",
            idle <= IDLE_CPU_TARGET,
        )
        fds, connections = descriptors(proc.pid, _port(ctx.bootstrap))
        ctx.report.add(
            SCENARIO,
            f"{label}: file descriptors, broker connections",
            f"{fds:,}, {connections:,}",
            f"connections <= {CONNECTIONS_TARGET}" if width >= 512 else "",
            connections <= CONNECTIONS_TARGET if width >= 512 else None,
        )
        port = int(engine.env["EXECUTION_HTTP_PORT"])
        transactions_before = await transactions(port)
        broker = listening_pid(_port(ctx.bootstrap))
        broker_cpu = cpu_seconds(broker) if broker else 0.0
        sent_at, cpu_at_send = time.time(), cpu_seconds(proc.pid)
        await _send(ctx.bootstrap, requests, width, [f"live-{i}" for i in range(records)])
        sent_s = time.time() - sent_at
        if not await watcher.wait_for(width + records, 120 + records / 100, lambda: engine.alive):
            say(f"  !! live: {watcher.seen.count - width:,}/{records:,}\n{engine.stderr_tail()}")
        assert watcher.seen.last_seen is not None
        cpu = cpu_seconds(proc.pid) - cpu_at_send
        broker_cpu = cpu_seconds(broker) - broker_cpu if broker else float("nan")
        after = await transactions(port)
        made, spent = after[0] - transactions_before[0], after[1] - transactions_before[1]
        rate = (watcher.seen.count - width) / (watcher.seen.last_seen - sent_at)
        ctx.report.add(
            SCENARIO,
            f"{label}: {records:,} live records",
            f"{rate:,.0f}/s (sent in {sent_s:.1f} s), {made:,.0f} transactions of "
            f"{records / max(1, made):,.0f} records ({spent / max(1, made) * 1000:,.0f} ms "
            f"each), engine CPU {cpu:.1f} s, broker CPU "
            f"{broker_cpu:.1f} s, "
            f"duplicates {watcher.seen.duplicates}",
            f">= {LIVE_TARGET:,}/s" if width >= 512 else "",
            rate >= LIVE_TARGET if width >= 512 else None,
        )
    finally:
        await asyncio.to_thread(engine.stop)
        await watcher.stop()


async def _backlog(ctx: Context, width: int, records: int) -> None:
    requests = f"bench.requests.wide.{uuid.uuid4().hex[:8]}"
    await create_topics(ctx.bootstrap, [requests], width)
    await _send(ctx.bootstrap, requests, width, [f"backlog-{i}" for i in range(records)])
    topics = RunTopics.fresh(requests, f"wideb{width}")
    await output_topics(ctx, topics, OUTPUT_PARTITIONS)
    watcher = ResultsWatcher(ctx.bootstrap, topics.results)
    await watcher.start()
    engine: Child = ctx.engine(f"wide-backlog-{width}", topics)
    try:
        engine.start()
        if not await watcher.wait_for(records, 120 + records / 100, lambda: engine.alive):
            say(f"  !! backlog: {watcher.seen.count:,}/{records:,}\n{engine.stderr_tail()}")
        seen = watcher.seen
        assert seen.first_seen is not None and seen.last_seen is not None
        span = seen.last_seen - seen.first_seen
        cpu = engine.cpu_s - engine.cpu_at(seen.first_seen)
        ctx.report.add(
            SCENARIO,
            f"{width} partitions: {records:,} backlog records",
            f"{seen.count / span:,.0f}/s (between 10 % and 90 % "
            f"{seen.rate_between(0.1, 0.9):,.0f}/s), engine CPU {cpu:.1f} s, "
            f"duplicates {seen.duplicates}",
        )
    finally:
        await asyncio.to_thread(engine.stop)
        await watcher.stop()


async def _send(bootstrap: str, topic: str, width: int, request_ids: list[str]) -> None:
    """One log_message request per id, round-robin over the partitions (key = request id)."""
    # A topic just created answers "not leader" for a moment; the producer retries, quietly.
    logging.getLogger("aiokafka.producer").setLevel(logging.ERROR)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20, enable_idempotence=True
    )
    await producer.start()
    try:
        pending = [
            await producer.send(
                topic,
                value=request_bytes(request_id, "log_message", {"message": "w"}),
                key=request_id.encode(),
                partition=n % width,
            )
            for n, request_id in enumerate(request_ids)
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def transactions(port: int) -> tuple[int, float]:
    """Transactions (offset commits) the engine made so far and the seconds they took, from
    its /metrics."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\n")
    body = (await reader.read()).decode()
    writer.close()
    found = {"count": 0.0, "sum": 0.0}
    for line in body.splitlines():
        for what in found:
            if line.startswith(f"execution_commit_seconds_{what}"):
                found[what] = float(line.split()[-1])
    return int(found["count"]), found["sum"]


def descriptors(pid: int, broker_port: int) -> tuple[int, int]:
    """(open file descriptors, established TCP connections to `broker_port`) of a process,
    from /proc (Linux)."""
    sockets: set[str] = set()
    fds = 0
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        fds += 1
        with contextlib.suppress(OSError):
            target = os.readlink(entry)
            if target.startswith("socket:["):
                sockets.add(target[8:-1])
    connections = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                established = fields[3] == "01"
                if established and remote_port == broker_port and fields[9] in sockets:
                    connections += 1
    return fds, connections


def listening_pid(port: int) -> int | None:
    """The process listening on a local TCP port (the broker, when it runs on this machine and
    is readable), from /proc (Linux)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def _port(bootstrap: str) -> int:
    return int(bootstrap.split(",", maxsplit=1)[0].rsplit(":", 1)[1])
