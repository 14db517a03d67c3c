"""actions/runtime/retry.py: full jitter, cap, attempts, budget, deadline, Retry-After."""

from __future__ import annotations

import random

import pytest

from actions.runtime.retry import RetryPolicy


def policy(**overrides: float) -> RetryPolicy:
    options: dict[str, float] = {
        "max_attempts": 100,
        "base_delay_s": 0.2,
        "max_delay_s": 5.0,
        "budget_s": 1e9,
        "max_retry_after_s": 30.0,
    }
    options.update(overrides)
    return RetryPolicy(
        max_attempts=int(options["max_attempts"]),
        base_delay_s=options["base_delay_s"],
        max_delay_s=options["max_delay_s"],
        budget_s=options["budget_s"],
        max_retry_after_s=options["max_retry_after_s"],
        rng=random.Random(1234),
    )


def observed_ceiling(attempts_made: int, samples: int = 400) -> float:
    retry = policy()
    delays = [retry.next_delay(attempts_made, 0.0) for _ in range(samples)]
    assert all(d is not None for d in delays)
    return max(d for d in delays if d is not None)


@pytest.mark.parametrize(("attempts_made", "ceiling"), [(1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6)])
def test_full_jitter_ceiling_doubles(attempts_made: int, ceiling: float) -> None:
    top = observed_ceiling(attempts_made)
    assert top <= ceiling
    # 400 uniform draws come within 2% of the ceiling (probability of not: ~0.98**400).
    assert top >= ceiling * 0.97


@pytest.mark.parametrize("attempts_made", [7, 10, 30])
def test_full_jitter_ceiling_is_capped(attempts_made: int) -> None:
    top = observed_ceiling(attempts_made)
    assert 5.0 * 0.97 <= top <= 5.0


def test_jitter_is_spread_from_zero() -> None:
    retry = policy()
    delays = [retry.next_delay(3, 0.0) for _ in range(400)]
    values = [d for d in delays if d is not None]
    assert min(values) < 0.05
    assert len(set(values)) > 300


def test_seeded_rng_is_reproducible() -> None:
    first = [policy().next_delay(n, 0.0) for n in range(1, 6)]
    second = [policy().next_delay(n, 0.0) for n in range(1, 6)]
    assert first == second


def test_max_attempts() -> None:
    retry = policy(max_attempts=3)
    assert retry.next_delay(1, 0.0) is not None
    assert retry.next_delay(2, 0.0) is not None
    assert retry.next_delay(3, 0.0) is None
    assert retry.next_delay(4, 0.0) is None


def test_budget_stops_a_retry_that_would_start_after_it() -> None:
    retry = policy(budget_s=10.0, base_delay_s=1.0, max_delay_s=1.0)
    assert retry.next_delay(1, 8.0) is not None
    # Already past the budget: no delay fits, whatever the jitter or Retry-After.
    assert retry.next_delay(1, 10.5) is None
    assert retry.next_delay(1, 0.0, retry_after_s=10.5) is None
    assert retry.next_delay(1, 5.0, retry_after_s=5.0) == 5.0


def test_deadline_stops_a_retry_that_would_start_after_it() -> None:
    retry = policy()
    assert retry.next_delay(1, 0.0, retry_after_s=2.0, remaining_until_deadline_s=3.0) == 2.0
    assert retry.next_delay(1, 0.0, retry_after_s=2.0, remaining_until_deadline_s=2.0) is None
    assert retry.next_delay(1, 0.0, remaining_until_deadline_s=-1.0) is None
    assert retry.next_delay(1, 0.0, remaining_until_deadline_s=0.0) is None


def test_retry_after_is_honoured_instead_of_jitter() -> None:
    retry = policy()
    assert retry.next_delay(1, 0.0, retry_after_s=7.0) == 7.0
    assert retry.next_delay(1, 0.0, retry_after_s=0.0) == 0.0


def test_retry_after_is_clamped() -> None:
    retry = policy(max_retry_after_s=30.0)
    assert retry.next_delay(1, 0.0, retry_after_s=3600.0) == 30.0
    assert retry.next_delay(1, 0.0, retry_after_s=-5.0) == 0.0


def test_defaults_match_the_settings_defaults() -> None:
    retry = RetryPolicy()
    assert retry.max_attempts == 5
    assert retry.base_delay_s == 0.2
    assert retry.max_delay_s == 5.0
    assert retry.budget_s == 30.0
    assert retry.max_retry_after_s == 30.0
