"""A request's traceparent end to end, and OTLP spans exported to a loopback collector."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from consumer.ops.log_sink import KafkaLogSink
from consumer.ops.logging import configure_logging
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import Outgoing, produce, read_topic
from tests.standins.base import RecordedRequest, Response, StandInServer

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Collector(StandInServer):
    """An OTLP/HTTP trace receiver: records the export requests, answers 200."""

    def handle(self, request: RecordedRequest) -> Response:
        return Response(200, b"", {"Content-Type": "application/x-protobuf"})


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as server:
        yield server


async def test_traceparent_reaches_envelope_and_logs_and_spans_are_exported(
    kafka_bootstrap: str, topics: Topics, collector: Collector
) -> None:
    settings = engine_settings(kafka_bootstrap, topics, otlp_endpoint=collector.base_url)
    sink = KafkaLogSink()
    configure_logging("info", sink=sink)
    body = {
        "request_id": "traced",
        "action": "log_message",
        "project": "p",
        "params": {"message": "m"},
    }
    record = Outgoing(json.dumps(body).encode(), None, (("traceparent", TRACEPARENT.encode()),))
    async with running_engine(settings, log_sink=sink):
        await produce(kafka_bootstrap, topics.requests, [record])
        [envelope] = await read_topic(kafka_bootstrap, topics.results, expect=1, grace_s=0)
        logs = await read_topic(kafka_bootstrap, topics.logs, expect=4, grace_s=0.5)
    # Stopping the engine flushes the span batch.
    assert dict(envelope.headers)["traceparent"] == TRACEPARENT.encode()
    events = [json.loads(r.value) for r in logs if r.key == b"traced"]
    assert {e["event"] for e in events} >= {"log_message", "action.succeeded"}
    assert all(e["traceparent"] == TRACEPARENT for e in events), events

    [export] = collector.wait_for_requests(1, timeout=10)
    assert (export.method, export.path) == ("POST", "/v1/traces")
    assert export.headers["content-type"] == "application/x-protobuf"
    assert b"execute log_message" in export.body
    assert bytes.fromhex(TRACEPARENT.split("-")[1]) in export.body  # the request's trace id
