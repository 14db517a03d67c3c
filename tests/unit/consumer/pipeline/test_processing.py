"""consumer/pipeline/processing.py, the record path without Kafka: every record yields exactly
one envelope, even when the engine itself fails on it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from actions import NO_SLOT, ActionRunner, default_registry
from consumer.ops.metrics import EngineMetrics
from consumer.ops.tracing import NO_TRACING
from consumer.pipeline.intake import IntakeLimits
from consumer.pipeline.processing import RecordProcessor, Work
from consumer.pipeline.rendering import OutcomeRenderer, OutMessage
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
    runner = ActionRunner(
        registry=registry, credentials=FakeCredentials(), http=http, egress_http=http
    )
    return RecordProcessor(
        runner,
        OutcomeRenderer("execution.results", "execution.dead-letter", 1_200_000),
        IntakeLimits(1_048_576, 64, 262_144),
        metrics=EngineMetrics(registry.names()),
        tracing=NO_TRACING,
    )


def envelope_of(messages: list[OutMessage]) -> dict[str, Any]:
    [result] = [m for m in messages if m.topic == "execution.results"]
    assert result.value is not None
    parsed: dict[str, Any] = json.loads(result.value)
    return parsed


async def run(subject: RecordProcessor, record: Record) -> list[OutMessage]:
    channel = Channel()
    work = Work(record, subject.intake(record), channel)
    await subject.run(work, NO_SLOT)
    [(offset, messages)] = channel.finished
    assert offset == record.offset
    return messages


async def test_an_unreadable_record_gets_its_envelope_and_dead_letter() -> None:
    messages = await run(processor(), Record(b"\xff"))
    assert [m.topic for m in messages] == ["execution.dead-letter", "execution.results"]
    assert envelope_of(messages)["error"]["code"] == "invalid_json"


def test_a_rejection_is_immediate_and_yields_the_same_messages() -> None:
    subject = processor()
    record = Record(b"\xff")
    decoded = subject.intake(record)
    assert subject.is_immediate(decoded)
    messages = subject.process_now(record, decoded)
    assert [m.topic for m in messages] == ["execution.dead-letter", "execution.results"]
    assert envelope_of(messages)["error"]["code"] == "invalid_json"


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

    monkeypatch.setattr(subject, "_executed", broken)
    request = {"action": "log_message", "project": "p", "params": {"message": "hi"}}
    envelope = envelope_of(await run(subject, Record(json.dumps(request).encode())))
    assert envelope["request_id"] == "requests:2:41"
    assert envelope["error"]["code"] == "internal_error"


async def test_a_failed_intake_still_yields_one_internal_error_envelope() -> None:
    channel = Channel()
    await processor().run(Work(Record(b"{}"), None, channel), NO_SLOT)
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
