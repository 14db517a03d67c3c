"""A record's credential never leaves in what its record publishes, whatever path renders it:
normal, lone-surrogate fallback, too large (at render and when the broker refuses it), a bug,
a render failure, a rejection, a deduplicated twin, a fallback action. The token is put in
`data`, `error.message` and `error.details` by an action that echoes it, as a hostile upstream
would."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pytest
from pydantic import SecretStr

from actions import UpstreamError
from actions.base import NO_SLOT, Action, ActionContext, ActionParams
from actions.registry import ActionRegistry, default_registry
from actions.runtime.idempotency import IdempotencyRecords, LocalSuccesses
from actions.runtime.runner import ActionRunner
from consumer.credentials.cache import CredentialCache
from consumer.ops.logging import configure_logging, flush_logs, reset_logging
from consumer.ops.metrics import EngineMetrics
from consumer.ops.tracing import NO_TRACING
from consumer.pipeline.intake import IntakeLimits
from consumer.pipeline.processing import RecordProcessor, Work
from consumer.pipeline.rendering import OutcomeRenderer, OutMessage
from consumer.secrets.redaction import SecretRegistry
from tests.unit.consumer.pipeline.test_processing import Channel, Record
from tests.unit.support import plain_client

TOKEN = "tok-tenant-secret-0123456789"
Mode = Literal["data", "surrogate", "large", "error", "crash"]


class LeakyParams(ActionParams):
    mode: Mode


class Leaky(Action[LeakyParams]):
    """Fetches its project's token and hands it back in the way `mode` says."""

    name = "leaky"
    params_model = LeakyParams
    service = "svc"

    async def run(self, params: LeakyParams, ctx: ActionContext) -> Mapping[str, Any]:
        token = (await ctx.token("svc")).get_secret_value()
        echo = f"Bearer {token}"
        if params.mode == "surrogate":
            return {"echo": echo, "odd": "\ud800"}
        if params.mode == "large":
            return {"echo": echo, "pad": "x" * 5_000}
        if params.mode == "error":
            raise UpstreamError(f"refused {echo}", details={"echo": echo, "cut": echo[:-3]})
        if params.mode == "crash":
            raise RuntimeError(f"crashed holding {echo}")
        return {"echo": echo, "cut": echo[:-3]}


class Published:
    """A processor whose every output is kept: envelopes and dead letters, and log lines."""

    def __init__(self, max_message_bytes: int = 4_000) -> None:
        self.secrets = SecretRegistry()

        async def fetch(project: str, service: str) -> SecretStr:
            return SecretStr(TOKEN)

        self.cache = CredentialCache(fetch, secrets=self.secrets)
        actions = ActionRegistry([*default_registry(), Leaky()])
        http = plain_client()  # never called: the action only echoes its token
        runner = ActionRunner(
            registry=actions,
            credentials=self.cache,
            http=http,
            egress_http=http,
            idempotency=IdempotencyRecords(LocalSuccesses()),
        )
        self.renderer = OutcomeRenderer("results", "dead", max_message_bytes)
        self.processor = RecordProcessor(
            runner,
            self.renderer,
            IntakeLimits(1_048_576, 64, 262_144),
            metrics=EngineMetrics(actions.names()),
            tracing=NO_TRACING,
            credentials=self.cache,
        )

    async def process(self, request: dict[str, Any], offset: int = 41) -> list[OutMessage]:
        record = Record(json.dumps(request).encode(), offset=offset)
        channel = Channel()
        work = Work(record, self.processor.intake(record), channel, time.time())
        await self.processor.run(work, NO_SLOT)
        [(_, messages)] = channel.finished
        return messages


def request(mode: Mode, **more: Any) -> dict[str, Any]:
    return {
        "request_id": f"r-{mode}",
        "action": "leaky",
        "project": "p",
        "params": {"mode": mode},
    } | more


def assert_no_token(messages: list[OutMessage]) -> None:
    for message in messages:
        for part in (message.key or b"", message.value or b"", *(v for _, v in message.headers)):
            # The whole token, and its cut tail's start (a cut of 4+ characters is masked too).
            assert TOKEN.encode() not in part, part
            assert TOKEN[:-3].encode() not in part, part


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    try:
        yield stream
    finally:
        reset_logging()
    assert TOKEN[:-3] not in stream.getvalue()


@pytest.mark.parametrize("mode", ["data", "surrogate", "large", "error", "crash"])
async def test_no_path_publishes_the_records_token(mode: Mode, log_lines: io.StringIO) -> None:
    published = Published()
    messages = await published.process(request(mode))
    assert_no_token(messages)
    [result] = messages
    envelope = json.loads(result.value or b"")
    if mode in ("data", "surrogate"):
        assert envelope["data"]["echo"] == "Bearer [REDACTED]"
    if mode == "surrogate":
        assert envelope["data"]["odd"] == "\\ud800"  # escaped, still scrubbed
    if mode == "large":
        assert "was too large to publish" in envelope["error"]["message"]
    if mode == "error":
        assert envelope["error"]["details"]["echo"] == "Bearer [REDACTED]"
    flush_logs()


async def test_an_envelope_the_broker_refuses_is_replaced_by_a_scrubbed_one(
    log_lines: io.StringIO,
) -> None:
    published = Published(max_message_bytes=1_000_000)
    [message] = await published.process(request("data", environment=f"env {TOKEN}"))
    assert_no_token([message])
    # After rendering, the record's scope is gone: the stand-in is made of what was published.
    assert_no_token([published.renderer.shrink(message)])
    flush_logs()


async def test_a_bug_and_a_render_failure_publish_no_token(
    monkeypatch: pytest.MonkeyPatch, log_lines: io.StringIO
) -> None:
    published = Published()
    real = published.renderer.render
    calls = 0

    def render_fails_once(*args: Any, **kwargs: Any) -> list[OutMessage]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError(f"render bug near Bearer {TOKEN}")
        return real(*args, **kwargs)

    monkeypatch.setattr(published.renderer, "render", render_fails_once)
    messages = await published.process(request("data"))
    assert_no_token(messages)
    assert b"could not render" in (messages[0].value or b"")
    flush_logs()


async def test_a_deduplicated_twin_repeats_the_scrubbed_data(log_lines: io.StringIO) -> None:
    published = Published()
    first = await published.process(request("data"))
    # The twin runs nothing (so fetches no token): its scope knows nothing to scrub.
    published.cache._entries.clear()
    twin = await published.process(request("data"), offset=42)
    assert_no_token(first + twin)
    envelope = json.loads(twin[0].value or b"")
    assert envelope["deduplicated"] is True
    assert envelope["data"]["echo"] == "Bearer [REDACTED]"
    flush_logs()


async def test_a_fallback_s_outcome_publishes_no_token(log_lines: io.StringIO) -> None:
    published = Published()
    messages = await published.process(
        request("error", fallback={"action": "leaky", "params": {"mode": "data"}})
    )
    assert_no_token(messages)
    envelope = json.loads(messages[0].value or b"")
    assert envelope["fallback"]["data"]["echo"] == "Bearer [REDACTED]"
    flush_logs()


async def test_a_rejection_publishes_no_engine_secret(log_lines: io.StringIO) -> None:
    published = Published()
    published.secrets.add_engine_secret(TOKEN)
    messages = await published.process({"action": "leaky", "project": "p", TOKEN: 1})
    assert [m.topic for m in messages] == ["dead", "results"]
    # The dead letter carries the original bytes unchanged (the contract); what the engine
    # writes itself (headers, envelope) does not repeat the secret.
    dead, result = messages
    assert_no_token([result, dead._replace(value=None)])
    flush_logs()
