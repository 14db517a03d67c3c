"""consumer/tracing.py: a span per executed action, child of the request's traceparent."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from consumer.ops.tracing import NO_TRACING, OtelTracing, build_tracing
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope, error_envelope, success_envelope

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


REQUEST = ExecutionRequest(action="send_slack", project="demo", params={})


async def finished(envelope: ResultEnvelope) -> ResultEnvelope:
    return envelope


def tracing_to_memory() -> tuple[OtelTracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelTracing(provider), exporter


async def test_a_span_continues_the_requests_trace() -> None:
    tracing, exporter = tracing_to_memory()
    envelope = success_envelope(
        "r-1", {}, action="send_slack", project="demo", started_at=NOW, finished_at=NOW, attempts=1
    )
    result = await tracing.run(REQUEST, "r-1", f"00-{TRACE_ID}-{PARENT_ID}-01", finished(envelope))
    assert result is envelope
    [span] = exporter.get_finished_spans()
    assert span.name == "execute send_slack"
    assert span.kind is SpanKind.CONSUMER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.attributes is not None
    assert span.attributes["execution.request_id"] == "r-1"
    assert span.attributes["execution.project"] == "demo"
    assert span.attributes["execution.status"] == "success"
    assert span.status.status_code is StatusCode.UNSET


async def test_an_error_envelope_marks_the_span_and_no_traceparent_starts_a_trace() -> None:
    tracing, exporter = tracing_to_memory()
    envelope = error_envelope(
        "r-1", ErrorCode.RATE_LIMITED, "429", started_at=NOW, finished_at=NOW, attempts=5
    )
    await tracing.run(REQUEST, "r-1", None, finished(envelope))
    [span] = exporter.get_finished_spans()
    assert span.parent is None
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "rate_limited"
    assert span.attributes["execution.attempts"] == 5
    tracing.shutdown()


def test_tracing_is_off_without_an_endpoint() -> None:
    assert build_tracing(None) is NO_TRACING
    assert isinstance(build_tracing("http://127.0.0.1:9"), OtelTracing)


def test_off_means_opentelemetry_is_never_imported() -> None:
    probe = (
        "import sys\n"
        "from consumer.app import Application\n"
        "from consumer.settings import EngineSettings\n"
        "app = Application(EngineSettings(otlp_endpoint=None))\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
