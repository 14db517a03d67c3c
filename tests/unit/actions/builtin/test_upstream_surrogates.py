"""An upstream's JSON with a lone surrogate (`"\\ud800"`) is kept, escaped, where it is parsed
(its rendering is tests/unit/consumer/pipeline/test_rendering_surrogates.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from actions import HttpClient, UpstreamError
from actions.builtin.http_request import ACTION, HttpRequestParams
from actions.limits import escape_lone_surrogates, upstream_json
from tests.standins.surrogate_json import KEPT, LONE_SURROGATE_JSON, SurrogateJsonStandIn
from tests.unit.support import make_context, plain_client


@pytest.fixture(scope="module")
def upstream() -> Iterator[SurrogateJsonStandIn]:
    with SurrogateJsonStandIn() as server:
        yield server


def test_lone_surrogates_are_written_as_their_escape() -> None:
    assert upstream_json(LONE_SURROGATE_JSON) == KEPT
    assert escape_lone_surrogates("x\ud800") == "x\\ud800"
    # A surrogate written raw (CESU-8 bytes), which json.loads decodes with surrogatepass.
    assert upstream_json(b'"\xed\xa0\x80"') == "\\ud800"


def test_valid_json_is_left_as_it_is() -> None:
    text = '{"a": ["\\ud83d\\ude00", "caf\\u00e9", "\\\\ud800 as text"], "n": 1.5}'
    assert upstream_json(text.encode()) == json.loads(text)
    value = {"k": ["v"]}
    assert escape_lone_surrogates(value) == value


def test_what_is_not_json_still_raises() -> None:
    with pytest.raises(ValueError):
        upstream_json(b"{not json")


async def test_http_request_keeps_the_body(
    upstream: SurrogateJsonStandIn, egress: HttpClient
) -> None:
    async with plain_client() as http:
        ctx = make_context(http=http, egress_http=egress)
        params = HttpRequestParams.model_validate({"url": f"{upstream.base_url}/answer"})
        data = dict(await ACTION.run(params, ctx))
    assert data["body"] == KEPT
    json.dumps(data, ensure_ascii=False).encode("utf-8")  # strict: renderable as UTF-8


async def test_a_refusal_keeps_the_body_in_its_details(
    upstream: SurrogateJsonStandIn, egress: HttpClient
) -> None:
    async with plain_client() as http:
        ctx = make_context(http=http, egress_http=egress)
        params = HttpRequestParams.model_validate({"url": f"{upstream.base_url}/refuse"})
        with pytest.raises(UpstreamError) as refused:
            await ACTION.run(params, ctx)
    assert refused.value.details is not None
    assert refused.value.details["body"] == KEPT
