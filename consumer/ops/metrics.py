"""Prometheus metrics of one engine, in its own registry (so a test process can run several).

The engine calls a handful of hooks (`consumed`, `envelope`, `committed`) and hands over the
objects whose state is read at scrape time (`watch_consumer`, `watch_credentials`, gauges set
with `set_function`). Every name of ours starts with `execution_`; beside them, the process
collector's standard `process_*` series (CPU, memory, open files, start time).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from consumer.ops.build import build_info
from schemas import ErrorCode, ResultEnvelope

# The `*_created` timestamp series double the output and no dashboard of ours reads them.
# (A process-wide switch of prometheus-client; it only affects exposition.)
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds. Actions span sub-millisecond log lines to 30 s timeouts with retries.
_ACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# An action name from a request is caller-chosen text: only registered names become label
# values, so a flood of bogus names cannot blow up the series count.
UNKNOWN_ACTION = "_unknown"
NO_ERROR = "none"
# Every state is always exposed (0 when no circuit is in it), so `state="open"` has a series to
# alert on before the first circuit ever opens.
CIRCUIT_STATES = ("closed", "open", "half_open")


class CacheCounters(Protocol):
    """What the credential cache exposes (consumer.credentials.cache.CredentialCache)."""

    hits: int
    misses: int


class EngineMetrics:
    def __init__(self, actions: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._actions = frozenset(actions)
        registry = self.registry
        self.records_consumed = Counter(
            "execution_records_consumed",
            "Records fetched from the requests topic.",
            ["topic", "partition"],
            registry=registry,
        )
        # Counted by the engine itself, one dict update per envelope (prometheus-client's
        # children cost ~3 us an envelope with their locks), and read at scrape time.
        self._envelopes = _EnvelopeTally()
        self.in_flight = Gauge("execution_in_flight", "Actions running now.", registry=registry)
        self.buffered = Gauge(
            "execution_buffered_records",
            "Records held (queued or running); fetching pauses at EXECUTION_MAX_BUFFERED.",
            registry=registry,
        )
        self.paused = Gauge(
            "execution_fetch_paused",
            "1 while fetching is paused (backpressure).",
            registry=registry,
        )
        # Fair share: two figures instead of in-flight and waiting per project, whose
        # cardinality would grow with the number of projects served.
        self.projects_at_limit = Gauge(
            "execution_projects_at_limit",
            "Projects running EXECUTION_MAX_IN_FLIGHT_PER_PROJECT actions now (their further "
            "work waits while others' runs).",
            registry=registry,
        )
        self.longest_slot_wait = Gauge(
            "execution_longest_slot_wait_seconds",
            "How long the request waiting longest for an in-flight slot has waited (0 when "
            "none waits; requests waiting behind their own key's are not counted).",
            registry=registry,
        )
        self.commit_latency = Histogram(
            "execution_commit_seconds",
            "Latency of one offset commit (or transaction commit) to Kafka.",
            buckets=_COMMIT_BUCKETS,
            registry=registry,
        )
        self.commit_failures = Counter(
            "execution_commit_failures", "Offset commits that failed (retried).", registry=registry
        )
        self.partition_open_failures = Counter(
            "execution_partition_open_failures",
            "Attempts to open a block of assigned partitions (its transactional producer, its "
            "committed offsets) that failed; each is retried with backoff, and /readyz says "
            "not ready while one is failing.",
            registry=registry,
        )
        self.ready = Gauge(
            "execution_ready",
            "1 while /readyz answers ready (in the consumer group, with an assignment).",
            registry=registry,
        )
        self.state_available = Gauge(
            "execution_state_available",
            "1 while the fleet's store (EXECUTION_STATE_URL) answers, 0 while this process uses "
            "its own state instead (always 1 without a store).",
            registry=registry,
        )
        self.state_available.set(1)
        self.state_fallbacks = Counter(
            "execution_state_fallbacks",
            "Store calls answered from this process's own state (store away, slow or failing).",
            registry=registry,
        )
        self.dead_letters = Counter(
            "execution_dead_letters",
            "Request records the engine could not understand, sent unchanged to the dead-letter "
            "topic, by error code (one too large for that topic is logged "
            "`dead_letter.too_large` instead).",
            ["error_code"],
            registry=registry,
        )
        for code in ErrorCode:  # every code's series from the start: 0 until one comes
            if code.dead_letters:
                self.dead_letters.labels(code.value)
        build = build_info()
        Info(
            "execution_build",
            "The engine's version, the commit it was built from, Python's and aiokafka's "
            "versions (always 1).",
            registry=registry,
        ).info(
            {
                "version": build.version,
                "commit": build.commit,
                "python": build.python,
                "aiokafka": build.aiokafka,
            }
        )
        ProcessCollector(registry=registry)
        self._consumer: Any = None
        self._credentials: CacheCounters | None = None
        self._log_sink: DropCounter | None = None
        self._circuits: Callable[[], Mapping[str, str]] = dict
        registry.register(self._envelopes)
        registry.register(_LagCollector(self))
        registry.register(_CredentialCacheCollector(self))
        registry.register(_LogSinkCollector(self))
        registry.register(_CircuitCollector(self))

    # -- hooks the engine calls ------------------------------------------------------------

    def consumed(self, topic: str, partition: int, count: int) -> None:
        self.records_consumed.labels(topic, str(partition)).inc(count)

    def envelope(self, envelope: ResultEnvelope) -> None:
        action = envelope.action if envelope.action in self._actions else UNKNOWN_ACTION
        error = envelope.error
        if error is not None and error.code.dead_letters:
            self.dead_letters.labels(error.code.value).inc()
        self._envelopes.count(
            action,
            envelope.status,
            NO_ERROR if error is None else error.code.value,
            envelope.duration_ms / 1000,
            envelope.attempts,
        )

    def committed(self, seconds: float) -> None:
        """After a successful offset (or transaction) commit that took `seconds`."""
        self.commit_latency.observe(seconds)

    def commit_failed(self) -> None:
        self.commit_failures.inc()

    def partition_open_failed(self) -> None:
        self.partition_open_failures.inc()

    def watch_consumer(self, consumer: Any) -> None:
        """The group consumer, read at scrape time for per-partition lag."""
        self._consumer = consumer

    def watch_credentials(self, cache: CacheCounters) -> None:
        self._credentials = cache

    def watch_log_sink(self, sink: DropCounter) -> None:
        """The Kafka log sink, whose dropped events (queue full, broker away) are counted."""
        self._log_sink = sink

    def watch_gauges(
        self,
        in_flight: Callable[[], float],
        buffered: Callable[[], float],
        paused: Callable[[], bool],
    ) -> None:
        self.in_flight.set_function(in_flight)
        self.buffered.set_function(buffered)
        self.paused.set_function(lambda: float(paused()))

    def watch_fair_share(
        self, projects_at_limit: Callable[[], float], longest_wait_s: Callable[[], float]
    ) -> None:
        """The scheduler's share figures, read at scrape time."""
        self.projects_at_limit.set_function(projects_at_limit)
        self.longest_slot_wait.set_function(longest_wait_s)

    def watch_health(
        self, ready: Callable[[], bool], circuits: Callable[[], Mapping[str, str]]
    ) -> None:
        """Readiness (what /readyz answers) and the circuit breakers' states (upstream ->
        closed / open / half_open, e.g. `CircuitBreakers.states`), read at scrape time."""
        self.ready.set_function(lambda: float(ready()))
        self._circuits = circuits

    # -- exposition ------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text format of everything in this registry."""
        return generate_latest(self.registry)

    def lag(self) -> dict[tuple[str, int], int]:
        """Per assigned partition: records not fetched yet, i.e. the last stable offset
        (read_committed) minus the consumer's position, as of the partition's last fetch
        (like the Java client's records-lag). Fetched but unfinished records are
        `execution_buffered_records`; a paused partition keeps its last value."""
        consumer = self._consumer
        if consumer is None:
            return {}
        result = {}
        for tp in consumer.assignment():
            try:
                state = consumer._subscription.subscription.assignment.state_value(tp)
            except (AttributeError, AssertionError):  # revoked meanwhile, or no assignment
                continue
            if state is None:
                continue
            end = state.lso if state.lso is not None and state.lso >= 0 else state.highwater
            if end is None:
                continue
            if state.has_valid_position:
                result[(tp.topic, tp.partition)] = max(0, end - state.position)
        return result


