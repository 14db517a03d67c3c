"""Webhook signatures, both sides: what `send_webhook` sends and what a receiver checks.

Two schemes:

- **Standard Webhooks** (the default): headers `webhook-id`, `webhook-timestamp` (Unix
  seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
  The id is signed, so a receiver may trust it to de-duplicate deliveries: `delivery_id` makes
  it from the project and the request id (distinct between projects, the same on every retry
  and replay, without the `.` the spec forbids in it). The key is what the reference library
  (standard-webhooks/standard-webhooks, libraries/python/standardwebhooks/webhooks.py) makes of
  the secret: `whsec_` dropped if present, the rest base64-decoded, padded or not.
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


def delivery_id(project: str, request_id: str) -> str:
    """The `webhook-id` of a request's delivery: `msg_` and 24 base64url characters of a
    SHA-256 over (project, request id). Two projects using one request id reach a receiver with
    two ids (it de-duplicates on them); no `.` (the spec: the id must not hold one)."""
    # Length-prefixed: no (project, request id) pair spells another's input.
    framed = f"{len(project)}:{project}:{request_id}"
    digest = hashlib.sha256(framed.encode("utf-8", "surrogatepass")).digest()
    return "msg_" + base64.urlsafe_b64encode(digest[:18]).decode()


def standard_key(secret: str) -> bytes:
    """The HMAC key of a secret, as the reference library derives it: `whsec_` dropped when
    present, the rest base64-decoded leniently (padding added, characters outside the
    alphabet skipped). A secret that yields no key that way (no base64 at all) is used as its
    UTF-8 bytes: the reference cannot use it, a hand-written receiver may."""
    encoded = secret.removeprefix(_WHSEC)
    try:
        key = base64.b64decode(encoded + "==")
    except (binascii.Error, ValueError):
        key = b""
    return key or secret.encode()


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
