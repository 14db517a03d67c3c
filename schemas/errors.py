"""The contract's error codes, and which of them a caller may retry."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNKNOWN_ACTION = "unknown_action"
    INVALID_PARAMS = "invalid_params"
    MISSING_CREDENTIALS = "missing_credentials"
    VAULT_UNAVAILABLE = "vault_unavailable"
    UPSTREAM_ERROR = "upstream_error"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    RATE_LIMITED = "rate_limited"
    FORBIDDEN_DESTINATION = "forbidden_destination"
    # The call reached the third party but its answer never came, and repeating it could
    # repeat the effect: not retried (`details.sent` is true).
    OUTCOME_UNKNOWN = "outcome_unknown"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    INTERNAL_ERROR = "internal_error"

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE

    @property
    def dead_letters(self) -> bool:
        """Records the engine cannot understand also go, unchanged, to the dead-letter topic."""
        return self in _DEAD_LETTERED


_RETRYABLE = frozenset(
    {ErrorCode.VAULT_UNAVAILABLE, ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.RATE_LIMITED}
)
_DEAD_LETTERED = frozenset(
    {ErrorCode.INVALID_JSON, ErrorCode.INVALID_REQUEST, ErrorCode.PAYLOAD_TOO_LARGE}
)
