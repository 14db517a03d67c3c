"""consumer/pipeline/processing.py, the record path without Kafka: every record yields exactly
one envelope, even when the engine itself fails on it."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from actions.base import NO_SLOT, Action, ActionContext, ActionParams
from actions.registry import ActionRegistry, default_registry
from actions.runtime.runner import ActionRunner
from consumer.credentials.cache import CredentialCache
from consumer.ops.logging import configure_logging, flush_logs, reset_logging
from consumer.ops.metrics import EngineMetrics
from consumer.ops.tracing import NO_TRACING
from consumer.pipeline.intake import IntakeLimits
from consumer.pipeline.processing import RecordProcessor, Work
from consumer.pipeline.rendering import OutcomeRenderer, OutMessage
from consumer.secrets.redaction import SecretRegistry
from tests.unit.support import FakeCredentials, plain_client


@dataclass
class Record:
    value: bytes | None
    topic: str = "requests"
    partition: int = 2
    offset: int = 41
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Channel:
    def __init__(self) -> None:
        self.finished: list[tuple[int, list[OutMessage]]] = []

    def finish(self, offset: int, messages: list[OutMessage]) -> None:
        self.finished.append((offset, messages))


def processor() -> RecordProcessor:
    registry = default_registry()
    http = plain_client()
    credentials = FakeCredentials()
    runner = ActionRunner(registry=registry, credentials=credentials, http=http, egress_http=http)
    return RecordProcessor(
        runner,
        OutcomeRenderer("execution.results", "execution.dead-letter", 1_200_000),
        IntakeLimits(1_048_576, 64, 262_144),
        metrics=EngineMetrics(registry.names()),
        tracing=NO_TRACING,
        credentials=CredentialCache(credentials.get),
    )


def envelope_of(messages: list[OutMessage]) -> dict[str, Any]:
    [result] = [m for m in messages if m.topic == "execution.results"]
    assert result.value is not None
    parsed: dict[str, Any] = json.loads(result.value)
    return parsed


async def run(subject: RecordProcessor, record: Record) -> list[OutMessage]:
    channel = Channel()
    work = Work(record, subject.intake(record), channel, time.time())
    await subject.run(work, NO_SLOT)
    [(offset, messages)] = channel.finished
    assert offset == record.offset
    return messages


async def test_an_unreadable_record_gets_its_envelope_and_dead_letter() -> None:
    messages = await run(processor(), Record(b"\xff"))
    assert [m.topic for m in messages] == ["execution.dead-letter", "execution.results"]
    assert envelope_of(messages)["error"]["code"] == "invalid_json"


@pytest.mark.parametrize(
    "value",
    [
        b"\xff",
        b'{"action": "log_message", "project": "p", "params": {"message": "hi"}}',
        b'{"action": "no_such_action", "project": "p", "params": {}}',
    ],
)
def test_an_immediate_record_finishes_without_waiting(value: bytes) -> None:
    subject = processor()
    record = Record(value)
    decoded = subject.intake(record)
    assert subject.is_immediate(decoded)
    coroutine = subject.process(Work(record, decoded, Channel(), time.time()), NO_SLOT)
    with pytest.raises(StopIteration) as done:
        coroutine.send(None)  # one step: it never suspends
    messages = done.value.value
    assert [m.topic for m in messages][-1] == "execution.results"
    assert envelope_of(messages)["request_id"] == "requests:2:41"


async def test_a_valid_request_runs_its_action() -> None:
    request = {
        "request_id": "r-1",
        "action": "log_message",
        "project": "p",
        "params": {"message": "hi"},
    }
    messages = await run(processor(), Record(json.dumps(request).encode()))
    envelope = envelope_of(messages)
    assert envelope["status"] == "success" and envelope["request_id"] == "r-1"
    assert [m.topic for m in messages] == ["execution.results"]


async def test_a_bug_while_running_still_yields_one_internal_error_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subject = processor()

    async def broken(*args: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(subject._runner, "execute", broken)
    request = {"action": "log_message", "project": "p", "params": {"message": "hi"}}
    envelope = envelope_of(await run(subject, Record(json.dumps(request).encode())))
    assert envelope["request_id"] == "requests:2:41"
    assert envelope["error"]["code"] == "internal_error"


async def test_a_failed_intake_still_yields_one_internal_error_envelope() -> None:
    channel = Channel()
    await processor().run(Work(Record(b"{}"), None, channel, time.time()), NO_SLOT)
    [(_, messages)] = channel.finished
    envelope = envelope_of(messages)
    assert envelope["request_id"] == "requests:2:41"
    assert envelope["error"]["code"] == "internal_error"


async def test_a_result_that_cannot_be_rendered_still_yields_one_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subject = processor()
    real = subject._renderer.render
    calls = 0

    def render_fails_once(*args: Any, **kwargs: Any) -> list[OutMessage]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(*args, **kwargs)

    monkeypatch.setattr(subject._renderer, "render", render_fails_once)
    envelope = envelope_of(await run(subject, Record(b"\xff")))
    assert envelope["request_id"] == "requests:2:41"
    assert "could not render" in envelope["error"]["message"]


class EchoToken(Action[ActionParams]):
    """Fetches its project's `svc` token, has the cache forget it (as a rotation would), then
    echoes it in its data and a log event, as a hostile upstream would reflect it."""

    name = "echo_token"
    params_model = ActionParams
    service = "svc"

    async def run(self, params: ActionParams, ctx: ActionContext) -> Mapping[str, Any]:
        token = (await ctx.token("svc")).get_secret_value()
        await ctx.credentials.invalidate(ctx.project, "svc")  # no longer cached...
        ctx.log.info("echo.logged", said=f"Bearer {token}")  # ...but still this record's
        return {"echo": f"Bearer {token}", "cut": f"Bearer {token}"[:-3]}


def scoped_processor(tokens: dict[str, str]) -> tuple[RecordProcessor, SecretRegistry]:
    registry = SecretRegistry()

    async def fetch(project: str, service: str) -> SecretStr:
        return SecretStr(tokens[project])

    cache = CredentialCache(fetch, secrets=registry)
    actions = ActionRegistry([*default_registry(), EchoToken()])
    http = plain_client()
    runner = ActionRunner(registry=actions, credentials=cache, http=http, egress_http=http)
    subject = RecordProcessor(
        runner,
        OutcomeRenderer("execution.results", "execution.dead-letter", 1_200_000),
        IntakeLimits(1_048_576, 64, 262_144),
        metrics=EngineMetrics(actions.names()),
        tracing=NO_TRACING,
        credentials=cache,
    )
    return subject, registry


async def test_a_record_is_scrubbed_of_its_own_credentials_and_not_of_others() -> None:
    token_a, token_b = "tok-project-a-0123456789", "tok-project-b-9876543210"
    subject, registry = scoped_processor({"pa": token_a, "pb": token_b})
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        echo = {"request_id": "r-a", "action": "echo_token", "project": "pa", "params": {}}
        said = f"{token_a} in project b's own words"
        log = {"request_id": "r-b", "action": "log_message", "project": "pb", "params": {}}
        log["params"] = {"message": said}
        messages_a = await run(subject, Record(json.dumps(echo).encode()))
        messages_b = await run(subject, Record(json.dumps(log).encode(), offset=42))
        flush_logs()
    finally:
        reset_logging()
    data = envelope_of(messages_a)["data"]
    assert data == {"echo": "Bearer [REDACTED]", "cut": "Bearer [REDACTED]"}
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["said"] for e in events if e["event"] == "echo.logged"] == ["Bearer [REDACTED]"]
    assert [e["message"] for e in events if e["event"] == "log_message"] == [said]
    assert envelope_of(messages_b)["status"] == "success"
    # Rendered: the invalidated token was this record's only holder, and it has left.
    assert not registry.holds(token_a) and len(registry) == 0


@pytest.mark.parametrize(
    ("value", "event", "code"),
    [
        (
            b'{"action": "log_message", "project": "p", "params": {"message": "hi"}}',
            "action.succeeded",
            None,
        ),
        (b'{"action": "nope", "project": "p", "params": {}}', "action.failed", "unknown_action"),
        (b"\xff", "request.invalid", "invalid_json"),
    ],
)
async def test_every_request_yields_one_outcome_event_with_its_fields(
    value: bytes, event: str, code: str | None
) -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        await run(processor(), Record(value, headers=[("traceparent", TRACE.encode())]))
        flush_logs()
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        reset_logging()
    # At info: the outcome event and what the action logs itself; nothing else.
    assert [e["event"] for e in lines if e["event"] != "log_message"] == [event]
    [outcome] = [e for e in lines if e["event"] == event]
    assert outcome["request_id"] == "requests:2:41"
    assert (outcome["partition"], outcome["offset"]) == (2, 41)
    assert outcome["traceparent"] == TRACE
    assert outcome["attempts"] == (1 if code is None else 0)
    assert outcome["duration_ms"] >= 0 and outcome["queued_ms"] >= 0
    if code is None:
        assert outcome["level"] == "info" and "error_code" not in outcome
    else:
        assert outcome["level"] == "warning" and outcome["error_code"] == code
        assert outcome["error_message"] and outcome["retryable"] is False


async def test_received_and_started_are_debug_events() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    try:
        request = b'{"action": "log_message", "project": "p", "params": {"message": "hi"}}'
        await run(processor(), Record(request))
        flush_logs()
    finally:
        reset_logging()
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["event"], e["level"]) for e in events] == [
        ("request.received", "debug"),
        ("action.started", "debug"),
        ("log_message", "info"),
        ("action.succeeded", "info"),
    ]


TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
