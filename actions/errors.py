"""Typed action failures, and the one place where HTTP outcomes are classified.

Every failure is classified once, here: an action raises one of these, and the runner maps it to
the contract's error code (and decides whether to retry) without looking at the cause again.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import ValidationError

from schemas import ErrorCode


class ActionError(Exception):
    """A failure with a contract error code. The message is safe to publish (no secrets)."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidParams(ActionError):
    code = ErrorCode.INVALID_PARAMS


class MissingCredentials(ActionError):
    code = ErrorCode.MISSING_CREDENTIALS


class UpstreamError(ActionError):
    """The third party refused the call; repeating it will not help."""

    code = ErrorCode.UPSTREAM_ERROR


class ForbiddenDestination(ActionError):
    code = ErrorCode.FORBIDDEN_DESTINATION


class DeadlineExceeded(ActionError):
    code = ErrorCode.DEADLINE_EXCEEDED


class CredentialRejected(ActionError):
    """The third party rejected the token (401, Slack `invalid_auth`): it may have been rotated.

    The runner evicts the cached credential and tries once more with a fresh one; a second
    rejection becomes `upstream_error`.
    """

    code = ErrorCode.UPSTREAM_ERROR

    def __init__(
        self, service: str, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.service = service


class RetryableError(ActionError):
    """A transient failure: the runner retries with backoff, within budget and deadline."""

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class UpstreamUnavailable(RetryableError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE


class RateLimited(RetryableError):
    code = ErrorCode.RATE_LIMITED


class VaultUnavailable(RetryableError):
    code = ErrorCode.VAULT_UNAVAILABLE


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` is either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def error_for_status(
    service: str,
    response: httpx.Response,
    details: dict[str, Any] | None = None,
    *,
    provider_message: str | None = None,
) -> ActionError | None:
    """Classify a non-2xx answer; None for 2xx. `details` adds provider-specific fields."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    info = {"status_code": status, **(details or {})}
    said = f": {provider_message}" if provider_message else ""
    if status == 429:
        return RateLimited(
            f"{service} answered 429 Too Many Requests{said}",
            details=info,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )
    if status == 408 or status >= 500:
        return UpstreamUnavailable(
            f"{service} answered {status}{said}",
            details=info,
            retry_after_s=parse_retry_after(response.headers.get("retry-after")),
        )
    return UpstreamError(f"{service} answered {status}{said}", details=info)


def error_for_exception(service: str, exc: Exception) -> ActionError:
    """Transport failures: timeouts and connection errors are transient, the rest are bugs."""
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamUnavailable(f"{service} timed out ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError):
        return UpstreamUnavailable(f"{service} connection failed ({type(exc).__name__})")
    return ActionError(f"unexpected {type(exc).__name__} calling {service}")


class NotAttempted(ActionError):
    """The engine itself held the call back (an open circuit, no rate-limit slot in time): the
    upstream was not called. Final for this request; the code tells the caller it may retry."""


class CircuitOpen(NotAttempted):
    code = ErrorCode.UPSTREAM_UNAVAILABLE


class RateLimitExhausted(NotAttempted):
    code = ErrorCode.RATE_LIMITED


class StateUnavailable(Exception):
    """The fleet's shared state (Redis/Valkey) did not answer in time. Not an action error:
    whoever asked falls back to this process's own state and the request goes on."""


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """'params.channel: Field required; ...' — names the fields, never echoes their values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        location = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        parts.append(f"{location}: {error['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)
