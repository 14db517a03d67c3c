"""consumer/intake.py: decode_record turns any record into Accepted or Rejected."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from actions.limits import MAX_JSON_DEPTH
from consumer.pipeline.intake import Accepted, Headers, IntakeLimits, Rejected, decode_record
from schemas import ErrorCode, error_envelope

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
VALID: dict[str, Any] = {"action": "send_slack", "project": "demo", "params": {"channel": "#g"}}


def decode(
    value: bytes | None, headers: Headers = (), max_bytes: int = 1_000_000
) -> Accepted | Rejected:
    return decode_record(
        value,
        headers,
        topic="execution.requests",
        partition=3,
        offset=41,
        limits=IntakeLimits(max_bytes),
    )


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def rejected(result: Accepted | Rejected) -> Rejected:
    assert isinstance(result, Rejected), result
    return result


def accepted(result: Accepted | Rejected) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def test_valid_request_is_accepted() -> None:
    result = accepted(decode(encode({**VALID, "request_id": "abc"})))
    assert result.request.action == "send_slack"
    assert result.request_id == "abc"
    assert result.traceparent is None


def test_tombstone() -> None:
    result = rejected(decode(None))
    assert result.code is ErrorCode.INVALID_JSON
    assert "tombstone" in result.message
    assert result.request_id == "execution.requests:3:41"
    assert result.action is None and result.project is None


def test_over_max_bytes_is_payload_too_large() -> None:
    value = encode({**VALID, "request_id": "big-1", "params": {"x": "y" * 500}})
    result = rejected(decode(value, max_bytes=100))
    assert result.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert str(len(value)) in result.message and "100" in result.message
    # The body is not parsed: its request_id is not trusted.
    assert result.request_id == "execution.requests:3:41"


def test_exactly_max_bytes_is_fine() -> None:
    value = encode(VALID)
    accepted(decode(value, max_bytes=len(value)))


def test_not_utf8() -> None:
    result = rejected(decode(b'{"action": "\xff"}'))
    assert result.code is ErrorCode.INVALID_JSON
    assert "UTF-8" in result.message


@pytest.mark.parametrize("value", [b"", b"{", b"not json", b'{"a": 1,}', b"{'a': 1}"])
def test_not_json(value: bytes) -> None:
    result = rejected(decode(value))
    assert result.code is ErrorCode.INVALID_JSON
    assert "not JSON" in result.message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    value = b'{"action": "a", "project": "p", "params": {"x": ' + constant.encode() + b"}}"
    result = rejected(decode(value))
    assert result.code is ErrorCode.INVALID_JSON
    assert constant.lstrip("-") in result.message


@pytest.mark.parametrize(
    ("value", "kind"), [(b"[]", "list"), (b'"text"', "str"), (b"42", "int"), (b"null", "NoneType")]
)
def test_json_that_is_not_an_object(value: bytes, kind: str) -> None:
    result = rejected(decode(value))
    assert result.code is ErrorCode.INVALID_JSON
    assert kind in result.message


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_is_invalid_json_without_crashing(opener: bytes) -> None:
    result = rejected(decode(opener * 100_000))
    assert result.code is ErrorCode.INVALID_JSON


def test_deep_but_complete_nesting_is_invalid_json() -> None:
    result = rejected(decode(b"[" * 100_000 + b"]" * 100_000))
    assert result.code is ErrorCode.INVALID_JSON
    assert "deeply" in result.message


def test_accepted_metadata_can_be_echoed_in_an_envelope() -> None:
    # json.loads accepts ~1000 levels; every accepted request must still get its envelope.
    metadata = b'{"a":' * 300 + b"1" + b"}" * 300
    value = b'{"action": "a", "project": "p", "params": {}, "metadata": ' + metadata + b"}"
    result = decode(value)
    if isinstance(result, Rejected):
        assert result.code in (ErrorCode.INVALID_JSON, ErrorCode.INVALID_REQUEST)
        return
    now = datetime.now(UTC)
    envelope = error_envelope(
        result.request_id,
        ErrorCode.UNKNOWN_ACTION,
        "m",
        started_at=now,
        finished_at=now,
        metadata=result.request.metadata,
    )
    assert json.loads(envelope.model_dump_json())["request_id"] == result.request_id


@pytest.mark.parametrize("missing", ["action", "project", "params"])
def test_missing_field_is_invalid_request_naming_it(missing: str) -> None:
    body = {k: v for k, v in VALID.items() if k != missing}
    result = rejected(decode(encode(body)))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert result.message == f"{missing}: Field required"


def test_unknown_field_is_invalid_request_naming_it() -> None:
    result = rejected(decode(encode({**VALID, "paramz": {}})))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert result.message.startswith("paramz:")


def test_wrong_type_is_invalid_request_without_echoing_the_value() -> None:
    result = rejected(decode(encode({**VALID, "params": "secret-param-value"})))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert result.message.startswith("params:")
    assert "secret-param-value" not in result.message


def test_request_id_from_the_body() -> None:
    headers = [("request-id", b"from-header")]
    assert accepted(decode(encode({**VALID, "request_id": "from-body"}), headers)).request_id == (
        "from-body"
    )


def test_request_id_from_the_header() -> None:
    headers = [("Request-ID", b"from-header")]
    assert accepted(decode(encode(VALID), headers)).request_id == "from-header"


def test_request_id_from_the_header_on_a_rejected_record() -> None:
    assert rejected(decode(b"nope", [("request-id", b"hdr-1")])).request_id == "hdr-1"


def test_deterministic_request_id() -> None:
    first = accepted(decode(encode(VALID)))
    second = accepted(decode(encode(VALID)))
    assert first.request_id == second.request_id == "execution.requests:3:41"
    other = decode_record(
        encode(VALID), [], topic="t", partition=0, offset=7, limits=IntakeLimits(10_000)
    )
    assert other.request_id == "t:0:7"


@pytest.mark.parametrize(
    "header",
    [b"", b"a\nb", b"a\x00", b"x" * 129, b"\xff\xfe", b"abc\n"],
    ids=["empty", "newline", "nul", "too-long", "not-utf8", "trailing-newline"],
)
def test_invalid_request_id_header_falls_back_to_the_offset(header: bytes) -> None:
    result = accepted(decode(encode(VALID), [("request-id", header)]))
    assert result.request_id == "execution.requests:3:41"


def test_invalid_request_echoes_valid_action_project_and_request_id() -> None:
    body = {"request_id": "rid-7", "action": "send_slack", "project": "demo", "params": []}
    result = rejected(decode(encode(body)))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert (result.request_id, result.action, result.project) == ("rid-7", "send_slack", "demo")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("project", "a/b"),
        ("project", ".."),
        ("project", "demo\n"),
        ("project", 7),
        ("action", ""),
        ("action", "x" * 129),
        ("action", ["send_slack"]),
    ],
)
def test_invalid_request_does_not_echo_an_invalid_action_or_project(field: str, value: Any) -> None:
    result = rejected(decode(encode({**VALID, field: value})))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert getattr(result, field) is None


@pytest.mark.parametrize("request_id", ["", "a\nb", "x" * 129, 12, "rid\n"])
def test_invalid_request_id_in_the_body_is_not_echoed(request_id: Any) -> None:
    result = rejected(decode(encode({**VALID, "request_id": request_id})))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert result.request_id == "execution.requests:3:41"


def test_valid_traceparent_is_kept() -> None:
    result = accepted(decode(encode(VALID), [("traceparent", TRACEPARENT.encode())]))
    assert result.traceparent == TRACEPARENT
    assert rejected(decode(b"x", [("traceparent", TRACEPARENT.encode())])).traceparent == (
        TRACEPARENT
    )


@pytest.mark.parametrize(
    "header",
    [
        b"garbage",
        TRACEPARENT.upper().encode(),
        TRACEPARENT[:-1].encode(),
        (TRACEPARENT + "0").encode(),
        (TRACEPARENT + "\n").encode(),
        b"\xff",
    ],
    ids=["garbage", "uppercase", "short", "long", "trailing-newline", "not-utf8"],
)
def test_malformed_traceparent_is_dropped(header: bytes) -> None:
    result = accepted(decode(encode(VALID), [("traceparent", header)]))
    assert result.traceparent is None


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    ],
    ids=["zero-trace-id", "zero-parent-id", "version-ff"],
)
def test_invalid_w3c_traceparent_is_dropped(traceparent: str) -> None:
    result = decode(encode(VALID), headers=[("traceparent", traceparent.encode())])
    assert accepted(result).traceparent is None


def test_a_request_nested_past_the_limit_is_invalid_request_with_its_id() -> None:
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 1):
        deep = {"a": deep}
    result = rejected(decode(encode({**VALID, "request_id": "deep-1", "metadata": deep})))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert result.request_id == "deep-1"


@pytest.mark.parametrize(
    "value",
    [
        b'{"action": "a", "action": "b", "project": "p", "params": {}}',
        b'{"action": "a", "project": "p", "params": {"x": 1, "x": 1}}',
        b'{"action": "a", "project": "p", "params": {}, "metadata": {"l": [{"k": 1, "k": 2}]}}',
    ],
    ids=["top-level", "params", "nested-in-metadata"],
)
def test_duplicate_keys_are_invalid_request(value: bytes) -> None:
    result = rejected(decode(value))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert result.message.startswith("duplicate key")


@pytest.mark.parametrize("escape", [r"\ud800", r"\udfff", r"\udc00\ud800", r"\ud83dx"])
def test_lone_surrogate_escapes_are_invalid_json(escape: str) -> None:
    value = (
        '{"request_id": "r' + escape + '", "action": "a", "project": "p", "params": {}}'
    ).encode()
    result = rejected(decode(value, [("request-id", b"hdr")]))
    assert result.code is ErrorCode.INVALID_JSON
    assert result.request_id == "hdr"  # the body's id cannot be a Kafka key


def test_a_surrogate_pair_escape_is_fine() -> None:
    value = b'{"action": "a", "project": "p", "params": {"m": "\\ud83d\\ude00"}}'
    assert accepted(decode(value)).request.params == {"m": "\U0001f600"}


@pytest.mark.parametrize("number", [b"1e999", b"-1e400"])
def test_numbers_beyond_float_range_are_invalid_json(number: bytes) -> None:
    result = rejected(decode(b'{"action": "a", "project": "p", "params": {"n": ' + number + b"}}"))
    assert result.code is ErrorCode.INVALID_JSON


def test_max_depth_is_a_setting() -> None:
    body = {**VALID, "metadata": {"a": {"b": 1}}}  # depth 3
    deep_enough = IntakeLimits(100_000, max_json_depth=3)
    assert isinstance(decode_record(encode(body), [], **LOCATION, limits=deep_enough), Accepted)
    too_shallow = IntakeLimits(100_000, max_json_depth=2)
    result = rejected(decode_record(encode(body), [], **LOCATION, limits=too_shallow))
    assert result.code is ErrorCode.INVALID_REQUEST
    assert "deeper than 2" in result.message


def test_params_over_max_params_bytes_are_payload_too_large() -> None:
    params = {"channel": "#g", "text": "x" * 100}
    size = len(json.dumps(params, separators=(",", ":")))
    value = json.dumps({**VALID, "request_id": "big-params", "params": params}, indent=8).encode()
    at_limit = IntakeLimits(100_000, max_params_bytes=size)
    assert isinstance(decode_record(value, [], **LOCATION, limits=at_limit), Accepted)
    over = IntakeLimits(100_000, max_params_bytes=size - 1)
    result = rejected(decode_record(value, [], **LOCATION, limits=over))
    assert result.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert f"params are {size} bytes" in result.message
    # The body was parsed: its id and names are known and echoed.
    assert (result.request_id, result.action) == ("big-params", "send_slack")


LOCATION: dict[str, Any] = {"topic": "t", "partition": 0, "offset": 1}
