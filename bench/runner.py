"""Shared run mechanics: a context for all scenarios, and "run consumers until N envelopes"."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.kafka_io import ResultsWatcher, RunTopics, Seen, create_topics
from bench.processes import Child, cpu_seconds, engine
from bench.report import Report, say


@dataclass
class Context:
    bootstrap: str
    log_dir: Path
    report: Report = field(default_factory=Report)
    keep_stdout: bool = False
    # Extra engine settings (env) for every engine the benchmark starts.
    engine_env: dict[str, str] = field(default_factory=dict)
    # Attach py-spy to every engine process (collapsed stacks in the run directory).
    profile: bool = False

    def engine(
        self, name: str, topics: RunTopics, *, baseline: bool = False, **settings: str
    ) -> Child:
        return engine(
            name,
            self.bootstrap,
            topics,
            self.log_dir,
            keep_stdout=self.keep_stdout,
            profile=self.profile,
            # BENCH_ENGINE=baseline: every scenario's engine is BENCH_BASELINE's (A/B runs).
            baseline=baseline or os.environ.get("BENCH_ENGINE") == "baseline",
            **{**self.engine_env, **settings},
        )


@dataclass
class RunResult:
    label: str
    expected: int
    seen: Seen
    started_at: float
    peak_rss_mb: float
    completed: bool
    # CPU seconds the consumer processes used from the start of the work (below) to the last
    # envelope becoming visible.
    cpu_s: float = 0.0
    # The earliest `started_at` of the envelopes (when their bodies were kept): the moment the
    # first record was taken up, start-up and joining the group behind it.
    first_start: float | None = None

    @property
    def processing_s(self) -> float:
        """First record taken up (else: first envelope visible) -> last envelope visible.
        Excludes process start-up and joining the group, which say nothing about the hot path;
        includes the wait for the first transaction, which envelopes cannot skip."""
        begin = self.first_start if self.first_start is not None else self.seen.first_seen
        if begin is None or self.seen.last_seen is None:
            return float("nan")
        return self.seen.last_seen - begin

    @property
    def total_s(self) -> float:
        """Process spawned -> last envelope visible."""
        if self.seen.last_seen is None:
            return float("nan")
        return self.seen.last_seen - self.started_at

    @property
    def rate(self) -> float:
        return self.seen.count / self.processing_s if self.processing_s > 0 else float("nan")


async def output_topics(ctx: Context, topics: RunTopics, partitions: int) -> None:
    await create_topics(
        ctx.bootstrap, [topics.results, topics.logs, topics.dead_letter], partitions
    )


async def run_until(
    ctx: Context,
    label: str,
    topics: RunTopics,
    children: list[Child],
    expected: int,
    *,
    timeout_s: float,
    keep_values: bool = False,
) -> RunResult:
    """Start the watcher, then `children`; wait until `expected` distinct envelopes are visible
    (or timeout, or every child died); stop the children. `topics.results` must exist."""
    watcher = ResultsWatcher(ctx.bootstrap, topics.results, keep_values=keep_values)
    await watcher.start()
    started = time.time()
    for child in children:
        child.start()

    def cpu_now() -> float:
        return sum(cpu_seconds(c.proc.pid) for c in children if c.proc is not None)

    async def cpu_at_first_envelope() -> float:
        await watcher.first_envelope.wait()
        return cpu_now()

    first_cpu = asyncio.create_task(cpu_at_first_envelope())
    try:
        completed = await watcher.wait_for(
            expected, timeout_s, alive=lambda: any(c.alive for c in children)
        )
        cpu_end = cpu_now()
        cpu = cpu_end - (await first_cpu if first_cpu.done() else cpu_end)
        # A short grace, so a duplicate published right after the last envelope is counted.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.wait_for(expected + 1, 1.0), 1.5)
    finally:
        first_cpu.cancel()
        codes = [await asyncio.to_thread(c.stop) for c in children]
        await watcher.stop()
    first_start = None
    if keep_values and watcher.seen.records:
        first_start = min(
            datetime.fromisoformat(envelope["started_at"]).timestamp()
            for _, envelope in watcher.seen.envelopes()
        )
        # CPU from the first record taken up, not from the first envelope visible.
        cpu = cpu_end - sum(c.cpu_at(first_start) for c in children)
    peak = max((c.peak_rss_mb for c in children), default=0.0)
    if not completed:
        say(f"  !! {label}: saw {watcher.seen.count}/{expected} envelopes (exit codes {codes})")
        for child in children:
            tail = child.stderr_tail()
            if tail:
                say(f"  -- {child.name} stderr:\n{tail}")
    return RunResult(label, expected, watcher.seen, started, peak, completed, cpu, first_start)
