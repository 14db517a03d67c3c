"""OutcomeRenderer: what goes out for a record, and that no record can pin its partition by
being too large or unrenderable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from consumer.pipeline.intake import Rejected
from consumer.pipeline.rendering import OutcomeRenderer, dead_letter_headers, render_envelope
from consumer.secrets.redaction import SECRETS
from schemas import ErrorCode, ResultEnvelope, error_envelope, success_envelope

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


# A record's scope holding none of its own secrets: what every render takes.
SCOPE = SECRETS.scope()


def envelope_bytes(subject: ResultEnvelope) -> bytes:
    return render_envelope(subject, SCOPE)[1]


def renderer(max_bytes: int = 1_000_000) -> OutcomeRenderer:
    return OutcomeRenderer("results", "dead", max_bytes)


def envelope(data: dict[str, Any], metadata: dict[str, Any] | None = None) -> Any:
    return success_envelope(
        "req-1",
        data,
        action="log_message",
        project="p",
        started_at=NOW,
        finished_at=NOW,
        attempts=1,
        metadata=metadata,
    )


def test_envelope_is_keyed_by_request_id_with_traceparent() -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    [sent] = renderer().render(envelope({"logged": True}), traceparent=trace, scope=SCOPE)
    assert sent.topic == "results" and sent.key == b"req-1"
    assert ("traceparent", trace.encode()) in sent.headers
    assert ("request-id", b"req-1") in sent.headers


def test_dead_letter_goes_first_with_original_key_and_bytes() -> None:
    letter = (b"k", b"\xff not json", [("h", b"v")])
    sent = renderer().render(envelope({}), traceparent=None, dead_letter=letter, scope=SCOPE)
    assert [(m.topic, m.key, m.value) for m in sent] == [
        ("dead", b"k", b"\xff not json"),
        ("results", b"req-1", sent[1].value),
    ]
    assert sent[0].headers == [("h", b"v")]


def test_an_envelope_too_large_is_replaced_not_retried_forever() -> None:
    big = envelope({"logged": True}, metadata={"blob": "x" * 5_000})
    [sent] = renderer(max_bytes=2_000).render(big, traceparent=None, scope=SCOPE)
    assert sent.value is not None and b"blob" not in sent.value
    assert b'"internal_error"' in sent.value and b'"original_status":"success"' in sent.value


def test_shrink_keeps_key_and_headers() -> None:
    [sent] = renderer().render(envelope({"x": "y" * 100}), traceparent=None, scope=SCOPE)
    small = renderer().shrink(sent)
    assert small.key == sent.key and small.headers == sent.headers
    assert small.value is not None and b"was too large to publish" in small.value


def test_a_dead_letter_too_large_still_lets_the_envelope_out() -> None:
    sent = renderer(max_bytes=2_000).render(
        envelope({}), traceparent=None, dead_letter=(None, b"y" * 5_000, []), scope=SCOPE
    )
    assert [m.topic for m in sent] == ["results"]


def test_envelopes_and_dead_letter_headers_are_scrubbed_of_secrets() -> None:
    scope = SECRETS.scope()
    scope.hold("sk-record-secret-123")
    SECRETS.add_engine_secret("sk-engine-secret-123")
    [sent] = renderer().render(
        envelope({"echo": "Bearer sk-record-secret-123 sk-engine-secret-123"}),
        traceparent=None,
        scope=scope,
    )
    assert sent.value is not None and b"sk-record-secret-123" not in sent.value
    assert b"sk-engine-secret-123" not in sent.value
    rejected = Rejected("r", ErrorCode.INVALID_JSON, "saw sk-engine-secret-123", None)
    headers = dict(dead_letter_headers([], rejected, topic="t", partition=1, offset=7, scope=scope))
    assert b"sk-engine-secret-123" not in headers["error-message"]
    assert headers["source-offset"] == b"7" and headers["error-code"] == b"invalid_json"
    scope.close()


def test_an_envelope_pydantic_cannot_render_is_replaced() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = {"a": deep}
    [sent] = renderer().render(envelope({"deep": deep}), traceparent=None, scope=SCOPE)
    assert sent.value is not None
    assert b'"internal_error"' in sent.value and b"could not be rendered" in sent.value


@pytest.mark.parametrize(
    "data",
    [
        {"logged": True},
        {"n": 1, "f": 0.1, "big_float": 1e300, "none": None, "list": [1, "a", {"b": [2.5]}]},
        {"text": "José ✓ 😀", "controls": "\x00\x1f\x7f\u2028"},
        {"big": 2**70},  # beyond orjson's 64 bits: pydantic renders it
        {"keys": {1: "int key"}},  # not a string key: pydantic renders it
        {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)},  # pydantic's datetime format
        {"set": {1}},  # not JSON: pydantic renders it
    ],
)
def test_envelope_bytes_are_pydantic_s_rendering(data: dict[str, Any]) -> None:
    for subject in (
        envelope(data, metadata={"flow": "x"}),
        error_envelope(
            "req-2",
            ErrorCode.UPSTREAM_ERROR,
            "refused",
            started_at=NOW,
            finished_at=NOW,
            details=data,
        ),
    ):
        assert json.loads(envelope_bytes(subject)) == json.loads(subject.model_dump_json())


def test_envelope_bytes_keep_every_field_of_the_schema() -> None:
    rendered = json.loads(envelope_bytes(envelope({"logged": True})))
    # `deduplicated` is absent unless true ("true when present", the contract says).
    assert set(rendered) == set(ResultEnvelope.model_fields) - {"deduplicated"}
    assert rendered["started_at"] == "2026-11-26T09:00:00.000Z"


def test_deduplicated_is_absent_unless_true() -> None:
    plain = envelope({"ok": True})
    marked = plain.model_copy(update={"deduplicated": True, "attempts": 0})
    assert "deduplicated" not in json.loads(envelope_bytes(plain))
    assert json.loads(envelope_bytes(marked))["deduplicated"] is True
    for subject in (plain, marked):
        assert json.loads(envelope_bytes(subject)) == json.loads(subject.model_dump_json())
