"""Optional OpenTelemetry spans, one per executed action; off by default and free when off.

With `OTEL_EXPORTER_OTLP_ENDPOINT` unset the engine uses `NO_TRACING`, which awaits the action
and nothing else; OpenTelemetry is not even imported. When set (and the `otel` extra is
installed), each executed request gets a CONSUMER span `execute <action>`, child of the
request's W3C `traceparent` when it has one, exported over OTLP/HTTP in batches.
"""

# Imports of opentelemetry are lazy on purpose: it is optional, and costs nothing when off.
# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from consumer.ops.logging import get_logger
from schemas import ExecutionRequest, ResultEnvelope

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

SERVICE_NAME = "execution-engine"


class NoTracing:
    async def run(
        self,
        request: ExecutionRequest,
        request_id: str,
        traceparent: str | None,
        execution: Awaitable[ResultEnvelope],
    ) -> ResultEnvelope:
        return await execution

    def shutdown(self) -> None:
        pass


NO_TRACING = NoTracing()


class OtelTracing(NoTracing):
    """Spans through an OpenTelemetry TracerProvider (the caller's, so tests can pass one with
    an in-memory exporter)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("puraify.execution_engine")
        self._propagator = TraceContextTextMapPropagator()
        self._kind = SpanKind.CONSUMER
        self._error = (Status, StatusCode.ERROR)

    async def run(
        self,
        request: ExecutionRequest,
        request_id: str,
        traceparent: str | None,
        execution: Awaitable[ResultEnvelope],
    ) -> ResultEnvelope:
        parent = self._propagator.extract({"traceparent": traceparent}) if traceparent else None
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "execution.request_id": request_id,
            "execution.action": request.action,
            "execution.project": request.project,
        }
        with self._tracer.start_as_current_span(
            f"execute {request.action}",
            context=parent,
            kind=self._kind,
            attributes=attributes,
        ) as span:
            envelope = await execution
            span.set_attribute("execution.status", envelope.status)
            span.set_attribute("execution.attempts", envelope.attempts)
            if envelope.error is not None:
                span.set_attribute("error.type", envelope.error.code.value)
                status, code = self._error
                span.set_status(status(code, envelope.error.code.value))
            return envelope

    def shutdown(self) -> None:
        self._provider.shutdown()  # flushes what the batch processor still holds


def build_tracing(endpoint: str | None) -> NoTracing:
    """NO_TRACING unless an OTLP endpoint is configured."""
    if not endpoint:
        return NO_TRACING
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        # Tracing is an aid, not a reason to stop consuming: say so loudly and run without.
        get_logger().error(
            "tracing.unavailable",
            reason="OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed "
            "(pip install 'puraify-execution-engine[otel]')",
        )
        return NO_TRACING
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return OtelTracing(provider)
