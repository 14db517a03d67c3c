"""The result envelope: exactly one per consumed request record, on the results topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from schemas.errors import ErrorCode


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, as the contract's examples show."""
    if moment.tzinfo is UTC:  # what the engine's clock gives: the second's text is reused
        return _UTC_SECONDS.format(moment)
    # isoformat truncates to milliseconds like the contract's examples, at a fifth of
    # strftime's cost.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class _SecondsText:
    """The formatted second of the last UTC moment: two timestamps per envelope, thousands of
    envelopes per second, and all of one second share the text up to the milliseconds (a
    third of `isoformat`'s cost)."""

    def __init__(self) -> None:
        self._last = datetime.min  # the last moment's fields up to its second
        self._prefix = ""

    def format(self, moment: datetime) -> str:
        last = self._last
        if not (
            moment.second == last.second
            and moment.minute == last.minute
            and moment.hour == last.hour
            and moment.day == last.day
            and moment.month == last.month
            and moment.year == last.year
        ):
            self._last = moment
            self._prefix = moment.isoformat(timespec="seconds")[:-6] + "."
        return f"{self._prefix}{moment.microsecond // 1000:03d}Z"


_UTC_SECONDS = _SecondsText()


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True, title="ErrorInfo")

    code: ErrorCode
    message: str
    retryable: bool
    details: dict[str, Any] | None = Field(
        default=None, description="Provider status or error code, where there is one."
    )


class FallbackResult(BaseModel):
    """The outcome of a request's fallback action, beside the main action's."""

    model_config = ConfigDict(frozen=True, title="FallbackResult")

    action: str
    status: Literal["success", "error"]
    data: dict[str, Any] | None
    error: ErrorInfo | None
    attempts: int = Field(ge=0)
    duration_ms: float


class ResultEnvelope(BaseModel):
    model_config = ConfigDict(frozen=True, title="ResultEnvelope")

    request_id: str
    action: str | None = Field(description="Null when the record could not be parsed far enough.")
    project: str | None = Field(description="Null when the record could not be parsed far enough.")
    status: Literal["success", "error"]
    data: dict[str, Any] | None
    error: ErrorInfo | None
    attempts: int = Field(ge=0, description="How many times the action ran (0 if it never did).")
    started_at: datetime
    finished_at: datetime
    duration_ms: float
    metadata: dict[str, Any] | None = None
    environment: str | None = None
    fallback: FallbackResult | None = Field(
        default=None,
        description=(
            "Present when the request had a fallback and the action failed for good: the "
            "fallback's own outcome. `status`, `data` and `error` above stay the main action's."
        ),
    )
    deduplicated: Literal[True] | None = Field(
        default=None,
        # Absent rather than null on every other envelope: "true when present".
        exclude_if=lambda value: value is None,
        description=(
            "Present (true) when the request was not executed because its `request_id` had "
            "already succeeded: `data` repeats the first success's, `attempts` is 0."
        ),
    )

    @field_serializer("started_at", "finished_at")
    def _serialize_time(self, moment: datetime) -> str:
        return format_timestamp(moment)


def error_envelope(
    request_id: str,
    code: ErrorCode,
    message: str,
    *,
    started_at: datetime,
    finished_at: datetime,
    action: str | None = None,
    project: str | None = None,
    details: dict[str, Any] | None = None,
    attempts: int = 0,
    metadata: dict[str, Any] | None = None,
    environment: str | None = None,
) -> ResultEnvelope:
    return ResultEnvelope(
        request_id=request_id,
        action=action,
        project=project,
        status="error",
        data=None,
        error=ErrorInfo(code=code, message=message, retryable=code.retryable, details=details),
        attempts=attempts,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=_duration_ms(started_at, finished_at),
        metadata=metadata,
        environment=environment,
    )


def success_envelope(
    request_id: str,
    data: dict[str, Any],
    *,
    action: str,
    project: str,
    started_at: datetime,
    finished_at: datetime,
    attempts: int,
    metadata: dict[str, Any] | None = None,
    environment: str | None = None,
) -> ResultEnvelope:
    return ResultEnvelope(
        request_id=request_id,
        action=action,
        project=project,
        status="success",
        data=data,
        error=None,
        attempts=attempts,
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=_duration_ms(started_at, finished_at),
        metadata=metadata,
        environment=environment,
    )


def _duration_ms(started_at: datetime, finished_at: datetime) -> float:
    return round((finished_at - started_at).total_seconds() * 1000, 3)
