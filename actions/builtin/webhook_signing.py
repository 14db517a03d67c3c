"""Webhook signatures, both sides: what `send_webhook` sends and what a receiver checks.

Two schemes:

- **Standard Webhooks** (the default): headers `webhook-id`, `webhook-timestamp` (Unix
  seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
  The id is signed, so a receiver may trust it to de-duplicate deliveries. A `whsec_` secret is
  base64 after the prefix (the key is the decoded bytes); any other secret is its UTF-8 bytes.
- **Stripe-style** (`signature: "stripe"`): `Puraify-Signature: t=<timestamp>,v1=<hex
  HMAC-SHA256(secret, "<t>.<body>")>`.

A receiver recomputes the HMAC over the exact bytes it received, compares in constant time, and
refuses timestamps outside its tolerance (replays). The verifiers below are that reference.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
STRIPE_SIGNATURE_HEADER = "Puraify-Signature"
DEFAULT_TOLERANCE_S = 300
_WHSEC = "whsec_"


def standard_key(secret: str) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` decoded, else the secret's UTF-8 bytes."""
    if secret.startswith(_WHSEC):
        try:
            return base64.b64decode(secret[len(_WHSEC) :], validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: used as written, like any other secret
    return secret.encode()


def standard_sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for `body` with this id and timestamp."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """A receiver's check: the three headers present, the timestamp within the tolerance, and
    any of the space-separated `v1,` signatures matching."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get(STANDARD_ID_HEADER)
    stamp = lowered.get(STANDARD_TIMESTAMP_HEADER, "")
    signatures = lowered.get(STANDARD_SIGNATURE_HEADER)
    if not message_id or not signatures or not stamp.isdigit():
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = standard_sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures.split())


def stripe_sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Puraify-Signature` value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def stripe_verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """A receiver's check of `Puraify-Signature`: any `v1` matching, the timestamp in range."""
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
    expected = stripe_sign(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
