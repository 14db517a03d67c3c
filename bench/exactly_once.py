"""Exactly-once costs, measured: transaction overhead and latency next to a slow key.

    .venv/bin/python -m bench.exactly_once overhead [--records 20000] [--rounds 2]
    .venv/bin/python -m bench.exactly_once slow-key [--seconds 20] [--rate 200]

`overhead`: the same 20,000 `log_message` requests (3 partitions) through a real engine process
with EXECUTION_EXACTLY_ONCE=true and =false, alternated, on one broker; throughput counted from
the first to the last envelope a read_committed consumer sees (start-up and group join excluded).

`slow-key`: one key whose `http_request` calls take 5 s among 99 keys of fast `log_message`
requests, produced at a steady rate; end-to-end latency (produce -> envelope visible to a
read_committed consumer) of the fast keys' requests, with exactly-once on.

Starts its own broker (consumer/localkafka) unless KAFKA_BOOTSTRAP_SERVERS is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.kafka_io import load, request_bytes
from consumer.localkafka import kafka_broker
from tests.standins import HttpTargetStandIn

ENGINE = [str(Path(sys.executable).parent / "execution-engine"), "run"]


class Run:
    """One engine process with fresh topics and group."""

    def __init__(self, bootstrap: str, env: dict[str, str]) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.bootstrap = bootstrap
        self.requests = f"bench.requests.{suffix}"
        self.results = f"bench.results.{suffix}"
        self.env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EXECUTION_REQUESTS_TOPIC": self.requests,
            "EXECUTION_RESULTS_TOPIC": self.results,
            "EXECUTION_LOGS_TOPIC": f"bench.logs.{suffix}",
            "EXECUTION_DEAD_LETTER_TOPIC": f"bench.dead.{suffix}",
            "EXECUTION_GROUP_ID": f"bench-{suffix}",
            "EXECUTION_TOPIC_PARTITIONS": "3",
            "EXECUTION_HTTP_PORT": "0",
            **env,
        }

    async def create_topics(self, partitions: int = 3) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(self.requests, partitions, 1), NewTopic(self.results, partitions, 1)]
            )
        finally:
            await admin.close()

    @contextlib.contextmanager
    def engine(self) -> Iterator[subprocess.Popen[bytes]]:
        with tempfile.TemporaryFile() as log:
            process = subprocess.Popen(ENGINE, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            try:
                yield process
            finally:
                process.terminate()
                process.wait(60)


async def watch_results(
    bootstrap: str, topic: str, expect: int | set[str], timeout_s: float
) -> dict[str, float]:
    """request_id -> when it became visible (time.time()), read_committed; until `expect`
    envelopes (or those of the ids in `expect`) are seen or time is up."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if isinstance(expect, int) and len(seen) >= expect:
                break
            if isinstance(expect, set) and expect <= seen.keys():
                break
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            now = time.time()
            for records in batch.values():
                for record in records:
                    seen.setdefault(json.loads(record.value)["request_id"], now)
    finally:
        await consumer.stop()
    return seen


def log_message(request_id: str) -> bytes:
    return request_bytes(request_id, "log_message", {"message": "hello"})


async def overhead(bootstrap: str, records: int, rounds: int) -> None:
    print(f"# transaction overhead: {records} log_message requests, 3 partitions", flush=True)
    rates: dict[str, list[float]] = {"true": [], "false": []}
    for round_ in range(rounds):
        for exactly_once in ("true", "false"):
            run = Run(bootstrap, {"EXECUTION_EXACTLY_ONCE": exactly_once})
            await run.create_topics()
            await load(
                bootstrap,
                run.requests,
                [(f"k{i % 1000}".encode(), log_message(f"r{i}")) for i in range(records)],
            )
            with run.engine():
                seen = await watch_results(bootstrap, run.results, records, timeout_s=600)
            times = sorted(seen.values())
            if len(times) < records:
                raise SystemExit(f"only {len(times)} of {records} envelopes arrived")
            rate = (records - 1) / (times[-1] - times[0])
            rates[exactly_once].append(rate)
            print(
                f"round {round_ + 1} exactly_once={exactly_once:<5} {rate:8.0f} envelopes/s",
                flush=True,
            )
    on, off = statistics.median(rates["true"]), statistics.median(rates["false"])
    print(
        f"median: exactly-once {on:.0f}/s, at-least-once {off:.0f}/s, "
        f"transactions cost {100 * (1 - on / off):.1f} % of throughput"
    )


async def slow_key(bootstrap: str, seconds: float, rate: float) -> None:
    print(
        f"# latency next to a slow key: 1 key of 5 s http_request calls, 99 keys of log_message,"
        f" {rate:g} requests/s for {seconds:g} s, exactly-once on",
        flush=True,
    )
    with HttpTargetStandIn() as target:
        run = Run(bootstrap, {"EXECUTION_HTTP_ALLOWED_NETWORKS": "127.0.0.0/8"})
        await run.create_topics()
        total = int(seconds * rate)
        sent: dict[str, float] = {}
        slow_ids: set[str] = set()
        with run.engine():
            await asyncio.sleep(8)  # start-up and group join, outside the measurement
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, linger_ms=0, enable_idempotence=True
            )
            await producer.start()
            # Only the fast keys' envelopes are waited for: the slow lane needs 5 s a call.
            fast_ids = {f"r{i}" for i in range(total) if i % 50}
            watcher = asyncio.create_task(
                watch_results(bootstrap, run.results, fast_ids, timeout_s=seconds + 60)
            )
            started = time.monotonic()
            for i in range(total):
                request_id = f"r{i}"
                if i % 50 == 0:  # the slow key: one call in fifty, all in one lane
                    slow_ids.add(request_id)
                    key = b"slow"
                    value = request_bytes(
                        request_id, "http_request", {"url": f"{target.base_url}/delay/5000"}
                    )
                else:
                    key, value = f"fast-{i % 99}".encode(), log_message(request_id)
                sent[request_id] = time.time()
                await producer.send(run.requests, value=value, key=key)
                ahead = (i + 1) / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await producer.stop()
            seen = await watcher
    fast = sorted((seen[r] - sent[r]) * 1000 for r in sent if r not in slow_ids and r in seen)
    missing = len(sent) - len(slow_ids) - len(fast)
    q = statistics.quantiles(fast, n=100)
    print(
        f"fast keys: {len(fast)} requests, p50 {q[49]:.0f} ms, p95 {q[94]:.0f} ms, "
        f"p99 {q[98]:.0f} ms, max {fast[-1]:.0f} ms; not seen in time: {missing}"
    )
    print(f"slow key: {len([r for r in slow_ids if r in seen])} of {len(slow_ids)} done")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.exactly_once")
    sub = parser.add_subparsers(dest="scenario", required=True)
    over = sub.add_parser("overhead")
    over.add_argument("--records", type=int, default=20_000)
    over.add_argument("--rounds", type=int, default=2)
    slow = sub.add_parser("slow-key")
    slow.add_argument("--seconds", type=float, default=20)
    slow.add_argument("--rate", type=float, default=200)
    args = parser.parse_args()
    print("command: " + " ".join([".venv/bin/python -m bench.exactly_once", *sys.argv[1:]]))
    with kafka_broker() as bootstrap:
        if args.scenario == "overhead":
            asyncio.run(overhead(bootstrap, args.records, args.rounds))
        else:
            asyncio.run(slow_key(bootstrap, args.seconds, args.rate))


if __name__ == "__main__":
    main()
