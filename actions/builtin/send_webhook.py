"""`send_webhook`: POST a JSON event to a URL, signed with HMAC-SHA256 like Stripe's webhooks.

`Puraify-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. The
receiver recomputes the HMAC over the timestamp and the exact bytes it received, compares in
constant time and refuses old timestamps (replays); `verify_signature` below is the reference.
The secret is the project's credential of `secret_service` (default `webhook`) in the Vault.
The URL comes from the request, so the call goes through the egress policy like `http_request`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import Field

from actions.base import Action, ActionContext, ActionParams, ServiceName, upstream_of
from actions.egress import egress_url
from actions.errors import (
    CredentialRejected,
    UpstreamError,
    error_for_exception,
    error_for_status,
)
from actions.request_id_header import request_id_header_value

SIGNATURE_HEADER = "Puraify-Signature"
DEFAULT_SERVICE = "webhook"
DEFAULT_TOLERANCE_S = 300
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-type"}
)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """What a receiver does: any `v1` matching, and the timestamp within the tolerance."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


class SendWebhookParams(ActionParams):
    url: str = Field(min_length=1, max_length=8192, description="The receiver's endpoint.")
    payload: Any = Field(description="The JSON body (any JSON value).")
    event: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Sent as `Puraify-Event`, e.g. `user.registered`.",
    )
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    secret_service: ServiceName = Field(
        default=DEFAULT_SERVICE, description="Vault service whose credential is the HMAC secret."
    )
    timeout_s: float | None = Field(default=None, gt=0, le=60)


class SendWebhook(Action[SendWebhookParams]):
    name = "send_webhook"
    params_model = SendWebhookParams
    description = "POSTs a JSON event with an HMAC-SHA256 signature (t=...,v1=...)."

    def upstream(self, params: SendWebhookParams, ctx: ActionContext) -> str | None:
        return upstream_of(params.url)

    async def run(self, params: SendWebhookParams, ctx: ActionContext) -> Mapping[str, Any]:
        url = egress_url(params.url)
        secret = await ctx.token(params.secret_service)
        body = json.dumps(params.payload, separators=(",", ":"), ensure_ascii=False).encode()
        # Signed at each attempt: a retry carries a fresh timestamp over the same body.
        timestamp = int(time.time())
        delivery = request_id_header_value(ctx.request_id)
        headers = {
            k: v for k, v in params.headers.items() if k.lower() not in _RESERVED_HEADERS
        } | {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery,
            "Puraify-Delivery": delivery,
            SIGNATURE_HEADER: sign(secret.get_secret_value(), timestamp, body),
        }
        if params.event is not None:
            headers["Puraify-Event"] = params.event
        timeout = min(params.timeout_s or ctx.config.http_default_timeout_s, 60.0)
        try:
            request = ctx.egress_http.build_request(
                "POST", url, content=body, headers=headers, timeout=timeout
            )
            response = await ctx.egress_http.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise error_for_exception(url.host or "receiver", exc) from None
        await response.aclose()  # the receiver's body is not needed, nor buffered
        status = response.status_code
        if status == 401:
            # The receiver refused the signature: the secret may have been rotated.
            raise CredentialRejected(
                params.secret_service,
                "the receiver rejected the signature",
                details={"status_code": 401},
            )
        if 300 <= status < 400:
            raise UpstreamError(
                f"the receiver answered a redirect ({status}); webhooks are not redirected",
                details={"status_code": status},
            )
        error = error_for_status("the receiver", response)
        if error is not None:
            raise error
        return {"status_code": status, "signed_at": timestamp}


ACTION = SendWebhook()
