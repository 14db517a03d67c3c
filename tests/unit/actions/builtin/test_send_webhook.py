"""send_webhook: a signed POST over loopback, verifiable by the receiver (Standard Webhooks by
default, Stripe-style on request)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest

from actions import (
    CredentialRejected,
    ForbiddenDestination,
    RateLimited,
    UpstreamError,
    UpstreamUnavailable,
)
from actions.builtin.send_webhook import (
    ACTION,
    SIGNATURE_HEADER,
    SendWebhookParams,
    sign,
    verify_signature,
)
from actions.builtin.webhook_signing import delivery_id, standard_sign, standard_verify
from actions.egress import EgressPolicy, guarded_client
from actions.http import HttpClient
from tests.standins import HttpTargetStandIn
from tests.unit.support import FakeCredentials, closed_port, make_context, plain_client

SECRET = "whsec_test_0123456789"
# A Standard Webhooks secret: `whsec_` and the base64 of the key bytes.
KEY = b"0123456789abcdef0123456789abcdef"
STANDARD_SECRET = "whsec_" + base64.b64encode(KEY).decode()


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


@pytest.fixture
def receiver(receiver_server: HttpTargetStandIn) -> HttpTargetStandIn:
    receiver_server.clear()
    return receiver_server


async def send(
    egress: HttpClient,
    url: str,
    credentials: FakeCredentials | None = None,
    **params: object,
) -> dict[str, object]:
    async with plain_client() as http:
        ctx = make_context(
            http=http,
            egress_http=egress,
            credentials=credentials or FakeCredentials({("demo-project", "webhook"): SECRET}),
            request_id="req-77",
        )
        values = {"url": url, "payload": {"user": "ada", "n": 1}, **params}
        return dict(await ACTION.run(SendWebhookParams.model_validate(values), ctx))


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), b"1732600000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1732600000, body) == f"t=1732600000,v1={expected}"


def test_verify_signature() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, 1000, body)
    assert verify_signature(SECRET, header, body, now=1000)
    assert verify_signature(SECRET, header, body, now=1299)
    assert not verify_signature(SECRET, header, body, now=1301), "too old: a replay"
    assert not verify_signature("other-secret", header, body, now=1000)
    assert not verify_signature(SECRET, header, b'{"a":2}', now=1000), "body tampered"
    assert not verify_signature(SECRET, header.replace("t=1000", "t=1001"), body, now=1000)
    assert not verify_signature(SECRET, "garbage", body, now=1000)
    # A receiver accepts any v1 (secret rotation: old and new signatures side by side).
    assert verify_signature(SECRET, f"{header},v1=deadbeef", body, now=1000)


def test_standard_signature_is_base64_hmac_of_id_dot_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    digest = hmac.new(KEY, b"msg_1.1732600000." + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    assert standard_sign(STANDARD_SECRET, "msg_1", 1732600000, body) == expected
    # A secret that is no base64 at all (5 characters) is its own UTF-8 bytes.
    plain = hmac.new(b"plain", b"msg_1.1732600000." + body, hashlib.sha256).digest()
    assert standard_sign("plain", "msg_1", 1732600000, body).endswith(
        base64.b64encode(plain).decode()
    )


def reference_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The Standard Webhooks reference verifier's algorithm (standard-webhooks/standard-webhooks,
    libraries/python/standardwebhooks/webhooks.py, `Webhook.__init__` and `verify`): `whsec_`
    stripped when present, the rest decoded with `base64.b64decode(rest + "==")`; HMAC-SHA256
    over `{id}.{timestamp}.{body}`, compared with each `v1,` signature."""
    rest = secret[len("whsec_") :] if secret.startswith("whsec_") else secret
    key = base64.b64decode(rest + "==")
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()
    candidates = (item.partition(",") for item in headers["webhook-signature"].split())
    return any(
        version == "v1" and hmac.compare_digest(base64.b64decode(sig), expected)
        for version, _, sig in candidates
    )


@pytest.mark.parametrize(
    "secret",
    [
        STANDARD_SECRET,  # whsec_, padded
        "whsec_" + base64.b64encode(b"0123456789abcdef0123456").decode().rstrip("="),  # unpadded
        base64.b64encode(KEY).decode(),  # no prefix
        "whsec_integration_0001",  # `_` is no base64: the reference skips it, so do we
        "my-webhook-secret",  # a plain word: the reference decodes it all the same
    ],
)
async def test_the_reference_verifier_accepts_every_secret_spelling(
    receiver: HttpTargetStandIn, egress: HttpClient, secret: str
) -> None:
    credentials = FakeCredentials({("demo-project", "webhook"): secret})
    await send(egress, f"{receiver.base_url}/echo", credentials)
    (request,) = receiver.requests
    assert reference_verify(secret, request.headers, request.body)
    assert standard_verify(secret, request.headers, request.body)


def test_the_webhook_id_is_per_project_stable_and_has_no_dot() -> None:
    first = delivery_id("proj-a", "order.created.42")
    assert first == delivery_id("proj-a", "order.created.42"), "the same on every retry"
    assert first != delivery_id("proj-b", "order.created.42"), "two projects: two ids"
    assert "." not in first and first.startswith("msg_")
    assert delivery_id("a", "b\x00c") != delivery_id("a\x00b", "c")


