"""`send_webhook`: POST a JSON event to a URL, signed with HMAC-SHA256.

Signed as Standard Webhooks by default (`webhook-id` derived from the project and the request
id, `webhook-timestamp`, `webhook-signature: v1,<base64>` over `id.timestamp.body`; secrets
decoded as the reference library does), or Stripe-style with `signature: "stripe"`
(`Puraify-Signature: t=…,v1=<hex>`); `actions.builtin.webhook_signing` has both signers and the
receivers' verifiers. The secret is the project's credential of `secret_service` (default
`webhook`) in the Vault. The URL comes from the request, so the call goes through the egress
policy like `http_request`.

Deliveries are retried after a lost answer or a 5xx: the Standard Webhooks specification asks
the sender to retry failed deliveries ("timeouts, connection resets", non-2xx) and the
receiver to "use the `webhook-id` header as an idempotency key"; every attempt carries the same
`webhook-id` and `Idempotency-Key` (that id), and `Puraify-Delivery` (the request id). A 410 Gone
means "stop sending here": `upstream_error` with `details.disable: true`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from actions.base import Action, ActionContext, ActionParams, ServiceName, upstream_of
from actions.builtin.request_id_header import request_id_header_value
from actions.builtin.webhook_signing import (
    DEFAULT_TOLERANCE_S,
    STANDARD_ID_HEADER,
    STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER,
    STRIPE_SIGNATURE_HEADER,
    delivery_id,
    standard_sign,
    stripe_sign,
    stripe_verify,
)
from actions.egress import egress_url
from actions.errors import (
    CredentialRejected,
    UpstreamError,
    error_for_exception,
    error_for_status,
)
from actions.http import HttpError

# The Stripe-style names this module always exported.
SIGNATURE_HEADER = STRIPE_SIGNATURE_HEADER
sign = stripe_sign
verify_signature = stripe_verify
DEFAULT_SERVICE = "webhook"
__all__ = ["ACTION", "DEFAULT_TOLERANCE_S", "SIGNATURE_HEADER", "sign", "verify_signature"]
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-type"}
)
_SIGNATURE_HEADERS = frozenset(
    {
        STANDARD_ID_HEADER,
        STANDARD_TIMESTAMP_HEADER,
        STANDARD_SIGNATURE_HEADER,
        STRIPE_SIGNATURE_HEADER.lower(),
    }
)


# Seconds a delivery may take when the request names no `timeout_s`.
_DEFAULT_TIMEOUT_S = 10.0


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
    # A floor: below it no call can complete, and the failure would be blamed on the receiver.
    timeout_s: float | None = Field(default=None, ge=0.1, le=60)
    signature: Literal["standard", "stripe"] = Field(
        default="standard",
        description="`standard` (Standard Webhooks headers) or `stripe` (`Puraify-Signature`).",
    )


class SendWebhook(Action[SendWebhookParams]):
    name = "send_webhook"
    params_model = SendWebhookParams
    description = "POSTs a JSON event signed with HMAC-SHA256 (Standard Webhooks or Stripe-style)."

    def upstream(self, params: SendWebhookParams, ctx: ActionContext) -> str | None:
        return upstream_of(params.url)

    async def run(self, params: SendWebhookParams, ctx: ActionContext) -> Mapping[str, Any]:
        url = egress_url(params.url)
        secret = await ctx.token(params.secret_service)
        body = json.dumps(params.payload, separators=(",", ":"), ensure_ascii=False).encode()
        # Signed at each attempt: a retry carries a fresh timestamp over the same id and body.
        timestamp = int(time.time())
        message_id = delivery_id(ctx.project, ctx.request_id)
        headers = {
            k: v
            for k, v in params.headers.items()
            if k.lower() not in _RESERVED_HEADERS | _SIGNATURE_HEADERS
        } | {
            "Content-Type": "application/json",
            "Idempotency-Key": message_id,
            "Puraify-Delivery": request_id_header_value(ctx.request_id),
        }
        key = secret.get_secret_value()
        if params.signature == "standard":
            headers[STANDARD_ID_HEADER] = message_id
            headers[STANDARD_TIMESTAMP_HEADER] = str(timestamp)
            headers[STANDARD_SIGNATURE_HEADER] = standard_sign(key, message_id, timestamp, body)
        else:
            headers[STRIPE_SIGNATURE_HEADER] = stripe_sign(key, timestamp, body)
        if params.event is not None:
            headers["Puraify-Event"] = params.event
        timeout = min(params.timeout_s or _DEFAULT_TIMEOUT_S, 60.0)
        try:
            # The receiver's body is not needed, nor buffered (max_body_bytes=0).
            response = await ctx.egress_http.request(
                "POST", url, content=body, headers=headers, timeout_s=timeout, max_body_bytes=0
            )
        except HttpError as exc:
            # Idempotent by the receiver's de-duplication on the delivery id (see above).
            raise error_for_exception(url.raw_host or "receiver", exc, idempotent=True) from None
        status = response.status
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
        if status == 410:
            raise UpstreamError(
                "the receiver answered 410 Gone: stop sending to this endpoint",
                details={"status_code": 410, "disable": True},
            )
        error = error_for_status("the receiver", response, idempotent=True)
        if error is not None:
            raise error
        return {"status_code": status, "signed_at": timestamp}


ACTION = SendWebhook()
