"""Every call to the fleet's store goes through one `StateGuard`: bounded in time, and when the
store does not answer, the caller is told at once (`StateUnavailable`) and uses its own state.

After a failure the store is left alone for `retry_s`; then one call at a time tries it again
(the others keep using local state without waiting), and the first success brings it back.
Transitions are the `state.unavailable` and `state.recovered` log events and the
`execution_state_available` gauge; every call answered locally counts in
`execution_state_fallbacks_total`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from structlog.typing import FilteringBoundLogger

from actions.errors import StateUnavailable

T = TypeVar("T")


class StateGuard:
    def __init__(
        self,
        timeout_s: float,
        log: FilteringBoundLogger,
        *,
        retry_s: float = 1.0,
        errors: tuple[type[BaseException], ...] = (),
        on_available: Callable[[bool], None] = lambda _: None,
        on_fallback: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout_s = timeout_s
        self._log = log
        self._retry_s = retry_s
        # The client's own errors (valkey.exceptions.ValkeyError), besides sockets and timeouts.
        self._errors: tuple[type[BaseException], ...] = (*errors, OSError, TimeoutError)
        self._on_available = on_available
        self._on_fallback = on_fallback
        self._clock = clock
        self.available = True
        self._down_since = 0.0
        self._retry_at = 0.0
        self._trying = False

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` within the timeout, or `StateUnavailable` (at once while the store is
        known to be away)."""
        retrying = False
        if not self.available:
            if self._trying or self._clock() < self._retry_at:
                self._on_fallback()
                raise StateUnavailable("the fleet's store is unavailable")
            self._trying = retrying = True
        try:
            async with asyncio.timeout(self._timeout_s):
                result = await call()
        except self._errors as exc:
            self._failed(exc)
            raise StateUnavailable(
                f"the fleet's store did not answer ({type(exc).__name__})"
            ) from None
        finally:
            if retrying:
                self._trying = False
        if retrying:
            # Only the call that tried the store again says it is back: one that was already
            # in flight when it failed proves nothing.
            self._recovered()
        return result

    def _failed(self, exc: BaseException) -> None:
        self._on_fallback()
        now = self._clock()
        self._retry_at = now + self._retry_s
        if self.available:
            self.available = False
            self._down_since = now
            self._on_available(False)
            # The error's type only: a message could carry the URL (and its password).
            self._log.warning("state.unavailable", error=type(exc).__name__, retry_s=self._retry_s)

    def _recovered(self) -> None:
        self.available = True
        self._on_available(True)
        self._log.info("state.recovered", unavailable_s=round(self._clock() - self._down_since, 3))
