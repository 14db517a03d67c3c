"""Decoded request records for the replay tests (not a test module)."""

from __future__ import annotations

import json

from consumer.pipeline.intake import Accepted, IntakeLimits, Rejected, decode_record


def decoded(body: object, headers: list[tuple[str, bytes]] | None = None) -> Accepted | Rejected:
    return decode_record(
        json.dumps(body).encode(),
        headers or [],
        topic="requests",
        partition=1,
        offset=7,
        limits=IntakeLimits(10_000),
    )


VALID_BODY = {
    "request_id": "r1",
    "action": "log_message",
    "project": "p",
    "params": {"message": "m"},
}
VALID = decoded(VALID_BODY)
