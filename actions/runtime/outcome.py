"""How a request's run ended (`Outcome`), and the envelope it makes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import (
    ErrorCode,
    ExecutionRequest,
    FallbackResult,
    ResultEnvelope,
    error_envelope,
    success_envelope,
)


@dataclass(slots=True)
class Outcome:
    """How one action's run ended: data on success, else an error code and message."""

    attempts: int
    data: dict[str, Any] | None = None
    code: ErrorCode | None = None
    message: str = ""
    details: dict[str, Any] | None = None
    deduplicated: bool = False


# A fallback runs when the action itself failed for good: after its retries, or at once for a
# final failure. Not when the request is wrong (unknown action, bad params) or too late, nor
# when the main action's outcome is unknown (it may have taken effect: `outcome_unknown`).
FALLBACK_ON = frozenset(
    {
        ErrorCode.MISSING_CREDENTIALS,
        ErrorCode.VAULT_UNAVAILABLE,
        ErrorCode.UPSTREAM_ERROR,
        ErrorCode.UPSTREAM_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.FORBIDDEN_DESTINATION,
        ErrorCode.INTERNAL_ERROR,
    }
)


def deadline_passed(when: str) -> Outcome:
    return Outcome(
        0, code=ErrorCode.DEADLINE_EXCEEDED, message=f"the request's deadline passed {when}"
    )


def outcome_envelope(
    request: ExecutionRequest,
    request_id: str,
    outcome: Outcome,
    fallback: FallbackResult | None,
    *,
    started_at: datetime,
    finished_at: datetime,
) -> ResultEnvelope:
    """The envelope of a request whose run ended with `outcome` (and `fallback`'s, if one ran)."""
    echo: dict[str, Any] = {
        "started_at": started_at,
        "finished_at": finished_at,
        "action": request.action,
        "project": request.project,
        "attempts": outcome.attempts,
        "metadata": request.metadata,
        "environment": request.environment,
    }
    if outcome.code is not None:
        envelope = error_envelope(
            request_id, outcome.code, outcome.message, details=outcome.details, **echo
        )
    else:
        envelope = success_envelope(request_id, outcome.data or {}, **echo)
    if outcome.deduplicated or fallback is not None:
        envelope = envelope.model_copy(
            update={"fallback": fallback, "deduplicated": outcome.deduplicated or None}
        )
    return envelope
