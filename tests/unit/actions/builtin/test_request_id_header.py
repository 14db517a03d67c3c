"""A non-ASCII request id reaches the receiver's `Idempotency-Key` (RFC 8187), never a crash."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from actions import HttpClient
from actions.builtin import http_request, send_webhook
from actions.builtin.request_id_header import request_id_from_header_value, request_id_header_value
from actions.builtin.webhook_signing import delivery_id
from schemas.request import REQUEST_ID_PATTERN
from tests.standins import HttpTargetStandIn
from tests.unit.support import FakeCredentials, make_context, plain_client

NON_ASCII_ID = "café-1"
SENT_AS = "UTF-8''caf%C3%A9-1"


def test_a_printable_ascii_id_is_sent_as_it_is() -> None:
    for request_id in ["req-42", "9f1c2e7a-4c1b", "topic:0:17", "a b%C3!\"'~"]:
        assert request_id_header_value(request_id) == request_id


def test_a_non_ascii_id_is_an_rfc_8187_extended_value() -> None:
    assert request_id_header_value(NON_ASCII_ID) == SENT_AS
    assert request_id_header_value("日本") == "UTF-8''%E6%97%A5%E6%9C%AC"
    assert request_id_header_value("a\u2028b") == "UTF-8''a%E2%80%A8b"


def test_an_ascii_id_that_looks_encoded_is_encoded_too() -> None:
    # Otherwise the id "UTF-8''caf%C3%A9-1" and the id "café-1" would share one key.
    forged = request_id_header_value(SENT_AS)
    assert forged != SENT_AS
    assert forged.startswith("UTF-8''")
    assert request_id_from_header_value(forged) == SENT_AS
    assert request_id_header_value("utf-8''x") != "utf-8''x"


@given(st.from_regex(REQUEST_ID_PATTERN, fullmatch=True))
def test_every_valid_id_gives_an_ascii_value_that_decodes_back(request_id: str) -> None:
    value = request_id_header_value(request_id)
    assert value.isascii() and value.isprintable()
    assert request_id_from_header_value(value) == request_id


async def test_http_request_sends_a_non_ascii_id(
    target: HttpTargetStandIn, egress: HttpClient
) -> None:
    async with plain_client() as http:
        ctx = make_context(http=http, egress_http=egress, request_id=NON_ASCII_ID)
        params = http_request.HttpRequestParams.model_validate({"url": f"{target.base_url}/echo"})
        data = await http_request.ACTION.run(params, ctx)
    assert data["status_code"] == 200
    assert data["body"]["headers"]["idempotency-key"] == SENT_AS


async def test_send_webhook_sends_a_non_ascii_id(
    target: HttpTargetStandIn, egress: HttpClient
) -> None:
    credentials = FakeCredentials({("demo-project", "webhook"): "whsec_0123456789"})
    async with plain_client() as http:
        ctx = make_context(
            http=http, egress_http=egress, credentials=credentials, request_id=NON_ASCII_ID
        )
        values = {
            "url": f"{target.base_url}/echo",
            "payload": {"id": NON_ASCII_ID},
            "signature": "stripe",
        }
        params = send_webhook.SendWebhookParams.model_validate(values)
        data = await send_webhook.ACTION.run(params, ctx)
    assert data["status_code"] == 200
    (request,) = target.requests
    # The key a receiver de-duplicates on is the delivery's id (ASCII whatever the request id);
    # Puraify-Delivery carries the request id itself.
    assert request.headers["idempotency-key"] == delivery_id("demo-project", NON_ASCII_ID)
    assert request.headers["puraify-delivery"] == SENT_AS
    assert send_webhook.verify_signature(
        "whsec_0123456789", request.headers["puraify-signature"], request.body
    )
