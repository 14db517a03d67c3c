"""consumer/engine.py, the record path without Kafka: every record reaches its partition's
channel with exactly one envelope, even when the engine itself fails on it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from consumer.engine import Engine, _Work
from consumer.pipeline.rendering import OutMessage
from consumer.settings import EngineSettings


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


def engine() -> Engine:
    return Engine(EngineSettings(http_port=0))


def envelope_of(messages: list[OutMessage]) -> dict[str, Any]:
    [result] = [m for m in messages if m.topic == "execution.results"]
    assert result.value is not None
    parsed: dict[str, Any] = json.loads(result.value)
    return parsed


async def test_an_unreadable_record_gets_its_envelope_and_dead_letter() -> None:
    channel = Channel()
    await engine()._process(_Work(Record(b"\xff"), channel))  # type: ignore[arg-type]
    [(offset, messages)] = channel.finished
    assert offset == 41
    assert [m.topic for m in messages] == ["execution.dead-letter", "execution.results"]
    assert envelope_of(messages)["error"]["code"] == "invalid_json"


async def test_a_bug_while_running_still_yields_one_internal_error_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subject = engine()

    async def broken(record: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(subject, "_outcome", broken)
    channel = Channel()
    await subject._process(_Work(Record(b"{}"), channel))  # type: ignore[arg-type]
    [(_, messages)] = channel.finished
    envelope = envelope_of(messages)
    assert envelope["request_id"] == "requests:2:41"
    assert envelope["error"]["code"] == "internal_error"


async def test_a_result_that_cannot_be_rendered_still_yields_one_envelope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subject = engine()
    real = subject._renderer.render
    calls = 0

    def render_fails_once(*args: Any, **kwargs: Any) -> list[OutMessage]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real(*args, **kwargs)

    monkeypatch.setattr(subject._renderer, "render", render_fails_once)
    channel = Channel()
    await subject._process(_Work(Record(b"\xff"), channel))  # type: ignore[arg-type]
    [(_, messages)] = channel.finished
    envelope = envelope_of(messages)
    assert envelope["request_id"] == "requests:2:41"
    assert "could not render" in envelope["error"]["message"]
