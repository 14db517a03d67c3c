"""Intake: one consumed record -> a validated request, or the reason it cannot be one.

A record is judged in a fixed order, and the first failure names its code:
size (`payload_too_large`) -> UTF-8 -> JSON syntax, including numbers that are not finite,
nesting too deep for the parser and string escapes that are not Unicode (lone surrogates) ->
a JSON object (all `invalid_json`) -> duplicate keys anywhere -> nesting deeper than
`max_json_depth` (both `invalid_request`) -> params larger than `max_params_bytes`
(`payload_too_large`) -> the request schema -> the reply headers, a reply topic that
`reply_topics` does not allow or a malformed one (both `invalid_request`,
`consumer.pipeline.reply`). The limits, the allowed reply topics among them, are one
`IntakeLimits`, shared by the engine and `replay`.

Duplicate keys are refused, not resolved: parsers disagree on which one wins (first, last, or
an error), so the Gateway and the engine could read two different requests from one record.

One decoder reads every record: the stdlib's, with an object hook that notes duplicate keys and
number hooks that refuse what JSON cannot carry back out; it names every failure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import ValidationError

from actions.limits import (
    MAX_JSON_DEPTH,
    holds_lone_surrogate,
    json_depth_exceeds,
    may_hold_surrogates,
)
from actions.runtime.preparation import describe_validation_error
from consumer.pipeline.reply import NO_REPLY_TOPICS, ReplyTo, ReplyTopics, read_reply
from consumer.pipeline.settings import IntakeLimitSettings
from schemas import ErrorCode, ExecutionRequest
from schemas.request import PROJECT_PATTERN, REQUEST_ID_PATTERN

Headers = Sequence[tuple[str, bytes]]

# W3C trace-context: version ff, an all-zero trace id or parent id are invalid.
_TRACEPARENT = re.compile(
    r"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}"
)
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
_PROJECT = re.compile(PROJECT_PATTERN)


@dataclass(frozen=True)
class IntakeLimits:
    """The limits a record is judged by: one value, built from the settings, that the engine
    and `replay` both hand to `decode_record`, so they cannot judge a record differently."""

    max_record_bytes: int
    max_json_depth: int = MAX_JSON_DEPTH
    max_params_bytes: int | None = None  # None: params are not measured
    reply_topics: ReplyTopics = NO_REPLY_TOPICS  # the topics a request may name for its reply

    @classmethod
    def from_settings(cls, settings: IntakeLimitSettings) -> IntakeLimits:
        return cls(
            settings.max_record_bytes,
            settings.max_json_depth,
            settings.max_params_bytes,
            ReplyTopics(settings.reply_topics),
        )


class Accepted(NamedTuple):
    """A valid request. (A named tuple: one is made per record, at a third of a frozen
    dataclass's cost.)"""

    request: ExecutionRequest
    request_id: str
    traceparent: str | None
    reply: ReplyTo | None = None  # where a copy of its envelope goes, if it asked


@dataclass(frozen=True)
class Rejected:
    """A record that is not a valid request; it still gets exactly one (error) envelope."""

    request_id: str
    code: ErrorCode
    message: str
    traceparent: str | None
    # Echoed when the record got far enough to know them.
    action: str | None = None
    project: str | None = None
    # A rejected record's requester still waits: it gets its copy when its reply was valid.
    reply: ReplyTo | None = None


def project_of(decoded: Accepted | Rejected | None) -> str | None:
    """The project a record is on behalf of, when intake got far enough to know it."""
    if decoded is None:
        return None
    return decoded.request.project if isinstance(decoded, Accepted) else decoded.project


def header_text(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            try:
                return value.decode("utf-8")
            except (UnicodeDecodeError, AttributeError):
                return None
    return None


def decode_record(
    value: bytes | None,
    headers: Headers,
    *,
    topic: str,
    partition: int,
    offset: int,
    limits: IntakeLimits,
) -> Accepted | Rejected:
    traceparent = header_text(headers, "traceparent")
    if traceparent is not None and not _TRACEPARENT.fullmatch(traceparent):
        traceparent = None
    header_id = header_text(headers, "request-id")
    fallback_id = (
        header_id
        if header_id is not None and _REQUEST_ID.fullmatch(header_id)
        else f"{topic}:{partition}:{offset}"
    )
    reply = read_reply(headers, limits.reply_topics) if headers else None
    reply_to = reply if isinstance(reply, ReplyTo) else None

    def reject(code: ErrorCode, message: str, body: Any = None) -> Rejected:
        fields = body if isinstance(body, dict) else {}
        own_id = fields.get("request_id")
        return Rejected(
            request_id=own_id
            if isinstance(own_id, str) and _REQUEST_ID.fullmatch(own_id)
            else fallback_id,
            code=code,
            message=message,
            traceparent=traceparent,
            action=_short_text(fields.get("action")),
            project=fields.get("project") if _valid_project(fields.get("project")) else None,
            reply=reply_to,
        )

    if value is None:
        return reject(ErrorCode.INVALID_JSON, "the record has no value (tombstone)")
    if len(value) > limits.max_record_bytes:
        return reject(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"the record is {len(value)} bytes; the limit is {limits.max_record_bytes}",
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(ErrorCode.INVALID_JSON, f"the value is not UTF-8 (byte {exc.start})")
    duplicates: list[str] = []
    _OBJECTS.duplicates = duplicates
    try:
        body = _DECODER.decode(text)
    except RecursionError:
        return reject(ErrorCode.INVALID_JSON, "the JSON is nested too deeply")
    except ValueError as exc:
        return reject(ErrorCode.INVALID_JSON, f"the value is not JSON: {exc}")
    if may_hold_surrogates(text) and holds_lone_surrogate(body):
        return reject(
            ErrorCode.INVALID_JSON,
            "the JSON holds a string that is not Unicode (lone surrogate)",
        )
    if not isinstance(body, dict):
        return reject(
            ErrorCode.INVALID_JSON, f"the value is JSON but not an object ({type(body).__name__})"
        )
    if duplicates:
        return reject(
            ErrorCode.INVALID_REQUEST,
            f"duplicate key {_short_text(duplicates[0]) or '(unprintable)'!r} in a JSON object",
            body,
        )
    # Nesting needs an opening bracket per level: a text with few cannot be too deep, and the
    # walk (~4 us) is skipped.
    depth = limits.max_json_depth
    if value.count(b"{") + value.count(b"[") > depth and json_depth_exceeds(body, depth):
        return reject(
            ErrorCode.INVALID_REQUEST,
            f"the request nests deeper than {limits.max_json_depth} levels",
            body,
        )
    # The params are smaller than the record: only a record over the limit needs measuring.
    max_params_bytes = limits.max_params_bytes
    if max_params_bytes is not None and len(value) > max_params_bytes and "params" in body:
        size = len(_compact_json(body["params"]))
        if size > max_params_bytes:
            return reject(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"params are {size} bytes as compact JSON; the limit is {max_params_bytes}",
                body,
            )
    try:
        request = ExecutionRequest.model_validate(body)
    except ValidationError as exc:
        return reject(ErrorCode.INVALID_REQUEST, describe_validation_error(exc, ""), body)
    if isinstance(reply, str):  # its action does not run: the requester named another topic
        return reject(ErrorCode.INVALID_REQUEST, reply, body)
    return Accepted(request, request.request_id or fallback_id, traceparent, reply_to)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    number = float(literal)
    # 1e999 parses as infinity, which JSON cannot carry back out (envelopes, http bodies).
    if not math.isfinite(number):
        raise ValueError(f"the number {literal[:32]} is out of range")
    return number


class _Objects:
    """The decoder's object hook: builds each object and notes the first duplicate key of the
    record being decoded (`duplicates`, reset per record: decoding is synchronous)."""

    def __init__(self) -> None:
        self.duplicates: list[str] = []

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs) and not self.duplicates:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    self.duplicates.append(key)
                    break
                seen.add(key)
        return obj


_OBJECTS = _Objects()
# One decoder for every record: building one (its scanner) per call cost ~1.5 us.
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_OBJECTS
)


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _valid_project(value: Any) -> bool:
    return (
        isinstance(value, str)
        and _PROJECT.fullmatch(value) is not None
        and value not in {".", ".."}
    )


def _short_text(value: Any) -> str | None:
    """An action name worth echoing: short and printable (it ends up in logs and envelopes)."""
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable():
        return value
    return None
