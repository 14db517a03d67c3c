"""Scenario `tenants`: redaction's cost does not grow with the number of tenants served.

In process, no broker: (1) scrubbing one log line with 1, 100, 1,000 and 10,000 tenant
secrets held, (2) the cost of adding a secret at each of those sizes, and (3) the engine's
own record path (`RecordProcessor`, composed as `consumer.app` does: intake, the action run
with the record's credentials, its log events, its envelope rendered) per record on a fresh
engine and again after 1,000 tenants, each with its own token, were served. Slack is an
in-process `HttpClient` answer, so what is measured is the engine's work.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict
from pydantic import SecretStr
from yarl import URL

from actions.base import NO_SLOT
from actions.http import HttpClient, HttpResponse, checked_headers
from actions.ratelimit import RateLimiter
from actions.registry import default_registry
from actions.runtime.runner import ActionRunner
from bench.report import Report, say
from consumer.credentials.cache import CredentialCache
from consumer.ops.logging import configure_logging, reset_logging
from consumer.ops.metrics import EngineMetrics
from consumer.ops.tracing import NO_TRACING
from consumer.pipeline.intake import IntakeLimits
from consumer.pipeline.processing import RecordProcessor, Work
from consumer.pipeline.rendering import OutcomeRenderer, OutMessage
from consumer.secrets.redaction import RedactionScope, SecretRegistry
from consumer.settings import EngineSettings

SIZES = (1, 100, 1_000, 10_000)
TENANTS = 1_000
_LINE = {
    "request_id": "9f1c2e7a-4c1b-4d3e-9a55-0d2b8f3e6a10",
    "partition": 3,
    "offset": 123456,
    "action": "send_slack",
    "project": "demo-project-001",
    "event": "action.failed",
    "error_code": "upstream_error",
    "error_message": "slack answered invalid_auth: the token was refused",
    "attempts": 1,
    "duration_ms": 142.0,
    "level": "warning",
    "timestamp": "2026-11-26T09:00:00.154Z",
    "service": "execution-engine",
}


def _token() -> str:
    return f"xoxb-{uuid.uuid4().hex}-{uuid.uuid4().hex[:12]}"


def _per_call_us(call: Callable[[], object], seconds: float = 0.3) -> float:
    """Best of 5 runs, each repeating `call` for about `seconds / 5`."""
    best = float("inf")
    for _ in range(5):
        count, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds / 5:
            for _ in range(50):
                call()
            count += 50
        best = min(best, elapsed / count)
    return best * 1e6


def redaction_figures(report: Report) -> None:
    """One registry per size, measured in alternated rounds (best of each): the machine's
    noise and the garbage collector's pauses fall on every size alike."""
    registries: dict[int, SecretRegistry] = {}
    scopes: dict[int, RedactionScope] = {}
    for size in SIZES:
        registry = registries[size] = SecretRegistry()
        registry.add_engine_secret("engine-sasl-password-" + uuid.uuid4().hex)
        registry.add_engine_secret("engine-vault-token-" + uuid.uuid4().hex)
        for _ in range(size):
            registry.hold(_token())
        scopes[size] = registry.scope()
        scopes[size].hold(_token())  # the record's own credential
    line: dict[int, float] = dict.fromkeys(SIZES, float("inf"))
    engine_only = dict(line)
    add = dict(line)
    baseline = float("inf")
    for _ in range(5):
        baseline = min(baseline, _per_call_us(functools.partial(json.dumps, _LINE), 0.1))
        for size in SIZES:
            registry = registries[size]
            line[size] = min(
                line[size], _per_call_us(functools.partial(scopes[size].scrub_event, _LINE), 0.1)
            )
            engine_only[size] = min(
                engine_only[size],
                _per_call_us(functools.partial(registry.engine_scope.scrub_event, _LINE), 0.1),
            )
            fresh = [_token() for _ in range(100)]
            started = time.perf_counter()
            secrets = [registry.hold(value) for value in fresh]
            add[size] = min(add[size], (time.perf_counter() - started) / len(fresh) * 1e6)
            for secret in secrets:
                registry.release(secret)
    report.add("tenants", "baseline: json.dumps of the same log line", f"{baseline:.2f} us")
    for size in SIZES:
        report.add(
            "tenants",
            f"scrub one log line, {size:,} secrets held",
            f"{line[size]:.2f} us with the record's credential ({line[size] / baseline:.2f}x "
            f"json.dumps), {engine_only[size]:.2f} us without",
        )
    for size in SIZES:
        report.add("tenants", f"add one secret, {size:,} held", f"{add[size]:.0f} us")
    for label, costs in (("scrub", line), ("add", add)):
        ratio = costs[SIZES[-1]] / costs[SIZES[0]]
        report.add(
            "tenants",
            f"{label} cost at {SIZES[-1]:,} secrets / at {SIZES[0]}",
            f"{ratio:.2f}x",
            "flat (<= 2x; growing with the secrets held would be ~10,000x)",
            ratio <= 2,
        )


@dataclass
class _Record:
    """What the record path reads of an aiokafka ConsumerRecord."""

    value: bytes
    offset: int
    topic: str = "bench.requests"
    partition: int = 0
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class _Discard(io.StringIO):
    """A stream that keeps nothing (a growing buffer would cost more as the run goes on)."""

    def write(self, text: str) -> int:
        return len(text)


