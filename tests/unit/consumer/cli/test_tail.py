"""consumer/tail.py: one readable line per record, and the filters."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from consumer.cli.tail import TailFilter, matches, read_entry

T = 1_764_147_600_000  # 2025-11-26T09:00:00Z in ms


@dataclass
class Rec:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = T


ENVELOPE = {
    "request_id": "r1",
    "action": "send_slack",
    "project": "demo",
    "status": "error",
    "data": None,
    "error": {"code": "missing_credentials", "message": "no slack token", "retryable": False},
    "attempts": 1,
    "started_at": "2026-11-26T09:00:00.000Z",
    "finished_at": "2026-11-26T09:00:00.010Z",
    "duration_ms": 10.0,
}


def test_an_envelope_line_and_its_filters() -> None:
    entry = read_entry("results", Rec(json.dumps(ENVELOPE).encode()))
    assert entry.line == (
        "2026-11-26T09:00:00.010Z  r1  send_slack/demo  10.0 ms x1  "
        "error missing_credentials: no slack token"
    )
    assert matches(entry, TailFilter())
    assert matches(entry, TailFilter(request_id="r1", status="error", project="demo"))
    assert matches(entry, TailFilter(status="missing_credentials", action="send_slack"))
    assert not matches(entry, TailFilter(status="success"))
    assert not matches(entry, TailFilter(project="other"))
    assert not matches(entry, TailFilter(status="upstream_error"))


def test_a_log_line_keeps_the_extra_fields() -> None:
    event = {
        "timestamp": "2026-11-26T09:00:00.154Z",
        "level": "warning",
        "event": "action.retrying",
        "service": "execution-engine",
        "request_id": "r1",
        "action": "send_slack",
        "delay_s": 0.4,
    }
    entry = read_entry("logs", Rec(json.dumps(event).encode()))
    assert entry.line == "2026-11-26T09:00:00.154Z  warning  action.retrying  r1  delay_s=0.4"
    assert matches(entry, TailFilter(status="warning", action="send_slack"))
    assert not matches(entry, TailFilter(status="error"))


def test_a_dead_letter_shows_why_and_where_from() -> None:
    headers = [
        ("error-code", b"invalid_json"),
        ("error-message", b"the value is not UTF-8 (byte 0)"),
        ("source-topic", b"execution.requests"),
        ("source-partition", b"2"),
        ("source-offset", b"41"),
    ]
    entry = read_entry("dead-letter", Rec(b"\xff\xfe", b"k", headers))
    assert entry.line == (
        "2025-11-26T09:00:00.000Z  execution.requests:2:41  "
        "invalid_json: the value is not UTF-8 (byte 0)  key=k  value=0xfffe"
    )
    assert matches(entry, TailFilter(status="invalid_json"))
    assert json.loads(entry.raw)["headers"]["source-offset"] == "41"


def test_a_value_that_is_not_json_is_still_shown() -> None:
    entry = read_entry("results", Rec(b"garbage\n"))
    assert "(not JSON) 'garbage\\n'" in entry.line
    assert not matches(entry, TailFilter(request_id="r1"))
