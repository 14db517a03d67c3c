"""consumer/metrics.py: what the engine's hooks turn into, in the engine's own registry."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consumer.app import Application
from consumer.ops import metrics as metrics_module
from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.metrics import NO_ERROR, UNKNOWN_ACTION, EngineMetrics
from consumer.settings import EngineSettings
from schemas import ErrorCode, error_envelope, success_envelope

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def samples(metrics: EngineMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    result = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def test_every_metric_is_prefixed_and_registries_are_separate() -> None:
    first, second = EngineMetrics(["log_message"]), EngineMetrics(["log_message"])
    first.consumed("requests", 0, 5)
    names = {name for name, _ in samples(first)}
    assert names and all(name.startswith(("execution_", "process_")) for name in names)
    assert (
        samples(first)[
            ("execution_records_consumed_total", (("partition", "0"), ("topic", "requests")))
        ]
        == 5
    )
    assert (
        "execution_records_consumed_total",
        (("partition", "0"), ("topic", "requests")),
    ) not in samples(second)


def test_envelopes_by_action_status_code_with_retries_and_duration() -> None:
    metrics = EngineMetrics(["send_slack"])
    ok = success_envelope(
        "r1",
        {},
        action="send_slack",
        project="p",
        started_at=T0,
        finished_at=T0 + timedelta(milliseconds=1500),
        attempts=3,
    )
    failed = error_envelope(
        "r2",
        ErrorCode.RATE_LIMITED,
        "429",
        started_at=T0,
        finished_at=T0,
        action="send_slack",
        project="p",
        attempts=5,
    )
    metrics.envelope(ok)
    metrics.envelope(failed)
    got = samples(metrics)
    assert (
        got[
            (
                "execution_envelopes_total",
                (("action", "send_slack"), ("error_code", "none"), ("status", "success")),
            )
        ]
        == 1
    )
    assert (
        got[
            (
                "execution_envelopes_total",
                (("action", "send_slack"), ("error_code", "rate_limited"), ("status", "error")),
            )
        ]
        == 1
    )
    assert got[("execution_action_retries_total", (("action", "send_slack"),))] == 2 + 4
    bucket = (("action", "send_slack"), ("le", "2.5"), ("status", "success"))
    assert got[("execution_action_duration_seconds_bucket", bucket)] == 1
    below = (("action", "send_slack"), ("le", "1.0"), ("status", "success"))
    assert got[("execution_action_duration_seconds_bucket", below)] == 0


def test_caller_chosen_action_names_do_not_become_labels() -> None:
    metrics = EngineMetrics(["log_message"])
    for name in ("x1", "x2", "x3"):
        metrics.envelope(
            error_envelope(
                "r", ErrorCode.UNKNOWN_ACTION, "no", started_at=T0, finished_at=T0, action=name
            )
        )
    got = samples(metrics)
    labels = (("action", "_unknown"), ("error_code", "unknown_action"), ("status", "error"))
    assert got[("execution_envelopes_total", labels)] == 3
    assert not any(dict(lbl).get("action", "").startswith("x") for _, lbl in got)


def test_gauges_and_cache_counters_are_read_at_scrape_time() -> None:
    class Cache:
        hits = 0
        misses = 0

    metrics = EngineMetrics()
    held = [0]
    metrics.watch_gauges(lambda: 2, lambda: held[0], lambda: True)
    cache = Cache()
    metrics.watch_credentials(cache)
    held[0], cache.hits, cache.misses = 7, 4, 1
    metrics.committed(0.02)
    got = samples(metrics)
    assert got[("execution_in_flight", ())] == 2
    assert got[("execution_buffered_records", ())] == 7
    assert got[("execution_fetch_paused", ())] == 1
    assert got[("execution_vault_cache_hits_total", ())] == 4
    assert got[("execution_vault_cache_misses_total", ())] == 1
    assert got[("execution_commit_seconds_count", ())] == 1


def test_the_fair_share_figures_are_read_at_scrape_time() -> None:
    metrics = EngineMetrics()
    figures = [0, 0.0]
    metrics.watch_fair_share(lambda: figures[0], lambda: figures[1])
    figures[:] = [3, 12.5]
    got = samples(metrics)
    assert got[("execution_projects_at_limit", ())] == 3
    assert got[("execution_longest_slot_wait_seconds", ())] == 12.5


def test_readiness_and_circuit_states_are_read_at_scrape_time() -> None:
    metrics = EngineMetrics()
    got = samples(metrics)
    assert got[("execution_ready", ())] == 0  # not watched yet: not ready
    for state in ("closed", "open", "half_open"):
        assert got[("execution_circuits", (("state", state),))] == 0
    ready = [False]
    circuits = {"slack.com": "closed"}
    metrics.watch_health(lambda: ready[0], lambda: circuits)
    ready[0] = True
    circuits.update({"a.example": "open", "b.example": "open", "c.example": "half_open"})
    got = samples(metrics)
    assert got[("execution_ready", ())] == 1
    assert got[("execution_circuits", (("state", "closed"),))] == 1
    assert got[("execution_circuits", (("state", "open"),))] == 2
    assert got[("execution_circuits", (("state", "half_open"),))] == 1
    assert not any("example" in str(labels) for _, labels in got)  # hosts are no labels


def test_the_application_exposes_its_readiness_and_its_circuits() -> None:
    app = Application(EngineSettings(circuit_failure_threshold=1))
    got = samples(app.metrics)
    assert got[("execution_ready", ())] == 0  # no consumer yet
    assert got[("execution_circuits", (("state", "open"),))] == 0
    app.circuit_breakers.record("slack.com", probe=False, failed=True, log=structlog.get_logger())
    assert samples(app.metrics)[("execution_circuits", (("state", "open"),))] == 1


def test_dropped_log_events_are_counted_on_metrics() -> None:
    metrics = EngineMetrics()
    assert b"execution_log_events_dropped_total 0.0" in metrics.render()
    sink = KafkaLogSink(max_queued=2)
    metrics.watch_log_sink(sink)
    for n in range(5):
        sink.put(None, b"event %d" % n)
    assert sink.dropped == 3
    assert b"execution_log_events_dropped_total 3.0" in metrics.render()


def test_the_envelope_tally_exposes_what_prometheus_client_would() -> None:
    """The engine counts envelopes itself; the series are those of a prometheus-client
    Counter and Histogram fed the same envelopes, sample for sample (bounds included)."""
    metrics = EngineMetrics(["log_message", "send_slack"])
    reference = CollectorRegistry()
    envelopes = Counter(
        "execution_envelopes", "", ["action", "status", "error_code"], registry=reference
    )
    durations = Histogram(
        "execution_action_duration_seconds",
        "",
        ["action", "status"],
        buckets=metrics_module._ACTION_BUCKETS,
        registry=reference,
    )
    retries = Counter("execution_action_retries", "", ["action"], registry=reference)
    chooser = random.Random(7)
    for bound in [*metrics_module._ACTION_BUCKETS, 0.0, 500.0]:  # on a bound, and past them
        for milliseconds in (bound * 1000, bound * 1000 + 0.001, chooser.uniform(0, 200_000)):
            attempts = chooser.choice([0, 1, 3])
            action = chooser.choice(["log_message", "send_slack", "bogus"])
            finished = T0 + timedelta(milliseconds=milliseconds)
            if chooser.random() < 0.5:
                envelope = success_envelope(
                    "r",
                    {},
                    action=action,
                    project="p",
                    started_at=T0,
                    finished_at=finished,
                    attempts=attempts,
                )
            else:
                envelope = error_envelope(
                    "r",
                    ErrorCode.UPSTREAM_ERROR,
                    "x",
                    started_at=T0,
                    finished_at=finished,
                    action=action,
                    attempts=attempts,
                )
            metrics.envelope(envelope)
            named = action if action != "bogus" else UNKNOWN_ACTION
            code = envelope.error.code.value if envelope.error else NO_ERROR
            envelopes.labels(named, envelope.status, code).inc()
            if named != UNKNOWN_ACTION:
                durations.labels(named, envelope.status).observe(envelope.duration_ms / 1000)
                if attempts > 1:
                    retries.labels(named).inc(attempts - 1)
    wanted = {
        key: value
        for family in text_string_to_metric_families(generate_latest(reference).decode())
        for sample in family.samples
        for key, value in [((sample.name, tuple(sorted(sample.labels.items()))), sample.value)]
    }
    got = samples(metrics)
    assert wanted and {key: got.get(key) for key in wanted} == wanted


def test_process_series_and_the_build_info() -> None:
    got = samples(EngineMetrics(["log_message"]))
    names = {name for name, _ in got}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    [(labels, value)] = [
        (dict(lbl), v) for (n, lbl), v in got.items() if n == "execution_build_info"
    ]
    assert value == 1
    assert set(labels) == {"version", "commit", "python", "aiokafka"}
    assert labels["python"].count(".") == 2 and labels["aiokafka"].startswith("0.")


def test_dead_letters_are_counted_by_code() -> None:
    metrics = EngineMetrics(["log_message"])
    for code in (ErrorCode.INVALID_JSON, ErrorCode.INVALID_JSON, ErrorCode.PAYLOAD_TOO_LARGE):
        metrics.envelope(error_envelope("r", code, "bad", started_at=T0, finished_at=T0))
    metrics.envelope(
        error_envelope(
            "r",
            ErrorCode.UPSTREAM_ERROR,
            "no",
            action="log_message",
            project="p",
            started_at=T0,
            finished_at=T0,
        )
    )
    got = samples(metrics)

    def dead(code: str) -> float:
        return got[("execution_dead_letters_total", (("error_code", code),))]

    assert dead("invalid_json") == 2 and dead("payload_too_large") == 1
    assert dead("invalid_request") == 0  # exposed before the first one, for alerts
    assert not [
        lbl
        for (n, lbl) in got
        if n == "execution_dead_letters_total" and ("error_code", "upstream_error") in lbl
    ]