class _Channel:
    def __init__(self) -> None:
        self.count = 0

    def finish(self, offset: int, messages: list[OutMessage]) -> None:
        self.count += 1


class _InProcessSlack(HttpClient):
    """Slack's `chat.postMessage` answered in process: the engine's work, not a network's."""

    async def request(self, method: str, url: str | URL, **options: Any) -> HttpResponse:
        headers = checked_headers(options.get("headers") or ())  # as the real client checks
        assert any(name == "Authorization" for name, _ in headers)
        channel = options["json"]["channel"]
        body = json.dumps({"ok": True, "ts": "1.000100", "channel": channel}).encode()
        return HttpResponse(200, CIMultiDict({"Content-Type": "application/json"}), body)


def _request(offset: int, project: str, action: str) -> _Record:
    params: dict[str, Any] = {"message": "hello"}
    if action == "send_slack":
        params["channel"] = "C024BE91L"
    body = {"request_id": f"r-{offset}", "action": action, "project": project, "params": params}
    return _Record(json.dumps(body).encode(), offset)


def _processor(tokens: dict[tuple[str, str], str]) -> tuple[RecordProcessor, HttpClient]:
    """The engine's record path as `consumer.app` composes it, Slack answered in process."""

    async def fetch(project: str, service: str) -> SecretStr:
        return SecretStr(tokens[(project, service)])

    settings = EngineSettings(slack_api_url="https://slack.bench/api")
    registry = default_registry()
    http = _InProcessSlack()
    cache = CredentialCache(fetch, secrets=SecretRegistry())
    runner = ActionRunner(
        registry=registry,
        credentials=cache,
        http=http,
        egress_http=http,
        retry=settings.retry_policy(),
        limiter=RateLimiter(),  # no limits: they would only add waiting, not work
        breakers=settings.circuit_breakers(),
    )
    processor = RecordProcessor(
        runner,
        OutcomeRenderer("bench.results", "bench.dead-letter", 1_200_000),
        IntakeLimits(1_048_576, 64, 262_144),
        metrics=EngineMetrics(registry.names()),
        tracing=NO_TRACING,
        credentials=cache,
    )
    return processor, http


async def _take(processor: RecordProcessor, record: _Record, channel: _Channel) -> None:
    """One record processed as a scheduled job (every record of this scenario does I/O)."""
    await processor.run(Work(record, processor.intake(record), channel, time.time()), NO_SLOT)


async def _per_record_us(processor: RecordProcessor, records: list[_Record]) -> float:
    channel = _Channel()
    started = time.perf_counter()
    for record in records:
        await _take(processor, record, channel)
    return (time.perf_counter() - started) / len(records) * 1e6


async def record_path_figures(report: Report, records: int) -> None:
    """Two engines in one process, measured alternately (best of 5 rounds), so the machine's
    noise and the garbage collector's heap are the same for both: what differs is what serving
    1,000 tenants left in one of them (its credential cache, its redaction registry)."""
    configure_logging("info", stream=_Discard())  # the real rendering, written nowhere
    tokens = {(f"tenant-{n}", "slack"): _token() for n in range(TENANTS)}
    tokens[("demo", "slack")] = _token()
    fresh, fresh_http = _processor(tokens)
    served, served_http = _processor(tokens)
    started = time.perf_counter()
    channel = _Channel()
    for n in range(TENANTS):
        await _take(served, _request(n, f"tenant-{n}", "send_slack"), channel)
    served_s = time.perf_counter() - started
    slack = [_request(TENANTS + n, "demo", "send_slack") for n in range(records)]
    logs = [_request(TENANTS + n, "demo", "log_message") for n in range(records)]
    for processor in (fresh, served):
        await _per_record_us(processor, slack[:100])  # warm: the demo token is cached
    best: dict[tuple[str, str], float] = {}
    for _ in range(5):
        for label, batch in (("send_slack", slack), ("log_message", logs)):
            for name, processor in (("fresh", fresh), ("served", served)):
                cost = await _per_record_us(processor, batch)
                best[label, name] = min(best.get((label, name), float("inf")), cost)
    for http in (fresh_http, served_http):
        await http.aclose()
    reset_logging()
    report.add(
        "tenants",
        f"serve {TENANTS:,} tenants, one send_slack each (own token, first fetch)",
        f"{served_s:.2f} s ({served_s / TENANTS * 1e3:.2f} ms per tenant)",
    )
    for label in ("send_slack", "log_message"):
        before, after = best[label, "fresh"], best[label, "served"]
        ratio = after / before
        report.add(
            "tenants",
            f"per-record {label}, fresh -> after {TENANTS:,} tenants",
            f"{before:.1f} us -> {after:.1f} us ({ratio:.2f}x)",
            "<= 1.2x",
            ratio <= 1.2,
        )


async def run(report: Report, records: int = 2_000) -> None:
    say("\n== tenants: redaction cost vs secrets held; per-record cost fresh vs after tenants")
    redaction_figures(report)
    await record_path_figures(report, records)


def main() -> None:
    asyncio.run(run(Report()))


if __name__ == "__main__":
    main()