class _EnvelopeTally(Collector):
    """Envelopes by action, status and code; action durations by action and status; retries
    by action. Plain counts kept by the engine's loop (one thread) and exposed at scrape time
    as `execution_envelopes_total`, `execution_action_duration_seconds` and
    `execution_action_retries_total`. Series appear with their first envelope."""

    def __init__(self) -> None:
        self._envelopes: dict[tuple[str, str, str], int] = {}
        # (action, status) -> count per bucket (the last one: above every bound), and sum.
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._retries: dict[str, int] = {}

    def count(self, action: str, status: str, code: str, seconds: float, attempts: int) -> None:
        key = (action, status, code)
        self._envelopes[key] = self._envelopes.get(key, 0) + 1
        if action == UNKNOWN_ACTION:
            return
        timed = (action, status)
        buckets = self._buckets.get(timed)
        if buckets is None:
            buckets = self._buckets[timed] = [0] * (len(_ACTION_BUCKETS) + 1)
            self._sums[timed] = 0.0
        # A bucket counts what is at most its bound ("le"): the first bound >= seconds.
        buckets[bisect.bisect_left(_ACTION_BUCKETS, seconds)] += 1
        self._sums[timed] += seconds
        if attempts > 1:
            self._retries[action] = self._retries.get(action, 0) + attempts - 1

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        yield from self._families()

    def _families(self) -> Iterator[Metric]:
        envelopes = CounterMetricFamily(
            "execution_envelopes",
            "Result envelopes produced, by action, status and error code.",
            labels=["action", "status", "error_code"],
        )
        for labels, value in list(self._envelopes.items()):
            envelopes.add_metric(list(labels), value)
        yield envelopes
        durations = HistogramMetricFamily(
            "execution_action_duration_seconds",
            "Time from a request's start to its envelope (all attempts), by action and status.",
            labels=["action", "status"],
        )
        for timed, buckets in list(self._buckets.items()):
            cumulative = list(itertools.accumulate(buckets))
            durations.add_metric(
                list(timed),
                [(_LE[i], float(n)) for i, n in enumerate(cumulative)],
                sum_value=self._sums[timed],
            )
        yield durations
        retries = CounterMetricFamily(
            "execution_action_retries", "Attempts beyond the first, by action.", labels=["action"]
        )
        for action, value in list(self._retries.items()):
            retries.add_metric([action], value)
        yield retries


