"""A log event: one JSON object per event on the logs topic (and on stdout).

Every request yields one outcome event at `info` or above (`action.succeeded`, `action.failed`
or `request.invalid`: the canonical log line) carrying the fields below; `request.received`
and `action.started` are `debug` events."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

# How a request ended: exactly one of these per request.
OUTCOME_EVENTS = ("action.succeeded", "action.failed", "request.invalid")

EVENT_NAMES = (
    *OUTCOME_EVENTS,
    "request.received",
    "action.started",
    "action.retrying",
    "log_message",
    "engine.started",
    "engine.stopping",
    "engine.stopped",
    "partitions.assigned",
    "partitions.revoked",
)


class LogEvent(BaseModel):
    """The fields every event carries; events add their own (extra fields are allowed)."""

    model_config = ConfigDict(extra="allow", title="LogEvent")

    timestamp: str = Field(description="RFC 3339, UTC, millisecond precision.")
    level: LogLevel
    event: str = Field(description=f"Event name, e.g. {', '.join(EVENT_NAMES)}.")
    service: str = Field(default="execution-engine")
    request_id: str | None = None
    action: str | None = None
    project: str | None = None
    duration_ms: float | None = None
    traceparent: str | None = Field(default=None, description="W3C traceparent, when given.")
    partition: int | None = Field(
        default=None, description="The request record's partition (a record's events)."
    )
    offset: int | None = Field(
        default=None, description="The request record's offset (a record's events)."
    )
    attempts: int | None = Field(
        default=None, description="Outcome events: how many times the action ran."
    )
    queued_ms: float | None = Field(
        default=None, description="Outcome events: from consumed to started (ms)."
    )
    deduplicated: bool | None = Field(
        default=None, description="Outcome events: present (true) when it was not run again."
    )
    error_code: str | None = Field(
        default=None, description="Failed outcomes and retries: the contract's error code."
    )
    error_message: str | None = Field(default=None, description="Failed outcomes: why.")
    retryable: bool | None = Field(
        default=None, description="Failed outcomes: whether sending it again may succeed."
    )
