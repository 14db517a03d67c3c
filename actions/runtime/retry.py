"""Exponential backoff with full jitter, a cap, a total budget, and the request's deadline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    # Total time from the first attempt's start after which no further attempt starts.
    budget_s: float = 30.0
    # A server's Retry-After is honoured, but never beyond this: one sleepy upstream must not
    # hold a key's lane for minutes.
    max_retry_after_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def next_delay(
        self,
        attempts_made: int,
        elapsed_s: float,
        retry_after_s: float | None = None,
        remaining_until_deadline_s: float | None = None,
        *,
        wait_limit_s: float | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when retrying must stop.

        `wait_limit_s` is a provider's documented window (see `RetryableError`): it replaces
        the Retry-After clamp and the budget for this wait; the deadline still applies.
        """
        if attempts_made >= self.max_attempts:
            return None
        clamp = self.max_retry_after_s if wait_limit_s is None else wait_limit_s
        budget = self.budget_s if wait_limit_s is None else wait_limit_s
        if retry_after_s is not None:
            delay = min(max(retry_after_s, 0.0), clamp)
        else:
            ceiling = min(self.max_delay_s, self.base_delay_s * (2 ** (attempts_made - 1)))
            delay = self.rng.uniform(0.0, ceiling)
        if elapsed_s + delay > budget:
            return None
        if remaining_until_deadline_s is not None and delay >= remaining_until_deadline_s:
            return None
        return delay
