"""A log event: one JSON object per event on the logs topic (and on stdout)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

EVENT_NAMES = (
    "request.received",
    "request.invalid",
    "action.started",
    "action.retrying",
    "action.succeeded",
    "action.failed",
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
