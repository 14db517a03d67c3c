"""actions/errors.py: classifying HTTP outcomes once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from multidict import CIMultiDict

from actions.errors import (
    ActionError,
    CredentialRejected,
    InvalidParams,
    OutcomeUnknown,
    RateLimited,
    RetryableError,
    UpstreamError,
    UpstreamUnavailable,
    VaultUnavailable,
    error_for_exception,
    error_for_status,
    parse_retry_after,
    request_was_sent,
)
from actions.http import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    HttpError,
    HttpResponse,
    HttpTimeout,
    InvalidRequest,
)
from schemas import ErrorCode

NOW = datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


def response(status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, CIMultiDict(headers or {}), b"")


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_not_an_error(status: int) -> None:
    assert error_for_status("svc", response(status), idempotent=True) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_is_upstream_error(status: int) -> None:
    error = error_for_status("Slack", response(status), {"provider_code": "x"}, idempotent=False)
    assert type(error) is UpstreamError
    assert error.code is ErrorCode.UPSTREAM_ERROR
    assert not error.code.retryable
    assert error.details == {"status_code": status, "provider_code": "x"}
    assert str(status) in error.message and "Slack" in error.message


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_408_and_5xx_of_an_idempotent_call_are_upstream_unavailable(status: int) -> None:
    error = error_for_status("svc", response(status), idempotent=True)
    assert isinstance(error, UpstreamUnavailable)
    assert error.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert error.details == {"status_code": status}
    assert error.retry_after_s is None


def test_503_with_retry_after_carries_it() -> None:
    error = error_for_status("svc", response(503, {"Retry-After": "7"}), idempotent=True)
    assert isinstance(error, UpstreamUnavailable)
    assert error.retry_after_s == 7.0


def test_429_without_retry_after() -> None:
    error = error_for_status("svc", response(429), idempotent=False)
    assert isinstance(error, RateLimited)
    assert error.code is ErrorCode.RATE_LIMITED
    assert error.code.retryable
    assert error.retry_after_s is None
    assert error.details == {"status_code": 429}


def test_429_with_retry_after_seconds() -> None:
    error = error_for_status("svc", response(429, {"Retry-After": "3"}), idempotent=False)
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 3.0


def test_429_with_retry_after_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    error = error_for_status(
        "svc", response(429, {"Retry-After": format_datetime(later, True)}), idempotent=False
    )
    assert isinstance(error, RateLimited)
    assert error.retry_after_s is not None
    assert 110 <= error.retry_after_s <= 120


def test_provider_message_is_appended() -> None:
    error = error_for_status(
        "Google Sheets", response(403), idempotent=False, provider_message="no access"
    )
    assert error is not None
    assert error.message == "Google Sheets answered 403: no access"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("5", 5.0),
        (" 12 ", 12.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("", None),
        ("Thu, 26 Nov 2026 09:00:30 GMT", 30.0),
        ("Thu, 26 Nov 2026 08:59:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_http_date_uses_the_clock() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    seconds = parse_retry_after(later)
    assert seconds is not None and 50 <= seconds <= 60


def test_408_says_nothing_was_done_so_even_a_post_is_retried() -> None:
    error = error_for_status("svc", response(408), idempotent=False)
    assert type(error) is UpstreamUnavailable
    assert error.details == {"status_code": 408}


def test_a_status_the_provider_documents_as_not_applied_is_retried() -> None:
    error = error_for_status("svc", response(529), idempotent=False, not_applied=(529,))
    assert type(error) is UpstreamUnavailable


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_other_5xx_of_a_non_idempotent_call_is_outcome_unknown(status: int) -> None:
    error = error_for_status("Slack", response(status), {"provider_code": "x"}, idempotent=False)
    assert type(error) is OutcomeUnknown
    assert error.code is ErrorCode.OUTCOME_UNKNOWN and not error.code.retryable
    assert error.details == {"status_code": status, "provider_code": "x", "sent": True}
    assert "not repeated" in error.message


NOT_SENT = [
    HttpTimeout("connecting to a:443 timed out", sent=False),
    ConnectFailed("cannot connect to a:443 (Connection refused)"),
]
SENT = [
    HttpTimeout("a:443 did not answer in time", sent=True),
    HttpTimeout("no complete answer within 1 s", sent=True),
    ConnectionLost("the connection to a:443 broke", sent=True),
    ConnectionLost("the answer of a:443 was cut short"),
]


@pytest.mark.parametrize("exc", NOT_SENT)
def test_failures_before_sending_are_retried_even_for_a_post(exc: HttpError) -> None:
    assert not request_was_sent(exc)
    error = error_for_exception("Slack", exc, idempotent=False)
    assert type(error) is UpstreamUnavailable
    assert error.details == {"sent": False}
    assert exc.message in error.message


@pytest.mark.parametrize("exc", SENT)
def test_failures_after_sending_a_post_are_outcome_unknown(exc: HttpError) -> None:
    assert request_was_sent(exc)
    error = error_for_exception("Slack", exc, idempotent=False)
    assert type(error) is OutcomeUnknown
    assert error.details == {"sent": True}
    assert exc.message in error.message and "not repeated" in error.message


@pytest.mark.parametrize("exc", SENT)
def test_failures_after_sending_an_idempotent_call_are_retried(exc: HttpError) -> None:
    error = error_for_exception("Slack", exc, idempotent=True)
    assert type(error) is UpstreamUnavailable
    assert error.details == {"sent": True}
    expected = "timed out" if isinstance(exc, HttpTimeout) else "connection failed"
    assert expected in error.message and exc.message in error.message


def test_a_request_the_client_will_not_send_is_invalid_params() -> None:
    error = error_for_exception(
        "Slack", InvalidRequest("the value of header 'X' has a line break"), idempotent=False
    )
    assert isinstance(error, InvalidParams)
    assert error.code is ErrorCode.INVALID_PARAMS and "line break" in error.message


def test_an_answer_that_cannot_be_read_is_upstream_error() -> None:
    error = error_for_exception(
        "destination", BadResponse("2 content-encoding layers"), idempotent=False
    )
    assert type(error) is UpstreamError
    assert not isinstance(error, RetryableError)


def test_other_exceptions_are_internal_and_do_not_echo_the_message() -> None:
    error = error_for_exception("Slack", ValueError("secret-abc"), idempotent=True)
    assert type(error) is ActionError
    assert error.code is ErrorCode.INTERNAL_ERROR
    assert "secret-abc" not in error.message


def test_error_codes_of_the_classes() -> None:
    assert CredentialRejected("slack", "m").code is ErrorCode.UPSTREAM_ERROR
    assert CredentialRejected("slack", "m").service == "slack"
    assert VaultUnavailable("m").code is ErrorCode.VAULT_UNAVAILABLE
    assert issubclass(VaultUnavailable, RetryableError)
    assert issubclass(RateLimited, RetryableError)
    assert not issubclass(UpstreamError, RetryableError)
    assert not issubclass(OutcomeUnknown, RetryableError)
    assert OutcomeUnknown("m").details == {"sent": True}


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_retry_after_that_is_not_a_finite_number_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None
