"""In-process cost of the record path, no broker: `python -m bench.hot_path [--records N]`.

Feeds `log_message` records through the engine's own stages (intake, immediate or scheduled
processing, rendering, the partition's hand-off, the log events to stdout and the logs sink)
and prints the CPU time per record. A broker-free view of what `bench passthrough` measures,
for profiling (`py-spy record -- python -m bench.hot_path`).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any, cast

from aiokafka import TopicPartition
from pydantic import SecretStr

from actions import MissingCredentials
from actions.http import HttpClient
from actions.registry import default_registry
from actions.runtime.runner import ActionRunner
from consumer.credentials.cache import CredentialCache
from consumer.engine import Engine
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging, flush_logs, get_logger
from consumer.ops.metrics import EngineMetrics
from consumer.ops.tracing import NO_TRACING
from consumer.pipeline.intake import IntakeLimits
from consumer.pipeline.processing import RecordProcessor, Work
from consumer.pipeline.rendering import OutcomeRenderer, OutMessage
from consumer.pipeline.scheduler import KeyedScheduler


@dataclass
class Record:
    value: bytes
    offset: int
    key: bytes | None = None
    topic: str = "execution.requests"
    partition: int = 0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class _Offsets:
    def add(self, offset: int) -> bool:
        return False  # never published before


class Channel:
    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0
        self.offsets = _Offsets()

    def finish(self, offset: int, messages: list[OutMessage]) -> None:
        self.count += 1
        self.bytes += sum(len(m.value or b"") for m in messages)


class _NoCredentials:
    async def get(self, project: str, service: str) -> SecretStr:
        raise MissingCredentials("the hot path needs none")

    async def invalidate(self, project: str, service: str) -> None:
        return None

    def scrubbed(self, value: dict[str, Any]) -> dict[str, Any]:
        return value  # it hands out no token


def records(count: int) -> list[Record]:
    return [
        Record(
            json.dumps(
                {
                    "request_id": f"req-{i}",
                    "action": "log_message",
                    "project": "bench",
                    "params": {"message": f"record {i}", "fields": {"i": i}},
                }
            ).encode(),
            i,
            key=f"k{i % 100}".encode(),
        )
        for i in range(count)
    ]


async def run(count: int) -> tuple[float, float, int]:
    sink = KafkaLogSink(max_queued=count * 10)
    configure_logging("info", sink=sink, stream=io.StringIO())
    registry = default_registry()
    http = HttpClient()
    credentials = _NoCredentials()
    runner = ActionRunner(registry=registry, credentials=credentials, http=http, egress_http=http)
    metrics = EngineMetrics(registry.names())
    processor = RecordProcessor(
        runner,
        OutcomeRenderer("execution.results", "execution.dead-letter", 1_200_000),
        IntakeLimits(1_048_576, 64, 262_144),
        metrics=metrics,
        tracing=NO_TRACING,
        credentials=CredentialCache(credentials.get),
    )
    scheduler: KeyedScheduler[Work] = KeyedScheduler(200, processor.run, max_per_project=200)
    # The engine's own record path (`Engine.take`); it needs no consumer or partitions.
    engine = Engine(
        cast(Any, None),
        cast(Any, None),
        scheduler,
        processor,
        max_buffered=count,
        drain_timeout_s=1.0,
        metrics=metrics,
        log=get_logger(),
    )
    tp = TopicPartition("execution.requests", 0)
    channel = Channel()
    batch = records(count)
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, count, 500):
        await engine.take(tp, cast(Any, channel), batch[start : start + 500])
        while scheduler.held:  # noqa: ASYNC110 (the jobs finish without I/O)
            await asyncio.sleep(0)
        flush_logs()
        sink._queue.clear()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await http.aclose()
    assert channel.count == count, channel.count
    return cpu, wall, channel.bytes


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hot_path", description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    cpu, wall, size = asyncio.run(run(args.records))
    print(
        f"{args.records} records: {cpu * 1e6 / args.records:.1f} us CPU per record "
        f"({wall:.2f} s wall, {size / args.records:.0f} bytes out per record)"
    )


if __name__ == "__main__":
    main()
