"""actions/runtime/outcome.py: how a run ended, and the envelope it makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actions.runtime.outcome import FALLBACK_ON, Outcome, deadline_passed, outcome_envelope
from schemas import ErrorCode, ExecutionRequest, FallbackResult

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REQUEST = ExecutionRequest.model_validate(
    {
        "request_id": "r-1",
        "action": "log_message",
        "project": "p",
        "params": {"message": "m"},
        "metadata": {"flow": "f"},
        "environment": "staging",
    }
)


def test_a_success_carries_its_data_attempts_and_the_requests_echo() -> None:
    envelope = outcome_envelope(
        REQUEST,
        "r-1",
        Outcome(2, data={"logged": True}),
        None,
        started_at=T0,
        finished_at=T0 + timedelta(milliseconds=5),
    )
    assert (envelope.status, envelope.data, envelope.attempts) == ("success", {"logged": True}, 2)
    assert (envelope.metadata, envelope.environment, envelope.duration_ms) == (
        {"flow": "f"},
        "staging",
        5.0,
    )
    assert envelope.error is None and envelope.fallback is None and envelope.deduplicated is None


def test_a_failure_names_its_code_and_a_fallback_rides_along() -> None:
    fallback = FallbackResult(
        action="log_message", status="success", data={}, error=None, attempts=1, duration_ms=1.0
    )
    envelope = outcome_envelope(
        REQUEST,
        "r-1",
        Outcome(3, code=ErrorCode.UPSTREAM_ERROR, message="no", details={"status": 500}),
        fallback,
        started_at=T0,
        finished_at=T0,
    )
    assert envelope.status == "error" and envelope.error is not None
    assert (envelope.error.code, envelope.error.details) == (
        ErrorCode.UPSTREAM_ERROR,
        {"status": 500},
    )
    assert envelope.fallback == fallback and ErrorCode.UPSTREAM_ERROR in FALLBACK_ON


def test_a_deduplicated_success_says_so_and_a_passed_deadline_never_ran() -> None:
    envelope = outcome_envelope(
        REQUEST,
        "r-1",
        Outcome(0, data={"x": 1}, deduplicated=True),
        None,
        started_at=T0,
        finished_at=T0,
    )
    assert envelope.deduplicated is True and envelope.attempts == 0
    late = deadline_passed("before it ran")
    assert (late.attempts, late.code) == (0, ErrorCode.DEADLINE_EXCEEDED)
    assert late.code not in FALLBACK_ON
