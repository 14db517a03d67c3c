"""Scenario `tenants`: redaction's cost does not grow with the number of tenants served.

In process, no broker: (1) scrubbing one log line with 1, 100, 1,000 and 10,000 tenant
secrets held, (2) the cost of adding a secret at each of those sizes, and (3) the engine's
own record path (`Engine._outputs`: decode, run the action with the record's credentials, log
its events, render its envelope) per record on a fresh engine and again after 1,000 tenants,
each with its own token, were served. Slack is an in-process `httpx.MockTransport` answer,
so what is measured is the engine's work, not a network's.
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

import httpx
from pydantic import SecretStr

from actions import ActionRunner, default_registry
from bench.report import Report, say
from consumer.credentials.cache import CredentialCache
from consumer.engine import Engine
from consumer.ops.logging import configure_logging
from consumer.ops.redaction import SecretRegistry
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
    """Best of 5 rounds, each repeating `call` for about `seconds / 5`."""
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
    registry = SecretRegistry()
    registry.add_engine_secret("engine-sasl-password-" + uuid.uuid4().hex)
    registry.add_engine_secret("engine-vault-token-" + uuid.uuid4().hex)
    held = 0
    line_costs: list[float] = []
    for size in SIZES:
        while held < size:
            registry.hold(_token())
            held += 1
        scope = registry.scope()
        scope.hold(_token())  # the record's own credential
        line_us = _per_call_us(functools.partial(scope.scrub_event, _LINE))
        engine_only_us = _per_call_us(lambda: registry.engine_scope.scrub_event(_LINE))
        fresh = [_token() for _ in range(200)]
        started = time.perf_counter()
        secrets = [registry.hold(value) for value in fresh]
        add_us = (time.perf_counter() - started) / len(fresh) * 1e6
        for secret in secrets:
            registry.release(secret)
        scope.close()
        line_costs.append(line_us)
        report.add(
            "tenants",
            f"scrub one log line, {size:,} secrets held",
            f"{line_us:.2f} us (record with 1 credential), {engine_only_us:.2f} us (none)",
        )
        report.add("tenants", f"add one secret, {size:,} held", f"{add_us:.0f} us")
    ratio = line_costs[-1] / line_costs[0]
    report.add(
        "tenants",
        "scrub cost at 10,000 secrets / at 1",
        f"{ratio:.2f}x",
        "flat (<= 1.5x; noise)",
        ratio <= 1.5,
    )


@dataclass
class _Record:
    """What `Engine._outputs` reads of an aiokafka ConsumerRecord."""

    value: bytes
    offset: int
    topic: str = "bench.requests"
    partition: int = 0
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def _slack(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(200, json={"ok": True, "ts": "1.000100", "channel": body["channel"]})


def _request(offset: int, project: str, action: str) -> _Record:
    params: dict[str, Any] = {"message": "hello"}
    if action == "send_slack":
        params["channel"] = "C024BE91L"
    body = {"request_id": f"r-{offset}", "action": action, "project": project, "params": params}
    return _Record(json.dumps(body).encode(), offset)


async def _engine(tokens: dict[tuple[str, str], str]) -> tuple[Engine, httpx.AsyncClient]:
    async def fetch(project: str, service: str) -> SecretStr:
        return SecretStr(tokens[(project, service)])

    settings = EngineSettings(slack_api_url="https://slack.bench/api")
    engine = Engine(settings)
    http = httpx.AsyncClient(transport=httpx.MockTransport(_slack))
    cache = CredentialCache(fetch, secrets=SecretRegistry())
    engine._credentials = cache
    engine._runner = ActionRunner(
        registry=default_registry(),
        credentials=cache,
        http=http,
        egress_http=http,
        config=settings.action_config(),
        retry=settings.retry_policy(),
        limiter=settings.rate_limiter(),
        breakers=engine.circuit_breakers,
    )
    return engine, http


async def _per_record_us(engine: Engine, records: list[_Record]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for record in records:
            with engine._credentials.for_record() as credentials:
                await engine._outputs(record, credentials)
        best = min(best, (time.perf_counter() - started) / len(records))
    return best * 1e6


async def record_path_figures(report: Report, records: int) -> None:
    configure_logging("info", stream=io.StringIO())  # the real chain; lines kept in memory
    tokens = {(f"tenant-{n}", "slack"): _token() for n in range(TENANTS)}
    tokens[("demo", "slack")] = _token()
    engine, http = await _engine(tokens)
    slack = [_request(n, "demo", "send_slack") for n in range(records)]
    logs = [_request(n, "demo", "log_message") for n in range(records)]
    await _per_record_us(engine, slack[:100])  # warm: the demo token is cached
    fresh_slack = await _per_record_us(engine, slack)
    fresh_log = await _per_record_us(engine, logs)
    started = time.perf_counter()
    for n in range(TENANTS):
        record = _request(records + n, f"tenant-{n}", "send_slack")
        with engine._credentials.for_record() as credentials:
            await engine._outputs(record, credentials)
    served_s = time.perf_counter() - started
    after_slack = await _per_record_us(engine, slack)
    after_log = await _per_record_us(engine, logs)
    await http.aclose()
    report.add(
        "tenants",
        f"serve {TENANTS:,} tenants, one send_slack each (own token, first fetch)",
        f"{served_s:.2f} s ({served_s / TENANTS * 1e3:.2f} ms per tenant)",
    )
    for label, fresh, after in (
        ("send_slack", fresh_slack, after_slack),
        ("log_message", fresh_log, after_log),
    ):
        ratio = after / fresh
        report.add(
            "tenants",
            f"per-record {label}, fresh -> after {TENANTS:,} tenants",
            f"{fresh:.1f} us -> {after:.1f} us ({ratio:.2f}x)",
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
