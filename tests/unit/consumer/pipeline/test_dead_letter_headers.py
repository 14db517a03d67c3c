"""Dead letters: the engine's headers are the only ones with its names, and a letter is made to
fit its topic (the record's own headers dropped, counted) rather than lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumer.broker.dead_letter_size import (
    BATCH_BYTES,
    HEADER_ROOM,
    record_limit_for,
    topic_bytes_for,
    wire_size,
)
from consumer.cli.tail import _dead_letter
from consumer.pipeline.intake import Rejected, header_text
from consumer.pipeline.rendering import (
    ENGINE_HEADERS,
    OutcomeRenderer,
    dead_letter_headers,
    kept_header_name,
)
from consumer.secrets.redaction import SECRETS
from schemas import ErrorCode, ResultEnvelope, error_envelope

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
REJECTED = Rejected("r-1", ErrorCode.INVALID_JSON, "not JSON", None)
FORGED = [
    ("error-code", b"none"),
    ("source-offset", b"999999"),
    ("Error-Message", b"all fine"),
    ("SOURCE-TOPIC", b"elsewhere"),
    ("source-partition", b"0"),
    ("dropped-headers", b"0"),
    ("original-error-code", b"also forged"),
    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("x-app", b"kept as is"),
]


def headers() -> list[tuple[str, bytes]]:
    return dead_letter_headers(
        FORGED, REJECTED, topic="requests", partition=2, offset=41, scope=SECRETS.scope()
    )


def test_only_the_engine_writes_its_header_names() -> None:
    got = headers()
    for name in ENGINE_HEADERS:
        values = [v for k, v in got if k.lower() == name]
        assert len(values) == (0 if name == "dropped-headers" else 1), name
    assert header_text(got, "error-code") == "invalid_json"
    assert header_text(got, "source-offset") == "41"
    assert header_text(got, "source-topic") == "requests"
    assert header_text(got, "error-message") == "not JSON"


def test_the_records_own_headers_are_kept_under_a_prefix() -> None:
    got = dict(headers())
    assert got["original-error-code"] == b"none"
    assert got["original-source-offset"] == b"999999"
    assert got["original-Error-Message"] == b"all fine"
    assert got["original-dropped-headers"] == b"0"
    # Already prefixed: prefixed again, so stripping one prefix gives the record's own name.
    assert got["original-original-error-code"] == b"also forged"
    assert got["traceparent"] == FORGED[7][1]
    assert got["x-app"] == b"kept as is"


def test_the_renaming_is_reversible() -> None:
    names = [n for n, _ in FORGED] + ["original-", "Original-X", "x", "error-codes"]
    renamed = [kept_header_name(n) for n in names]
    assert len(set(renamed)) == len(set(names))
    for name, kept in zip(names, renamed, strict=True):
        assert kept.lower() not in ENGINE_HEADERS
        assert (kept.removeprefix("original-") if kept != name else kept) == name


def test_tail_shows_the_engines_headers_not_the_forged_ones() -> None:
    class Record:
        timestamp = 1_764_000_000_000
        key = b"k"
        value = b"\xff"
        headers = headers()

    entry = _dead_letter(Record())
    assert entry.fields["error"] == {"code": "invalid_json"}
    assert "requests:2:41" in entry.line and "invalid_json: not JSON" in entry.line
    assert "999999" not in entry.line and "none" not in entry.line


def envelope() -> ResultEnvelope:
    return error_envelope(
        "r-1", ErrorCode.INVALID_JSON, "not JSON", started_at=NOW, finished_at=NOW
    )


def test_the_topic_is_made_for_the_record_limit_plus_header_room() -> None:
    assert topic_bytes_for(1_048_576) == 1_048_576 + HEADER_ROOM == 1_114_112
    assert record_limit_for(topic_bytes_for(2_000_000)) == 2_000_000
    # Never below a full producer batch: small dead letters share one.
    assert topic_bytes_for(5_000) == BATCH_BYTES + HEADER_ROOM
    # The 1,048,400-byte record of the finding, with the engine's headers: over the broker's
    # default 1,048,588, within the topic the engine makes.
    letter = headers()
    assert wire_size(None, b"x" * 1_048_400, letter) > 1_048_588
    assert wire_size(None, b"x" * 1_048_400, letter) <= topic_bytes_for(1_048_576)


def test_a_letter_within_the_topic_goes_out_whole() -> None:
    renderer = OutcomeRenderer("results", "dead", 2_000_000, topic_bytes_for(1_048_576))
    letter = (b"k", b"x" * 1_048_400, headers())
    sent = renderer.render(envelope(), scope=SECRETS.scope(), traceparent=None, dead_letter=letter)
    assert [m.topic for m in sent] == ["dead", "results"]
    assert sent[0].value == letter[1] and sent[0].headers == letter[2]


def test_a_letter_whose_own_headers_do_not_fit_goes_out_without_them() -> None:
    # 60,000 tiny headers named like the engine's: renaming adds 9 bytes to each.
    flood = [("error-code", b"x")] * 60_000
    many = dead_letter_headers(
        flood, REJECTED, topic="requests", partition=0, offset=5, scope=SECRETS.scope()
    )
    value = b"v" * 1_000_000
    assert wire_size(b"k", value, many) > topic_bytes_for(1_048_576)
    renderer = OutcomeRenderer("results", "dead", 2_000_000, topic_bytes_for(1_048_576))
    sent = renderer.render(
        envelope(), scope=SECRETS.scope(), traceparent=None, dead_letter=(b"k", value, many)
    )
    assert [m.topic for m in sent] == ["dead", "results"]
    dead = sent[0]
    assert dead.key == b"k" and dead.value == value  # the original bytes, unchanged
    assert dict(dead.headers)["dropped-headers"] == b"60000"
    assert header_text(dead.headers, "error-code") == "invalid_json"
    assert header_text(dead.headers, "source-offset") == "5"
    assert wire_size(dead.key, dead.value, dead.headers) <= topic_bytes_for(1_048_576)


def test_a_long_error_message_is_cut_when_the_letter_must_shrink() -> None:
    long = Rejected("r-1", ErrorCode.INVALID_REQUEST, "é" * 5_000, None)
    many = dead_letter_headers(
        [("x", b"y" * 70_000)], long, topic="t", partition=0, offset=1, scope=SECRETS.scope()
    )
    renderer = OutcomeRenderer("results", "dead", 2_000_000, 60_000)
    [dead, _result] = renderer.render(
        envelope(), scope=SECRETS.scope(), traceparent=None, dead_letter=(None, b"v", many)
    )
    message = dict(dead.headers)["error-message"]
    assert len(message) <= 1_024 + 3
    assert message.decode("utf-8").endswith("…")


@pytest.mark.parametrize("topic_bytes", [2_000, 70_000])
def test_a_value_that_cannot_fit_at_all_still_lets_the_envelope_out(topic_bytes: int) -> None:
    renderer = OutcomeRenderer("results", "dead", 2_000_000, topic_bytes)
    sent = renderer.render(
        envelope(),
        traceparent=None,
        scope=SECRETS.scope(),
        dead_letter=(None, b"v" * 100_000, headers()),
    )
    assert [m.topic for m in sent] == ["results"]


def test_the_dead_letter_topics_size_is_what_fits() -> None:
    renderer = OutcomeRenderer("results", "dead", 2_000_000, 100_000)
    small = renderer.render(
        envelope(), scope=SECRETS.scope(), traceparent=None, dead_letter=(None, b"v" * 99_000, [])
    )
    assert [m.topic for m in small] == ["dead", "results"]
    big = renderer.render(
        envelope(), scope=SECRETS.scope(), traceparent=None, dead_letter=(None, b"v" * 100_000, [])
    )
    assert [m.topic for m in big] == ["results"]
