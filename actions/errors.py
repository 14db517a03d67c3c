"""Typed action failures, and the one place where HTTP outcomes are classified.

Every failure is classified once, here: an action raises one of these, and the runner maps it to
the contract's error code (and decides whether to retry) without looking at the cause again.

Retries never repeat an effect on their own (CONTRACT.md): a failure is retried when the request
was not sent, when the provider answered that it did nothing (408, 429, and the codes a provider
documents as "not applied", which the action names), or when the call is idempotent. A
non-idempotent call that was sent and got no usable answer ends as `OutcomeUnknown`
(`details.sent: true`) and is never sent twice by us.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from actions.http.errors import BadResponse, HttpError, HttpTimeout, InvalidRequest
from actions.http.response import HttpResponse
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


class OutcomeUnknown(ActionError):
    """The call reached the third party and no answer says whether it took effect: final, so
    the effect happened at most once. `details.sent` is always true."""

    code = ErrorCode.OUTCOME_UNKNOWN

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={**(details or {}), "sent": True})


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
    """A transient failure: the runner retries with backoff, within budget and deadline.

    `wait_limit_s`, when set, is the provider's documented window (a quota that refills each
    minute, a `Retry-After` the provider means): the runner then honours `retry_after_s` and
    keeps retrying until that many seconds from the first attempt, instead of its own
    Retry-After clamp and budget (longer or shorter). The request's deadline always bounds it.

    `pause`: the rate-limit keys whose quota the provider said is spent (a 429): the runner
    pauses them for `retry_after_s`, so other requests of those keys wait instead of spending
    quota on 429s too.
    """

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
        wait_limit_s: float | None = None,
        # `actions.ratelimit.RateKey`s (not imported: the limiter imports these errors).
        pause: Sequence[Any] = (),
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s
        self.wait_limit_s = wait_limit_s
        self.pause = pause


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


# RFC 9110: 408 (the server did not get the whole request) and 429 (refused for rate) say the
# request was not acted on, so even a POST may be sent again. Not 503: providers answer it after
# the work was done (Google: UNAVAILABLE is "not always safe to retry non-idempotent operations",
# google/rpc/code.proto; Notion: 503 when a request "takes longer than 60 seconds"). A provider
# that documents another status as not applied names it (`not_applied`).
NOT_APPLIED_STATUSES = frozenset({408, 429})


def error_for_status(
    service: str,
    response: HttpResponse,
    details: dict[str, Any] | None = None,
    *,
    idempotent: bool,
    provider_message: str | None = None,
    not_applied: Collection[int] = (),
) -> ActionError | None:
    """Classify a non-2xx answer; None for 2xx. `details` adds provider-specific fields.

    `idempotent`: whether sending the call again cannot repeat its effect (RFC 9110 methods,
    an idempotency key the provider honours). `not_applied`: further statuses the provider
    documents as "did nothing, ask again" (Notion's 529). Any other 5xx does not say whether
    the call took effect: retried only when idempotent, else `OutcomeUnknown`.
    """
    status = response.status
    if 200 <= status < 300:
        return None
    info = {"status_code": status, **(details or {})}
    said = f": {provider_message}" if provider_message else ""
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 429:
        return RateLimited(
            f"{service} answered 429 Too Many Requests{said}",
            details=info,
            retry_after_s=retry_after,
        )
    if status in NOT_APPLIED_STATUSES or status in not_applied or (status >= 500 and idempotent):
        return UpstreamUnavailable(
            f"{service} answered {status}{said}", details=info, retry_after_s=retry_after
        )
    if status >= 500:
        return OutcomeUnknown(
            f"{service} answered {status}{said}; it may have acted on the call, which is "
            "therefore not repeated",
            details=info,
        )
    return UpstreamError(f"{service} answered {status}{said}", details=info)


def request_was_sent(exc: Exception) -> bool:
    """Whether a transport failure may have come after the request started to go out (the
    HTTP client knows: `HttpError.sent`); anything else is taken as sent."""
    return exc.sent if isinstance(exc, HttpError) else True


def error_for_exception(service: str, exc: Exception, *, idempotent: bool) -> ActionError:
    """Transport failures (`actions.http` errors): a request the client would not send is the
    request's fault (`invalid_params`, never retried, never counted against the upstream); an
    answer that cannot be read is the upstream's refusal; a timeout or a lost connection is
    retried when the request was not sent or the call is idempotent, and is otherwise an
    unknown outcome, not repeated. Anything else is a bug."""
    if isinstance(exc, InvalidRequest):
        return InvalidParams(f"the request to {service} cannot be sent: {exc.message}")
    if isinstance(exc, BadResponse):
        return UpstreamError(f"{service}: {exc.message}")
    if not isinstance(exc, HttpError):
        return ActionError(f"unexpected {type(exc).__name__} calling {service}")
    what = "timed out" if isinstance(exc, HttpTimeout) else "connection failed"
    if exc.sent and not idempotent:
        return OutcomeUnknown(
            f"{service}: no answer after the request was sent ({what}: {exc.message}); it may "
            "have taken effect, so it is not repeated"
        )
    return UpstreamUnavailable(f"{service} {what} ({exc.message})", details={"sent": exc.sent})


def attempt_timed_out(timeout_s: float, unsafe_call_sent: bool) -> ActionError:
    """EXECUTION_ACTION_TIMEOUT_S passed. Cut off while a non-idempotent call was on the wire,
    the call may have been applied: not repeated. Otherwise it is retried like any timeout."""
    if unsafe_call_sent:
        return OutcomeUnknown(
            f"no answer within {timeout_s:g} s (EXECUTION_ACTION_TIMEOUT_S) after the call was "
            "sent; it may have taken effect, so it is not repeated"
        )
    return UpstreamUnavailable(f"the action did not finish within {timeout_s:g} s")


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