def test_standard_verify() -> None:
    body = b'{"a":1}'
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1000",
        "webhook-signature": standard_sign(STANDARD_SECRET, "msg_1", 1000, body),
    }
    assert standard_verify(STANDARD_SECRET, headers, body, now=1000)
    assert standard_verify(
        STANDARD_SECRET, {k.upper(): v for k, v in headers.items()}, body, now=999
    )
    assert not standard_verify(STANDARD_SECRET, headers, body, now=1301), "too old: a replay"
    assert not standard_verify("whsec_b3RoZXI=", headers, body, now=1000)
    assert not standard_verify(STANDARD_SECRET, headers, b'{"a":2}', now=1000), "tampered"
    assert not standard_verify(
        STANDARD_SECRET, headers | {"webhook-id": "msg_2"}, body, now=1000
    ), "the id is signed: a receiver may trust it to de-duplicate"
    rotated = headers | {"webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    assert standard_verify(STANDARD_SECRET, rotated, body, now=1000), "any signature may match"
    assert not standard_verify(
        STANDARD_SECRET, {"webhook-id": "msg_1", "webhook-timestamp": "1000"}, body, now=1000
    )


async def test_the_receiver_can_verify_what_was_sent(
    receiver: HttpTargetStandIn, egress: HttpClient
) -> None:
    before = int(time.time())
    credentials = FakeCredentials({("demo-project", "webhook"): STANDARD_SECRET})
    data = await send(egress, f"{receiver.base_url}/echo", credentials, event="user.registered")
    assert data["status_code"] == 200
    (request,) = receiver.requests
    assert request.method == "POST"
    assert json.loads(request.body) == {"user": "ada", "n": 1}
    assert request.headers["webhook-id"] == delivery_id("demo-project", "req-77")
    assert standard_verify(STANDARD_SECRET, request.headers, request.body)
    signed_at = int(request.headers["webhook-timestamp"])
    assert signed_at == data["signed_at"]
    assert before <= signed_at <= int(time.time())
    assert request.headers["content-type"] == "application/json"
    assert request.headers["puraify-event"] == "user.registered"
    assert request.headers["idempotency-key"] == request.headers["webhook-id"]
    assert request.headers["puraify-delivery"] == "req-77"
    assert SIGNATURE_HEADER.lower() not in request.headers
    assert STANDARD_SECRET not in json.dumps(request.headers)


async def test_stripe_style_on_request(receiver: HttpTargetStandIn, egress: HttpClient) -> None:
    data = await send(egress, f"{receiver.base_url}/echo", signature="stripe")
    (request,) = receiver.requests
    header = request.headers[SIGNATURE_HEADER.lower()]
    assert verify_signature(SECRET, header, request.body)
    assert int(header.split(",")[0][2:]) == data["signed_at"]
    assert "webhook-signature" not in request.headers


async def test_caller_headers_cannot_override_the_signature_or_type(
    receiver: HttpTargetStandIn, egress: HttpClient
) -> None:
    await send(
        egress,
        f"{receiver.base_url}/echo",
        headers={
            "X-Tenant": "t1",
            "Content-Type": "text/plain",
            SIGNATURE_HEADER: "t=1,v1=x",
            "Webhook-Id": "forged",
            "webhook-signature": "v1,forged",
        },
    )
    (request,) = receiver.requests
    assert request.headers["x-tenant"] == "t1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == delivery_id("demo-project", "req-77")
    assert SIGNATURE_HEADER.lower() not in request.headers
    assert standard_verify(SECRET, request.headers, request.body)


async def test_410_gone_says_disable_the_endpoint(
    receiver: HttpTargetStandIn, egress: HttpClient
) -> None:
    with pytest.raises(UpstreamError) as info:
        await send(egress, f"{receiver.base_url}/status/410")
    assert info.value.details == {"status_code": 410, "disable": True}


async def test_a_5xx_is_retried_since_the_receiver_deduplicates_by_webhook_id(
    receiver: HttpTargetStandIn, egress: HttpClient
) -> None:
    with pytest.raises(UpstreamUnavailable):
        await send(egress, f"{receiver.base_url}/status/500")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, UpstreamError),
        (401, CredentialRejected),
        (302, UpstreamError),
        (429, RateLimited),
        (503, UpstreamUnavailable),
    ],
)
async def test_receiver_answers_are_classified(
    receiver: HttpTargetStandIn, egress: HttpClient, status: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await send(egress, f"{receiver.base_url}/status/{status}")


async def test_the_egress_policy_applies() -> None:
    async with guarded_client(EgressPolicy()) as strict:
        with pytest.raises(ForbiddenDestination):
            await send(strict, "http://127.0.0.1:9/hook")
        with pytest.raises(ForbiddenDestination, match="scheme"):
            await send(strict, "file:///etc/passwd")


async def test_an_unreachable_receiver_is_retryable(egress: HttpClient) -> None:
    with pytest.raises(UpstreamUnavailable):
        await send(egress, f"http://127.0.0.1:{closed_port()}/hook")


async def test_the_secret_comes_from_the_named_service(
    receiver: HttpTargetStandIn, egress: HttpClient
) -> None:
    credentials = FakeCredentials({("demo-project", "billing-hooks"): "whsec_billing"})
    await send(egress, f"{receiver.base_url}/echo", credentials, secret_service="billing-hooks")
    (request,) = receiver.requests
    assert standard_verify("whsec_billing", request.headers, request.body)
    assert credentials.gets == [("demo-project", "billing-hooks")]
