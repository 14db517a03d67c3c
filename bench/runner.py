"""Shared run mechanics: a context for all scenarios, and "run consumers until N envelopes"."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
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

    def engine(self, name: str, topics: RunTopics, **settings: str) -> Child:
        return engine(
            name,
            self.bootstrap,
            topics,
            self.log_dir,
            keep_stdout=self.keep_stdout,
            profile=self.profile,
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
    # CPU seconds the consumer processes used between the first and the last envelope
    # becoming visible (start-up excluded).
    cpu_s: float = 0.0

    @property
    def processing_s(self) -> float:
        """First envelope visible -> last envelope visible: excludes process start-up and
        joining the group, which say nothing about the hot path."""
        if self.seen.first_seen is None or self.seen.last_seen is None:
            return float("nan")
        return self.seen.last_seen - self.seen.first_seen

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
        cpu = cpu_now() - (await first_cpu if first_cpu.done() else cpu_now())
        # A short grace, so a duplicate published right after the last envelope is counted.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watcher.wait_for(expected + 1, 1.0), 1.5)
    finally:
        first_cpu.cancel()
        codes = [await asyncio.to_thread(c.stop) for c in children]
        await watcher.stop()
    peak = max((c.peak_rss_mb for c in children), default=0.0)
    if not completed:
        say(f"  !! {label}: saw {watcher.seen.count}/{expected} envelopes (exit codes {codes})")
        for child in children:
            tail = child.stderr_tail()
            if tail:
                say(f"  -- {child.name} stderr:\n{tail}")
    return RunResult(label, expected, watcher.seen, started, peak, completed, cpu)
