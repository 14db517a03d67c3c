"""The settings the action runtime reads: attempt timeout, retries, circuit breakers."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from actions.runtime.circuit import CircuitBreakers, CircuitStore
from actions.runtime.retry import RetryPolicy
from actions.settings import setting


class RunnerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    action_timeout_s: float = setting(
        "EXECUTION_ACTION_TIMEOUT_S", 30.0, "Time limit of one action attempt.", gt=0
    )
    retry_max_attempts: int = setting(
        "EXECUTION_RETRY_MAX_ATTEMPTS", 5, "Attempts of a retryable failure, first included.", ge=1
    )
    retry_base_delay_s: float = setting(
        "EXECUTION_RETRY_BASE_DELAY_S", 0.2, "First backoff ceiling (full jitter).", ge=0
    )
    retry_max_delay_s: float = setting(
        "EXECUTION_RETRY_MAX_DELAY_S", 5.0, "Backoff ceiling cap.", ge=0
    )
    retry_budget_s: float = setting(
        "EXECUTION_RETRY_BUDGET_S", 30.0, "No retry starts later than this after the first.", ge=0
    )
    retry_after_max_s: float = setting(
        "EXECUTION_RETRY_AFTER_MAX_S", 30.0, "Longest `Retry-After` honoured.", ge=0
    )
    circuit_failure_threshold: int = setting(
        "EXECUTION_CIRCUIT_FAILURE_THRESHOLD",
        5,
        "Consecutive upstream failures (5xx, timeouts, connection errors) that open an "
        "upstream's circuit; 0 turns circuit breakers off.",
        ge=0,
    )
    circuit_open_s: float = setting(
        "EXECUTION_CIRCUIT_OPEN_S",
        30.0,
        "How long an open circuit stays open before one probe call is let through.",
        gt=0,
    )
    circuit_when_open: Literal["fail_fast", "wait"] = setting(
        "EXECUTION_CIRCUIT_WHEN_OPEN",
        "fail_fast",
        "`fail_fast`: calls to an open circuit end `upstream_unavailable` at once; `wait`: they "
        "wait (within retry budget and deadline) for it to close.",
    )

    def circuit_breakers(self, store: CircuitStore | None = None) -> CircuitBreakers:
        return CircuitBreakers(
            self.circuit_failure_threshold,
            self.circuit_open_s,
            self.circuit_when_open,
            store=store,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            base_delay_s=self.retry_base_delay_s,
            max_delay_s=self.retry_max_delay_s,
            budget_s=self.retry_budget_s,
            max_retry_after_s=self.retry_after_max_s,
        )
