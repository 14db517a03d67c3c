"""schemas/errors.py: the error codes and which are retryable / dead-lettered."""

from __future__ import annotations

from schemas import ErrorCode

CONTRACT_CODES = {
    "invalid_json",
    "invalid_request",
    "payload_too_large",
    "unknown_action",
    "invalid_params",
    "missing_credentials",
    "vault_unavailable",
    "upstream_error",
    "upstream_unavailable",
    "rate_limited",
    "forbidden_destination",
    "outcome_unknown",
    "deadline_exceeded",
    "internal_error",
}


def test_codes_are_exactly_the_contract_table() -> None:
    assert {code.value for code in ErrorCode} == CONTRACT_CODES


def test_retryable_set_matches_the_contract() -> None:
    retryable = {code.value for code in ErrorCode if code.retryable}
    assert retryable == {"vault_unavailable", "upstream_unavailable", "rate_limited"}


def test_dead_letter_set_matches_the_contract() -> None:
    dead_lettered = {code.value for code in ErrorCode if code.dead_letters}
    assert dead_lettered == {"invalid_json", "invalid_request", "payload_too_large"}


def test_codes_are_strings() -> None:
    assert ErrorCode("rate_limited") is ErrorCode.RATE_LIMITED
    assert f"{ErrorCode.INVALID_JSON}" == "invalid_json"
