"""The contract in code: pydantic models of what the engine reads and writes on Kafka."""

from schemas.envelope import (
    ErrorInfo,
    FallbackResult,
    ResultEnvelope,
    error_envelope,
    format_timestamp,
    success_envelope,
)
from schemas.errors import ErrorCode
from schemas.log_event import EVENT_NAMES, OUTCOME_EVENTS, LogEvent, LogLevel
from schemas.request import PROJECT_PATTERN, REQUEST_ID_PATTERN, ExecutionRequest, Fallback

__all__ = [
    "EVENT_NAMES",
    "OUTCOME_EVENTS",
    "PROJECT_PATTERN",
    "REQUEST_ID_PATTERN",
    "ErrorCode",
    "ErrorInfo",
    "ExecutionRequest",
    "Fallback",
    "FallbackResult",
    "LogEvent",
    "LogLevel",
    "ResultEnvelope",
    "error_envelope",
    "format_timestamp",
    "success_envelope",
]
