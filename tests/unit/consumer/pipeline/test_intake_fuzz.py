"""decode_record against thousands of generated hostile records (hypothesis).

Each record's expected outcome comes from how it was built (tests/hostile.py). Whatever the
record, decoding never raises, the outcome is one of the intake's codes, and what comes out can
always be rendered and published: the request id is a valid Kafka key and the error envelope
(or the accepted request's echo) serialises to UTF-8 JSON.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings

from consumer.pipeline.intake import Accepted, IntakeLimits, Rejected, decode_record
from schemas import ErrorCode, ResultEnvelope, error_envelope
from schemas.request import REQUEST_ID_PATTERN
from tests.hostile import KINDS, Hostile, Limits, hostile_records

LIMITS = Limits()
INTAKE_CODES = {ErrorCode.INVALID_JSON, ErrorCode.INVALID_REQUEST, ErrorCode.PAYLOAD_TOO_LARGE}
# FUZZ_EXAMPLES=100000 for a longer hunt; the suite's default keeps it to seconds.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5000"))
HOSTILE_RUNS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def decode(record: Hostile) -> Accepted | Rejected:
    return decode_record(
        record.value,
        [],
        topic="t",
        partition=0,
        offset=7,
        limits=IntakeLimits(LIMITS.max_bytes, LIMITS.max_depth, LIMITS.max_params_bytes),
    )


def check(record: Hostile) -> None:
    result = decode(record)
    now = datetime.now(UTC)
    echo: ResultEnvelope
    if record.intake_code is None:
        assert isinstance(result, Accepted), (record.kind, result)
        echo = error_envelope(
            result.request_id,
            ErrorCode.UNKNOWN_ACTION,
            "m",
            started_at=now,
            finished_at=now,
            metadata=result.request.metadata,
            environment=result.request.environment,
        )
    else:
        assert isinstance(result, Rejected), (record.kind, record.value)
        assert result.code is record.intake_code, (record.kind, result.message, record.value)
        assert result.code in INTAKE_CODES
        echo = error_envelope(
            result.request_id,
            result.code,
            result.message,
            started_at=now,
            finished_at=now,
            action=result.action,
            project=result.project,
        )
    assert re.fullmatch(REQUEST_ID_PATTERN, result.request_id)
    result.request_id.encode("utf-8")  # becomes a Kafka key: must be encodable
    assert json.loads(echo.model_dump_json().encode("utf-8"))["request_id"] == result.request_id


def test_every_hostile_record_gets_its_code() -> None:
    seen: Counter[str] = Counter()

    @HOSTILE_RUNS
    @given(hostile_records(LIMITS))
    def property_(record: Hostile) -> None:
        seen[record.kind.split(":")[0]] += 1
        check(record)

    property_()
    # Every kind was drawn, and often: a strategy that silently stopped producing would
    # otherwise leave its kind of record untested.
    assert set(seen) == set(KINDS), seen
    assert min(seen.values()) >= EXAMPLES // 100, seen
    assert sum(seen.values()) >= EXAMPLES
