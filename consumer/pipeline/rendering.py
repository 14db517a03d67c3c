"""What goes out for a record: its result envelope (keyed by request_id) and, for a record the
engine cannot understand, its dead letter (original key, bytes and headers, plus ours).

Publishing and committing them is `consumer.partitions.channel`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from pydantic import BaseModel

from actions.limits import escape_lone_surrogates, holds_lone_surrogate
from consumer.broker.dead_letter_size import wire_size
from consumer.ops.logging import get_logger
from consumer.ops.redaction import SECRETS, RedactionScope
from consumer.pipeline.envelopes import replacement
from consumer.pipeline.intake import Rejected
from schemas import ErrorInfo, ResultEnvelope, format_timestamp

Headers = list[tuple[str, bytes]]
# (original key, original value, headers)
DeadLetter = tuple[bytes | None, bytes | None, Headers]

# Retrying these cannot help: the record itself is too large for the producer or the broker.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


def envelope_bytes(envelope: ResultEnvelope, scope: RedactionScope | None = None) -> bytes:
    """The envelope as JSON, scrubbed of `scope`'s secrets (default: the engine's own) on its
    values before rendering, and rendered as `model_dump_json` renders it (a test holds them
    equal field for field) at a fraction of its cost: orjson on the model's fields. What
    orjson cannot encode as pydantic would (integers beyond 64 bits, lone surrogates, keys
    that are not strings, types outside JSON) goes through `model_dump_json`."""
    scrubbed = scrubbed_envelope(envelope, SECRETS.engine_scope if scope is None else scope)
    try:
        return orjson.dumps(_envelope_fields(scrubbed), option=_ORJSON_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return scrubbed.model_dump_json().encode()


def scrubbed_envelope(envelope: ResultEnvelope, scope: RedactionScope) -> ResultEnvelope:
    """The envelope with its content (data, error message and details, metadata, environment,
    the fallback's) scrubbed; ids, names, status, codes and times kept as they are, so no
    credential value can change the envelope's shape or meaning."""
    if not scope:
        return envelope
    update: dict[str, Any] = {
        "data": scope.scrub_value(envelope.data),
        "error": _scrubbed_error(envelope.error, scope),
        "metadata": scope.scrub_value(envelope.metadata),
        "environment": scope.scrub_value(envelope.environment),
    }
    fallback = envelope.fallback
    if fallback is not None:
        data, error = scope.scrub_value(fallback.data), _scrubbed_error(fallback.error, scope)
        if data is not fallback.data or error is not fallback.error:
            update["fallback"] = fallback.model_copy(update={"data": data, "error": error})
    if all(value is getattr(envelope, name) for name, value in update.items()):
        return envelope  # nothing was masked: no copy
    return envelope.model_copy(update=update)


def _scrubbed_error(error: ErrorInfo | None, scope: RedactionScope) -> ErrorInfo | None:
    if error is None:
        return None
    message, details = scope.scrub_text(error.message), scope.scrub_value(error.details)
    if message is error.message and details is error.details:
        return error
    return error.model_copy(update={"message": message, "details": details})


# Datetimes and dataclasses in `data` are not rendered by orjson's rules: they raise (no
# `default`), and the envelope goes through pydantic's serialiser instead.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


# Fields the model leaves out while unset (`Field(exclude_if=...)`): "true when present".
_ABSENT_WHEN_NONE = frozenset({"deduplicated"})


def _envelope_fields(envelope: ResultEnvelope) -> dict[str, Any]:
    """`_fields` of an envelope, written out for its known shape (every record renders one)."""
    fields = dict(envelope.__dict__)
    started, finished = fields["started_at"], fields["finished_at"]
    if type(started) is not datetime or type(finished) is not datetime:
        return _fields(envelope)
    fields["started_at"] = format_timestamp(started)
    fields["finished_at"] = format_timestamp(finished)
    for name in ("error", "fallback"):
        value = fields[name]
        if value is not None:
            fields[name] = _fields(value)
    if fields["deduplicated"] is None:
        del fields["deduplicated"]
    return fields


def _fields(model: BaseModel) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in model.__dict__.items():
        if value is None and name in _ABSENT_WHEN_NONE:
            continue
        if isinstance(value, BaseModel):
            fields[name] = _fields(value)
        elif isinstance(value, datetime):
            fields[name] = format_timestamp(value)
        else:
            fields[name] = value
    return fields


# The dead-letter headers only the engine writes. A record's own header of one of these names,
# or one already starting with the prefix, is kept with the prefix put in front: so a producer
# cannot forge `error-code: none` or `source-offset: 999999`, and the renaming stays reversible
# (strip one prefix). `dropped-headers` appears when the record's own had to be left out.
ENGINE_HEADERS = (
    "error-code",
    "error-message",
    "source-topic",
    "source-partition",
    "source-offset",
    "dropped-headers",
)
ORIGINAL_PREFIX = "original-"
_RESERVED = frozenset(ENGINE_HEADERS)
# An error message longer than this is cut in a dead letter that had to be made smaller.
_SHORT_MESSAGE_BYTES = 1024


def kept_header_name(name: str) -> str:
    """The name under which a record's own header travels in its dead letter."""
    folded = name.lower()
    if folded in _RESERVED or folded.startswith(ORIGINAL_PREFIX):
        return ORIGINAL_PREFIX + name
    return name


def dead_letter_headers(
    original: Sequence[tuple[str, bytes]],
    rejected: Rejected,
    *,
    topic: str,
    partition: int,
    offset: int,
) -> Headers:
    """The engine's headers first, then the record's own (renamed where they would pass for
    the engine's)."""
    return [
        ("error-code", rejected.code.value.encode()),
        ("error-message", SECRETS.scrub(rejected.message).encode()),
        ("source-topic", topic.encode()),
        ("source-partition", str(partition).encode()),
        ("source-offset", str(offset).encode()),
        *((kept_header_name(name), value) for name, value in original),
    ]


def without_original_headers(headers: Headers) -> Headers:
    """The engine's headers alone, the error message cut short, and how many were dropped: the
    smaller dead letter for a record whose own headers (or their renaming) do not fit."""
    engine = [(k, v) for k, v in headers if k in _RESERVED]
    dropped = len(headers) - len(engine)
    short = [(k, _cut(v, _SHORT_MESSAGE_BYTES) if k == "error-message" else v) for k, v in engine]
    return [*short, ("dropped-headers", str(dropped).encode())]


def _cut(value: bytes, limit: int) -> bytes:
    if len(value) <= limit:
        return value
    return value[:limit].decode("utf-8", "ignore").encode() + "…".encode()


class OutMessage(NamedTuple):
    """One record to publish: an envelope or a dead letter. (A named tuple: one per record.)"""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    envelope: ResultEnvelope | None = None  # set on envelopes: what a replacement is made from

    @property
    def size(self) -> int:
        size = len(self.key or b"") + len(self.value or b"")
        for name, value in self.headers:  # a loop: a generator costs more for one or two
            size += len(name) + len(value)
        return size


class OutcomeRenderer:
    """Turns a record's outcome into the records to publish: the dead letter (if any), then the
    envelope. Nothing here may fail for good, since the record's offset waits for it: an
    envelope that cannot be rendered, or is too large to publish, is replaced by one that can
    be (never retried forever, which would pin the partition's watermark)."""

    def __init__(
        self,
        results_topic: str,
        dead_letter_topic: str,
        max_message_bytes: int,
        dead_letter_max_bytes: int | None = None,
    ) -> None:
        self._results_topic = results_topic
        self._dead_letter_topic = dead_letter_topic
        self._max_message_bytes = max_message_bytes
        # The dead-letter topic's `max.message.bytes` (consumer/broker/dead_letter_size.py).
        self._dead_letter_max_bytes = min(
            max_message_bytes, dead_letter_max_bytes or max_message_bytes
        )
        self._log = get_logger()

    def render(
        self,
        envelope: ResultEnvelope,
        *,
        traceparent: str | None,
        dead_letter: DeadLetter | None = None,
        scope: RedactionScope | None = None,
    ) -> list[OutMessage]:
        """`scope`: the record's redaction scope (default: the engine's secrets only)."""
        messages: list[OutMessage] = []
        if dead_letter is not None:
            letter = self._fitting_dead_letter(*dead_letter)
            if letter is not None:
                messages.append(letter)
            else:
                self._log.error(
                    "dead_letter.too_large",
                    request_id=envelope.request_id,
                    size=len(dead_letter[1] or b""),
                )
        result_headers: Headers = [("request-id", envelope.request_id.encode())]
        if traceparent is not None:
            result_headers.append(("traceparent", traceparent.encode()))
        key = envelope.request_id.encode()
        try:
            value = envelope_bytes(envelope, scope)
        except ValueError as exc:  # pydantic cannot render it (e.g. nested past its limit)
            escaped = with_lone_surrogates_escaped(envelope)
            if escaped is not None:  # an action kept an upstream's lone surrogate as it came
                envelope = escaped
                value = envelope_bytes(envelope)
            else:
                self._log.error(
                    "envelope.unrenderable", request_id=envelope.request_id, error=str(exc)
                )
                value = envelope_bytes(replacement(envelope, "could not be rendered as JSON"))
        message = OutMessage(self._results_topic, key, value, result_headers, envelope)
        if message.size > self._max_message_bytes:
            message = self.shrink(message)
        messages.append(message)
        return messages

    def _fitting_dead_letter(
        self, key: bytes | None, value: bytes | None, headers: Headers
    ) -> OutMessage | None:
        """The dead letter as it is, or without the record's own headers when they make it too
        large for the topic; None when even the original key and value alone cannot fit."""
        for candidate in (headers, without_original_headers(headers)):
            if wire_size(key, value, candidate) <= self._dead_letter_max_bytes:
                return OutMessage(self._dead_letter_topic, key, value, candidate)
        return None

    def shrink(self, message: OutMessage) -> OutMessage:
        """The smaller stand-in for an envelope the producer or broker refused as too large."""
        assert message.envelope is not None
        self._log.error(
            "envelope.too_large", request_id=message.envelope.request_id, size=message.size
        )
        small = replacement(message.envelope, "was too large to publish")
        return OutMessage(message.topic, message.key, envelope_bytes(small), message.headers, small)


def with_lone_surrogates_escaped(envelope: ResultEnvelope) -> ResultEnvelope | None:
    """The envelope with its lone surrogates written as `\\udXXX` text (no UTF-8 output can
    carry them), or None when it holds none. Actions escape what they parse
    (`actions.limits.upstream_json`); this catches one that did not, on the failure path only."""
    dumped = envelope.model_dump()
    if not holds_lone_surrogate(dumped):
        return None
    return ResultEnvelope.model_validate(escape_lone_surrogates(dumped))