_LE = [*(floatToGoString(bound) for bound in _ACTION_BUCKETS), "+Inf"]  # type: ignore[no-untyped-call]


class _LagCollector(Collector):
    def __init__(self, metrics: EngineMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for (topic, partition), lag in sorted(self._metrics.lag().items()):
            family.add_metric([topic, str(partition)], lag)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "execution_consumer_lag",
            "Records on an assigned partition not fetched yet (last stable offset - position).",
            labels=["topic", "partition"],
        )


class DropCounter(Protocol):
    """What the Kafka log sink exposes (consumer.ops.logging.KafkaLogSink)."""

    dropped: int


class _LogSinkCollector(Collector):
    def __init__(self, metrics: EngineMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return [self._family(0)]

    def collect(self) -> Iterator[Metric]:
        sink = self._metrics._log_sink
        yield self._family(sink.dropped if sink is not None else 0)

    @staticmethod
    def _family(dropped: int) -> Metric:
        return CounterMetricFamily(
            "execution_log_events_dropped",
            "Log events not delivered to the logs topic (the sink's queue full, or the broker "
            "away); they were still written to stdout.",
            value=dropped,
        )


class _CredentialCacheCollector(Collector):
    def __init__(self, metrics: EngineMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return list(self._families(0, 0))

    def collect(self) -> Iterator[Metric]:
        cache = self._metrics._credentials
        yield from self._families(cache.hits if cache else 0, cache.misses if cache else 0)

    @staticmethod
    def _families(hits: int, misses: int) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "execution_vault_cache_hits", "Credential lookups served from the cache.", value=hits
        )
        yield CounterMetricFamily(
            "execution_vault_cache_misses",
            "Credential lookups that went to the Vault Engine (or joined a fetch in flight).",
            value=misses,
        )


class _CircuitCollector(Collector):
    """Circuits per state, not per upstream: an upstream is a third party's host, and
    `http_request` callers choose hosts (the upstreams themselves are in `circuit.opened`)."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return [self._family({})]

    def collect(self) -> Iterator[Metric]:
        yield self._family(self._metrics._circuits())

    @staticmethod
    def _family(states: Mapping[str, str]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "execution_circuits",
            "Upstream circuit breakers in each state (closed, open, half_open).",
            labels=["state"],
        )
        counts = dict.fromkeys(CIRCUIT_STATES, 0)
        for state in states.values():
            counts[state] = counts.get(state, 0) + 1
        for state, count in counts.items():
            family.add_metric([state], count)
        return family
