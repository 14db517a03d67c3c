"""Every envelope the engine itself makes (the runner makes the actions' own): for a record
that is not a valid request, for a record the engine failed on, and the stand-in for one that
cannot be published. All of them go through `schemas`' envelope builders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from consumer.pipeline.intake import Rejected
from schemas import ErrorCode, ResultEnvelope, error_envelope


def rejection_envelope(rejected: Rejected) -> ResultEnvelope:
    now = datetime.now(UTC)
    return error_envelope(
        rejected.request_id,
        rejected.code,
        rejected.message,
        started_at=now,
        finished_at=now,
        action=rejected.action,
        project=rejected.project,
    )


def bug_envelope(record: Any, message: str) -> ResultEnvelope:
    """For a record the engine failed on: named by its position, since its request may not
    have been read."""
    now = datetime.now(UTC)
    return error_envelope(
        f"{record.topic}:{record.partition}:{record.offset}",
        ErrorCode.INTERNAL_ERROR,
        message,
        started_at=now,
        finished_at=now,
    )


def replacement(envelope: ResultEnvelope, problem: str) -> ResultEnvelope:
    """The envelope that replaces one that cannot be published: same request, no data or
    metadata, and the outcome the action had, so nobody re-runs a side effect that happened."""
    return error_envelope(
        envelope.request_id,
        ErrorCode.INTERNAL_ERROR,
        f"the result {problem}; the action's outcome was {envelope.status!r}",
        started_at=envelope.started_at,
        finished_at=envelope.finished_at,
        action=envelope.action,
        project=envelope.project,
        attempts=envelope.attempts,
        details={
            "original_status": envelope.status,
            "original_error_code": envelope.error.code.value if envelope.error else None,
        },
        environment=envelope.environment,
    )
