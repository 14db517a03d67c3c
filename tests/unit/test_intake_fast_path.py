"""consumer/intake.py's one-pass path must decide exactly as the step-by-step path does."""

from __future__ import annotations

import json

import pytest

from consumer import intake
from consumer.intake import Accepted, decode_record

VALID = {"action": "log_message", "project": "p-1", "params": {"message": "hi"}}

CASES = [
    json.dumps(VALID).encode(),
    json.dumps({**VALID, "request_id": "r-1", "metadata": {"a": [1, {"b": None}]}}).encode(),
    json.dumps({**VALID, "deadline": "2999-01-01T00:00:00Z", "environment": "prod"}).encode(),
    json.dumps({**VALID, "deadline": 1234567890}).encode(),
    json.dumps({**VALID, "params": {"x": 1e400}}).encode(),
    b'{"action": "a", "project": "p", "params": {"x": NaN}}',
    b'{"action": "a", "project": "p", "params": {"x": -Infinity}}',
    b'{"action": "a", "project": "p", "params": {"x": "NaN is fine in a string"}}',
    b'{"action": "a", "project": "p", "params": {"x": "\\ud800"}}',
    b'{"action": "a", "action": "b", "project": "p", "params": {}}',
    b'\xef\xbb\xbf{"action": "a", "project": "p", "params": {}}',
    b'{"action": "a", "project": "p", "params": {}} trailing',
    b'{"action": "a", "project": "..", "params": {}}',
    b'{"action": "a", "project": "p", "params": {}, "typo": 1}',
    b'{"action": "a", "project": "p", "params": []}',
    b'{"action": "a", "project": "p", "params": {"s": "\xff"}}',
    json.dumps({**VALID, "params": {"deep": json.loads("[" * 70 + "]" * 70)}}).encode(),
    json.dumps({**VALID, "params": {"deep": json.loads("[" * 62 + "]" * 62)}}).encode(),
    b"[1, 2]",
    b"",
]


def decide(value: bytes) -> object:
    return decode_record(
        value, [("request-id", b"hdr-1")], topic="t", partition=0, offset=7, max_bytes=1 << 20
    )


@pytest.mark.parametrize("value", CASES)
def test_one_pass_and_step_by_step_agree(value: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = decide(value)
    monkeypatch.setattr(intake, "_accept_in_one_pass", lambda *_: None)
    assert decide(value) == fast


def test_a_valid_request_takes_the_one_pass_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("the step-by-step path ran for a valid request")

    monkeypatch.setattr(json, "loads", refuse)
    decided = decide(json.dumps(VALID).encode())
    assert isinstance(decided, Accepted)
    assert decided.request_id == "hdr-1"
