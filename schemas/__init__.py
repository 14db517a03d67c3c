"""The contract in code: pydantic models of what the engine reads and writes on Kafka."""

from schemas.envelope import (
    ErrorInfo,
    ResultEnvelope,
    error_envelope,
    format_timestamp,
    success_envelope,
)
from schemas.errors import ErrorCode
from schemas.log_event import EVENT_NAMES, LogEvent, LogLevel
from schemas.request import PROJECT_PATTERN, ExecutionRequest

__all__ = [
    "EVENT_NAMES",
    "PROJECT_PATTERN",
    "ErrorCode",
    "ErrorInfo",
    "ExecutionRequest",
    "LogEvent",
    "LogLevel",
    "ResultEnvelope",
    "error_envelope",
    "format_timestamp",
    "success_envelope",
]
