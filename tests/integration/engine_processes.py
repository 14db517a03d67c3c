"""Real engine processes for fault tests: start `execution-engine run`, kill -9 it, SIGTERM it,
and a mixed workload whose outcome can be checked record by record."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.conftest import Topics
from tests.integration.kafka_io import Outgoing, produce, read_topic
from tests.integration.test_cli import cli_env

COMMAND = [str(Path(sys.executable).parent / "execution-engine"), "run"]


def engine_env(bootstrap: str, topics: Topics, **extra: str) -> dict[str, str]:
    env = cli_env(bootstrap, topics)
    env.update(
        {
            "EXECUTION_TOPIC_PARTITIONS": "6",
            # The broker's minimum: a killed member is noticed as fast as Kafka allows.
            "EXECUTION_SESSION_TIMEOUT_MS": "6000",
            "EXECUTION_REBALANCE_TIMEOUT_MS": "20000",
            "EXECUTION_HTTP_ALLOWED_NETWORKS": "127.0.0.0/8",
            "EXECUTION_RETRY_BASE_DELAY_S": "0.05",
            # Hundreds of messages go to one channel: Slack's 1/s would make this a 5-minute test.
            "SLACK_RATE_LIMIT_PER_CHANNEL": "off",
        }
    )
    env.update(extra)
    return env


class EngineProcess:
    """`execution-engine run` as a child process, its output in a file (never a full pipe)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log_file = log_path.open("ab")
        self.process = subprocess.Popen(
            COMMAND, env=env, stdout=self._log_file, stderr=subprocess.STDOUT
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if f'"{name}"' in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    async def wait_for_event(self, name: str, timeout_s: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.events(name)) < count:
            if self.process.poll() is not None:
                raise AssertionError(f"engine exited with {self.process.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {name!r} within {timeout_s} s: {self.tail()}")
            await asyncio.sleep(0.1)

    def assigned_partitions(self) -> set[str]:
        """What it owns now, from its own partitions.assigned / partitions.revoked events."""
        owned: set[str] = set()
        for line in self.log_path.read_text(errors="replace").splitlines():
            for name, add in (('"partitions.assigned"', True), ('"partitions.revoked"', False)):
                if name in line:
                    parts = set(json.loads(line)["partitions"])
                    owned = owned | parts if add else owned - parts
        return owned

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log_file.close()

    def terminate(self, timeout_s: float = 60) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds it took)."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=timeout_s)
        self._log_file.close()
        return status, time.monotonic() - started

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._log_file.close()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class Workload:
    """Mixed requests over a fixed set of keys; every record has an id known in advance (the
    unreadable ones carry it in the `request-id` header)."""

    records: list[Outgoing]
    ids: frozenset[str]
    unreadable: int

    def plus(self, record: Outgoing, request_id: str) -> Workload:
        return Workload([*self.records, record], self.ids | {request_id}, self.unreadable)


def mixed_workload(
    count: int, keys: int, *, target_url: str, slack: bool, seed: int, slow_ms: int = 20
) -> Workload:
    rng = random.Random(seed)
    records: list[Outgoing] = []
    unreadable = 0
    for i in range(count):
        request_id = f"req-{i}"
        key = f"key-{rng.randrange(keys)}".encode()
        roll = rng.random()
        body: dict[str, Any] = {"request_id": request_id, "project": "proj-a"}
        if roll < 0.05:
            unreadable += 1
            value = b'{"action": "log_message", broken' if roll < 0.025 else b"\xff\xfe"
            records.append(Outgoing(value, key, (("request-id", request_id.encode()),)))
            continue
        if roll < 0.08:
            body.update(action="send_fax", params={})
        elif roll < 0.20:
            body.update(action="http_request", params={"url": f"{target_url}/delay/{slow_ms}"})
        elif roll < 0.30 and slack:
            body.update(action="send_slack", params={"channel": "#general", "message": str(i)})
        else:
            body.update(action="log_message", params={"message": f"message {i}"})
        records.append(Outgoing(json.dumps(body).encode(), key))
    return Workload(records, frozenset(f"req-{i}" for i in range(count)), unreadable)


async def produce_paced(
    bootstrap: str, topic: str, records: list[Outgoing], *, per_second: float, chunk: int = 50
) -> None:
    """Produce in chunks at about `per_second`, so the stream is still flowing during faults."""
    started = time.monotonic()
    for index in range(0, len(records), chunk):
        await produce(bootstrap, topic, records[index : index + chunk])
        ahead = (index + chunk) / per_second - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)


@dataclass(frozen=True)
class Tally:
    envelopes: int
    missing: set[str]
    duplicated: dict[str, int]
    dead_letters: int

    def __str__(self) -> str:
        return (
            f"envelopes={self.envelopes} missing={len(self.missing)} "
            f"duplicated={len(self.duplicated)} dead_letters={self.dead_letters}"
        )


async def tally(
    bootstrap: str, topics: Topics, workload: Workload, timeout_s: float = 180
) -> Tally:
    """What a read_committed consumer sees once every id has an envelope (or time is up)."""
    results = await read_topic(
        bootstrap, topics.results, expect=len(workload.records), timeout_s=timeout_s, grace_s=3
    )
    counts = Counter(json.loads(r.value)["request_id"] for r in results)
    letters = await read_topic(
        bootstrap, topics.dead_letter, expect=workload.unreadable, timeout_s=30, grace_s=1
    )
    return Tally(
        envelopes=len(results),
        missing=set(workload.ids - set(counts)),
        duplicated={k: n for k, n in counts.items() if n > 1},
        dead_letters=len(letters),
    )


def assert_exactly_once(result: Tally, workload: Workload) -> None:
    assert not result.missing, f"{len(result.missing)} missing, e.g. {sorted(result.missing)[:5]}"
    assert not result.duplicated, f"duplicated: {dict(list(result.duplicated.items())[:5])}"
    assert result.envelopes == len(workload.records)
    assert result.dead_letters == workload.unreadable
