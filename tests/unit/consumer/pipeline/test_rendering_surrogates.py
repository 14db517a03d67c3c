"""An envelope whose data came from an upstream with lone surrogates renders to valid UTF-8
JSON and round-trips, its data kept (escaped), never replaced by an internal_error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from actions import HttpClient
from actions.builtin.http_request import ACTION, HttpRequestParams
from actions.egress import EgressPolicy, guarded_client, parse_networks
from consumer.pipeline.rendering import OutcomeRenderer
from consumer.secrets.redaction import SECRETS
from schemas import ResultEnvelope, success_envelope
from tests.standins.surrogate_json import KEPT, SurrogateJsonStandIn
from tests.unit.support import make_context, plain_client


@pytest.fixture(scope="module")
def upstream() -> Iterator[SurrogateJsonStandIn]:
    with SurrogateJsonStandIn() as server:
        yield server


@pytest.fixture
async def egress() -> AsyncIterator[HttpClient]:
    async with guarded_client(EgressPolicy(parse_networks("127.0.0.0/8"))) as client:
        yield client


def rendered(data: dict[str, object]) -> bytes:
    now = datetime.now(UTC)
    envelope = success_envelope(
        "req-1",
        data,
        action="http_request",
        project="p",
        started_at=now,
        finished_at=now,
        attempts=1,
    )
    [message] = OutcomeRenderer("results", "dead", 1_000_000).render(
        envelope, traceparent=None, scope=SECRETS.scope()
    )
    assert message.value is not None
    return message.value


async def test_an_http_request_envelope_round_trips(
    upstream: SurrogateJsonStandIn, egress: HttpClient
) -> None:
    async with plain_client() as http:
        ctx = make_context(http=http, egress_http=egress)
        params = HttpRequestParams.model_validate({"url": f"{upstream.base_url}/answer"})
        data = dict(await ACTION.run(params, ctx))
    assert data["body"] == KEPT
    value = rendered(data)
    value.decode("utf-8")  # strict: what goes to Kafka is valid UTF-8
    envelope = ResultEnvelope.model_validate_json(value)
    assert envelope.status == "success"
    assert envelope.data is not None and envelope.data["body"] == KEPT
    assert json.loads(value)["data"]["body"] == KEPT


def test_an_envelope_an_action_left_unescaped_is_escaped_when_rendered() -> None:
    # A plugin (or a builtin) that kept a lone surrogate as it came: its data is not lost.
    value = rendered({"ts": "1\ud800", "nested": [{"\udfff": "x"}]})
    envelope = ResultEnvelope.model_validate_json(value)
    assert envelope.status == "success"
    assert envelope.error is None
    assert envelope.data == {"ts": "1\\ud800", "nested": [{"\\udfff": "x"}]}
