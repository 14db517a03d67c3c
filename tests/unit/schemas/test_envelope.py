"""schemas/envelope.py: the result envelope and its constructors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from schemas import ErrorCode, error_envelope, format_timestamp, success_envelope

T0 = datetime(2026, 11, 26, 9, 0, 0, 12345, tzinfo=UTC)
T1 = T0 + timedelta(milliseconds=142)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC), "2026-11-26T09:00:00.000Z"),
        (datetime(2026, 11, 26, 9, 0, 0, 12999, tzinfo=UTC), "2026-11-26T09:00:00.012Z"),
        (datetime(2026, 11, 26, 9, 0, 0, 999999, tzinfo=UTC), "2026-11-26T09:00:00.999Z"),
        (
            datetime(2026, 11, 26, 11, 30, 0, 154000, tzinfo=timezone(timedelta(hours=2))),
            "2026-11-26T09:30:00.154Z",
        ),
        (
            datetime(2026, 11, 25, 23, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
            "2026-11-26T04:00:00.000Z",
        ),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59.999Z"),
        (datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), "1969-12-31T23:59:59.500Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999Z"),
    ],
)
def test_format_timestamp_is_utc_milliseconds_z(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text


def test_moments_of_one_second_share_its_text_and_no_other() -> None:
    moments = [T0 + timedelta(milliseconds=step * 137) for step in range(40)]
    texts = [format_timestamp(moment) for moment in moments]
    expected = [
        moment.astimezone(timezone(timedelta(0))).isoformat(timespec="milliseconds")[:-6] + "Z"
        for moment in moments
    ]
    assert texts == expected


def test_success_envelope_shape() -> None:
    envelope = success_envelope(
        "req-1",
        {"slack_message_id": "1732600000.000100", "channel": "C024BE91L"},
        action="send_slack",
        project="demo",
        started_at=T0,
        finished_at=T1,
        attempts=1,
        metadata={"flow": "on-register"},
        environment="production",
    )
    rendered = json.loads(envelope.model_dump_json())
    assert rendered == {
        "request_id": "req-1",
        "action": "send_slack",
        "project": "demo",
        "status": "success",
        "data": {"slack_message_id": "1732600000.000100", "channel": "C024BE91L"},
        "error": None,
        "attempts": 1,
        "started_at": "2026-11-26T09:00:00.012Z",
        "finished_at": "2026-11-26T09:00:00.154Z",
        "duration_ms": 142.0,
        "metadata": {"flow": "on-register"},
        "environment": "production",
        "fallback": None,
    }


def test_error_envelope_shape() -> None:
    envelope = error_envelope(
        "req-2",
        ErrorCode.MISSING_CREDENTIALS,
        "Missing Slack token in Vault",
        started_at=T0,
        finished_at=T0,
        action="send_slack",
        project="demo",
        details={"service": "slack"},
    )
    rendered = json.loads(envelope.model_dump_json())
    assert rendered["status"] == "error"
    assert rendered["data"] is None
    assert rendered["error"] == {
        "code": "missing_credentials",
        "message": "Missing Slack token in Vault",
        "retryable": False,
        "details": {"service": "slack"},
    }
    assert rendered["attempts"] == 0
    assert rendered["duration_ms"] == 0.0
    assert rendered["started_at"] == rendered["finished_at"] == "2026-11-26T09:00:00.012Z"
    assert rendered["metadata"] is None


def test_error_envelope_of_an_unparsed_record_has_null_action_and_project() -> None:
    envelope = error_envelope(
        "t:0:5", ErrorCode.INVALID_JSON, "not JSON", started_at=T0, finished_at=T0
    )
    rendered = json.loads(envelope.model_dump_json())
    assert rendered["action"] is None
    assert rendered["project"] is None
    assert rendered["request_id"] == "t:0:5"


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_envelope_retryable_follows_the_code(code: ErrorCode) -> None:
    envelope = error_envelope("r", code, "m", started_at=T0, finished_at=T1)
    assert envelope.error is not None
    assert envelope.error.code is code
    assert envelope.error.retryable is code.retryable
    assert json.loads(envelope.model_dump_json())["error"]["code"] == code.value


def test_duration_is_milliseconds_between_start_and_finish() -> None:
    envelope = error_envelope(
        "r",
        ErrorCode.INTERNAL_ERROR,
        "m",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=1, microseconds=500),
    )
    assert envelope.duration_ms == 1000.5
