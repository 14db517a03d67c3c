"""Circuit breakers, one per upstream (a third party's host): stop calling a service that is down.

closed --(N consecutive failures)--> open --(T seconds)--> half_open --(probe ok)--> closed
                                      ^                          |
                                      +-----(probe failed)-------+

Only transient upstream failures count (5xx, connection errors, timeouts: `UpstreamUnavailable`).
A refusal (4xx), a rate limit or a Vault problem says nothing about the upstream's health. In
half_open one call at a time goes through as a probe; the others are treated as if open.
Transitions happen when a call observes them and are logged as `circuit.opened`,
`circuit.half_open` and `circuit.closed`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from structlog.typing import FilteringBoundLogger

from actions.errors import CircuitOpen

CircuitState = Literal["closed", "open", "half_open"]
WhenOpen = Literal["fail_fast", "wait"]


@dataclass
class _Circuit:
    state: CircuitState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    # Set and replaced on every transition, so waiters wake up when something changed.
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class CircuitBreakers:
    _MAX_TRACKED = 10_000

    def __init__(
        self,
        failure_threshold: int = 5,
        open_s: float = 30.0,
        when_open: WhenOpen = "fail_fast",
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A threshold of 0 turns the breakers off.
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.when_open = when_open
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def states(self) -> dict[str, str]:
        """Upstream -> `closed` / `open` / `half_open` (for metrics and health)."""
        return {name: self.state(name) for name in sorted(self._circuits)}

    def state(self, upstream: str) -> CircuitState:
        circuit = self._circuits.get(upstream)
        if circuit is None:
            return "closed"
        if circuit.state == "open" and self._clock() >= circuit.opened_at + self.open_s:
            return "half_open"
        return circuit.state

    def may_wait(self, upstream: str) -> bool:
        """Whether `admit` could wait now (wait mode and a circuit that is not closed)."""
        return self.when_open == "wait" and self.state(upstream) != "closed"

    async def admit(
        self, upstream: str, log: FilteringBoundLogger, max_wait_s: float | None = None
    ) -> bool:
        """Before a call: True if it may go ahead (and is the probe when half_open: the caller
        must then `record` its outcome). Raises `CircuitOpen` when it may not; in `wait` mode
        waits first, up to `max_wait_s`, for the circuit to let it through."""
        if self.failure_threshold <= 0:
            return False
        deadline = None if max_wait_s is None else self._clock() + max_wait_s
        while True:
            circuit = self._current(upstream, log)
            if circuit.state == "closed":
                return False
            if circuit.state == "half_open" and not circuit.probing:
                circuit.probing = True
                return True
            reopens_in = circuit.opened_at + self.open_s - self._clock()
            remaining = None if deadline is None else deadline - self._clock()
            if self.when_open == "fail_fast" or (remaining is not None and remaining <= 0):
                raise CircuitOpen(
                    f"the circuit for {upstream} is {circuit.state.replace('_', '-')}: "
                    "the upstream failed repeatedly, the call was not made",
                    details={"circuit": circuit.state, "upstream": upstream},
                )
            # Wait for the open period to end, or for the probe to finish.
            timeout = reopens_in if circuit.state == "open" else None
            if remaining is not None:
                timeout = remaining if timeout is None else min(timeout, remaining)
            try:
                async with asyncio.timeout(max(timeout, 0.0) if timeout is not None else None):
                    await circuit.changed.wait()
            except TimeoutError:
                pass

    def record(
        self, upstream: str, *, probe: bool, failed: bool | None, log: FilteringBoundLogger
    ) -> None:
        """After a call: `failed` True for a transient upstream failure, False for an answer,
        None when the call ended without telling (cancelled, or a failure elsewhere)."""
        if self.failure_threshold <= 0:
            return
        circuit = self._circuits.setdefault(upstream, _Circuit())
        if probe:
            circuit.probing = False
        if failed is None:
            if probe:
                self._notify(circuit)  # let another caller probe
            return
        if not failed:
            circuit.failures = 0
            if circuit.state != "closed":
                self._transition(upstream, circuit, "closed", log)
            if len(self._circuits) > self._MAX_TRACKED:
                self._forget_healthy()
            return
        circuit.failures += 1
        if circuit.state == "half_open" or (
            circuit.state == "closed" and circuit.failures >= self.failure_threshold
        ):
            circuit.opened_at = self._clock()
            self._transition(upstream, circuit, "open", log, failures=circuit.failures)

    def _forget_healthy(self) -> None:
        """Upstreams of `http_request` are whatever hosts requests name: keep memory bounded by
        forgetting closed circuits without failures (they start closed again anyway)."""
        for name, circuit in list(self._circuits.items()):
            if circuit.state == "closed" and circuit.failures == 0 and not circuit.probing:
                del self._circuits[name]

    def _current(self, upstream: str, log: FilteringBoundLogger) -> _Circuit:
        circuit = self._circuits.setdefault(upstream, _Circuit())
        if circuit.state == "open" and self._clock() >= circuit.opened_at + self.open_s:
            self._transition(upstream, circuit, "half_open", log)
        return circuit

    def _transition(
        self,
        upstream: str,
        circuit: _Circuit,
        state: CircuitState,
        log: FilteringBoundLogger,
        **fields: object,
    ) -> None:
        circuit.state = state
        if state == "open":
            log.warning("circuit.opened", upstream=upstream, open_s=self.open_s, **fields)
        else:
            log.info(f"circuit.{state}", upstream=upstream)
        self._notify(circuit)

    @staticmethod
    def _notify(circuit: _Circuit) -> None:
        circuit.changed.set()
        circuit.changed = asyncio.Event()
