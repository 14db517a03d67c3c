"""Circuit breakers, one per upstream (a third party's host): stop calling a service that is down.

closed --(N consecutive failures)--> open --(T seconds)--> half_open --(probe ok)--> closed
                                      ^                          |
                                      +-----(probe failed)-------+

Only transient upstream failures count (5xx, connection errors, timeouts: `UpstreamUnavailable`).
A refusal (4xx), a rate limit or a Vault problem says nothing about the upstream's health. In
half_open one call at a time goes through as a probe; the others are treated as if open.
Transitions happen when a call observes them and are logged as `circuit.opened`,
`circuit.half_open` and `circuit.closed`.

With a `CircuitStore` (the fleet's Redis/Valkey state) the circuit is the fleet's: every
engine's failures count toward it, one probe goes through for all of them. This process's own
circuits are kept beside it and take over whenever the store cannot answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import structlog
from structlog.typing import FilteringBoundLogger

from actions.errors import CircuitOpen, StateUnavailable

CircuitState = Literal["closed", "open", "half_open"]
WhenOpen = Literal["fail_fast", "wait"]
# While another engine's probe is out, how often a waiting caller asks the store again.
_SHARED_POLL_S = 0.25
# A fleet circuit seen closed without failures is taken as such this long without asking again
# (one store round trip saved per call to a healthy upstream; the fleet learns within it).
_SHARED_FRESH_S = 0.1
# This process's own circuits count silently while the fleet's store decides (one set of events).
_SILENT: FilteringBoundLogger = structlog.wrap_logger(
    structlog.ReturnLogger(),
    processors=[],
    wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
)


@dataclass(frozen=True)
class SharedCircuit:
    """What the fleet's store says of one upstream: its state, when an open one lets a probe
    through (`reopens_in_s`), whether this caller is that probe, and whether this caller's
    outcome just changed the state (`changed`, for the log event)."""

    state: CircuitState
    reopens_in_s: float = 0.0
    probe: bool = False
    changed: bool = False
    failures: int = 0


class CircuitStore(Protocol):
    """Circuits shared by a fleet; every method raises `StateUnavailable` when the store
    cannot answer in time."""

    async def admit(self, upstream: str, open_s: float) -> SharedCircuit:
        """Before a call: the state; when half-open, the first caller of the fleet gets
        `probe=True`, the others see `half_open` without it."""
        ...

    async def record(
        self, upstream: str, *, probe: bool, failed: bool | None, threshold: int, open_s: float
    ) -> SharedCircuit:
        """After a call: count a failure (opening at `threshold`, or at once after a failed
        probe), or close on an answer; `failed=None` only gives a probe back."""
        ...


@dataclass
class _Circuit:
    state: CircuitState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False
    # With a fleet store: until when its circuit counts as closed without failures.
    shared_clean_until: float = 0.0
    # Set and replaced on every transition, so waiters wake up when something changed.
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class CircuitBreakers:
    def __init__(
        self,
        failure_threshold: int = 5,
        open_s: float = 30.0,
        when_open: WhenOpen = "fail_fast",
        *,
        clock: Callable[[], float] = time.monotonic,
        store: CircuitStore | None = None,
        max_tracked: int = 10_000,
    ) -> None:
        # A threshold of 0 turns the breakers off.
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self.when_open = when_open
        self._clock = clock
        self._store = store
        # Upstreams of `http_request` are whatever hosts requests name: an LRU of at most
        # `max_tracked` circuits (healthy ones dropped first, then the least recently used,
        # which starts closed again if it comes back).
        self._max_tracked = max_tracked
        self._circuits: OrderedDict[str, _Circuit] = OrderedDict()

    def __len__(self) -> int:
        return len(self._circuits)

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
        waits first, up to `max_wait_s`, for the circuit to let it through. A closed circuit
        (nearly always) answers without a store round trip: this process's own, or a fleet
        circuit seen closed without failures within the last `_SHARED_FRESH_S`."""
        if self.failure_threshold <= 0:
            return False
        known = self._circuits.get(upstream)
        if (
            known is not None
            and known.state == "closed"
            and (self._store is None or known.shared_clean_until > self._clock())
        ):
            return False
        deadline = None if max_wait_s is None else self._clock() + max_wait_s
        if self._store is not None:
            shared = await self._admit_shared(upstream, log, deadline)
            if shared is not None:
                return shared
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

    async def _admit_shared(
        self, upstream: str, log: FilteringBoundLogger, deadline: float | None
    ) -> bool | None:
        """`admit` against the fleet's circuit; None when the store cannot answer (then this
        process's own circuit decides)."""
        known = self._circuits.get(upstream)
        fresh = known is not None and known.state == "closed" and known.shared_clean_until
        if fresh and known.shared_clean_until > self._clock():  # type: ignore[union-attr]
            return False
        while True:
            try:
                shared = await self._store.admit(upstream, self.open_s)  # type: ignore[union-attr]
            except StateUnavailable:
                return None
            if shared.state == "closed":
                if shared.failures == 0:
                    self._track(upstream).shared_clean_until = self._clock() + _SHARED_FRESH_S
                return False
            if shared.probe:
                log.info("circuit.half_open", upstream=upstream)
                return True
            self._mirror_open(upstream, shared)
            remaining = None if deadline is None else deadline - self._clock()
            if self.when_open == "fail_fast" or (remaining is not None and remaining <= 0):
                raise CircuitOpen(
                    f"the circuit for {upstream} is {shared.state.replace('_', '-')}: "
                    "the upstream failed repeatedly, the call was not made",
                    details={"circuit": shared.state, "upstream": upstream},
                )
            pause = shared.reopens_in_s if shared.state == "open" else _SHARED_POLL_S
            if remaining is not None:
                pause = min(pause, remaining)
            await asyncio.sleep(max(pause, 0.01))

    async def observe(
        self, upstream: str, *, probe: bool, failed: bool | None, log: FilteringBoundLogger
    ) -> None:
        """`record`, on the fleet's circuit when there is a store. This process's own circuit
        counts too (silently while the store answers), so it is warm if the store goes away.
        An answer from an upstream the fleet has no failures for needs no store round trip."""
        if self.failure_threshold <= 0:
            return
        store = self._store
        known = self._circuits.get(upstream)
        clean = known is not None and known.shared_clean_until > 0 and known.state == "closed"
        if store is None or (clean and failed is False and not probe):
            self.record(
                upstream, probe=probe, failed=failed, log=log if clean is False else _SILENT
            )
            return
        if known is not None and failed:
            known.shared_clean_until = 0.0
        try:
            shared = await store.record(
                upstream,
                probe=probe,
                failed=failed,
                threshold=self.failure_threshold,
                open_s=self.open_s,
            )
        except StateUnavailable:
            self.record(upstream, probe=probe, failed=failed, log=log)
            return
        self.record(upstream, probe=probe, failed=failed, log=_SILENT)
        if shared.changed and shared.state == "open":
            log.warning("circuit.opened", upstream=upstream, open_s=self.open_s, shared=True)
        elif shared.changed and shared.state == "closed":
            log.info("circuit.closed", upstream=upstream, shared=True)
        if shared.state == "open":
            self._mirror_open(upstream, shared)

    def _mirror_open(self, upstream: str, shared: SharedCircuit) -> None:
        """Metrics read this process's circuits: show the fleet's open ones there too."""
        circuit = self._track(upstream)
        if circuit.state != "open":
            circuit.state = "open"
            circuit.opened_at = self._clock() - max(self.open_s - shared.reopens_in_s, 0.0)

    def record(
        self, upstream: str, *, probe: bool, failed: bool | None, log: FilteringBoundLogger
    ) -> None:
        """After a call: `failed` True for a transient upstream failure, False for an answer,
        None when the call ended without telling (cancelled, or a failure elsewhere)."""
        if self.failure_threshold <= 0:
            return
        circuit = self._track(upstream)
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
            return
        circuit.failures += 1
        if circuit.state == "half_open" or (
            circuit.state == "closed" and circuit.failures >= self.failure_threshold
        ):
            circuit.opened_at = self._clock()
            self._transition(upstream, circuit, "open", log, failures=circuit.failures)

    def _track(self, upstream: str) -> _Circuit:
        """The upstream's circuit, most recently used now; at most `max_tracked` are kept."""
        circuit = self._circuits.get(upstream)
        if circuit is not None:
            self._circuits.move_to_end(upstream)
            return circuit
        circuit = self._circuits[upstream] = _Circuit()
        if len(self._circuits) > self._max_tracked:
            self._evict(keep=upstream)
        return circuit

    def _evict(self, keep: str) -> None:
        # A healthy circuit among the oldest goes first (it starts closed again anyway); else
        # the least recently used one, whatever its state. Looking at a few keeps this O(1).
        for _, (name, circuit) in zip(range(8), self._circuits.items(), strict=False):
            healthy = circuit.state == "closed" and circuit.failures == 0
            if healthy and not circuit.probing and name != keep:
                del self._circuits[name]
                return
        oldest = next(iter(self._circuits))
        if oldest != keep:
            del self._circuits[oldest]

    def _current(self, upstream: str, log: FilteringBoundLogger) -> _Circuit:
        circuit = self._track(upstream)
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
