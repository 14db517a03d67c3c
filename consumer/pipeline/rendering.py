"""What goes out for a record: its result envelope (keyed by request_id) and, for a record the
engine cannot understand, its dead letter (original key, bytes and headers, plus ours).

Publishing and committing them is `consumer.partitions.channel`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from pydantic import BaseModel

from consumer.ops.logging import get_logger
from consumer.ops.redaction import REDACTOR
from consumer.pipeline.envelopes import replacement
from consumer.pipeline.intake import Rejected
from schemas import ResultEnvelope, format_timestamp

Headers = list[tuple[str, bytes]]
# (original key, original value, headers)
DeadLetter = tuple[bytes | None, bytes | None, Headers]

# Retrying these cannot help: the record itself is too large for the producer or the broker.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


def envelope_bytes(envelope: ResultEnvelope) -> bytes:
    """The envelope as JSON, as `model_dump_json` renders it (a test holds them equal field for
    field), at a fraction of its cost: orjson on the model's fields. What orjson cannot encode
    as pydantic would (integers beyond 64 bits, lone surrogates, keys that are not strings,
    types outside JSON) goes through `model_dump_json`."""
    try:
        text = orjson.dumps(_fields(envelope), option=_ORJSON_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = envelope.model_dump_json()
    return REDACTOR.scrub(text).encode()


# Datetimes and dataclasses in `data` are not rendered by orjson's rules: they raise (no
# `default`), and the envelope goes through pydantic's serialiser instead.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


# Fields the model leaves out while unset (`Field(exclude_if=...)`): "true when present".
_ABSENT_WHEN_NONE = frozenset({"deduplicated"})


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


def dead_letter_headers(
    original: Sequence[tuple[str, bytes]],
    rejected: Rejected,
    *,
    topic: str,
    partition: int,
    offset: int,
) -> Headers:
    return [
        *original,
        ("error-code", rejected.code.value.encode()),
        ("error-message", REDACTOR.scrub(rejected.message).encode()),
        ("source-topic", topic.encode()),
        ("source-partition", str(partition).encode()),
        ("source-offset", str(offset).encode()),
    ]


@dataclass(frozen=True)
class OutMessage:
    """One record to publish: an envelope or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    envelope: ResultEnvelope | None = None  # set on envelopes: what a replacement is made from

    @property
    def size(self) -> int:
        return (
            len(self.key or b"")
            + len(self.value or b"")
            + sum(len(k) + len(v) for k, v in self.headers)
        )


class OutcomeRenderer:
    """Turns a record's outcome into the records to publish: the dead letter (if any), then the
    envelope. Nothing here may fail for good, since the record's offset waits for it: an
    envelope that cannot be rendered, or is too large to publish, is replaced by one that can
    be (never retried forever, which would pin the partition's watermark)."""

    def __init__(self, results_topic: str, dead_letter_topic: str, max_message_bytes: int) -> None:
        self._results_topic = results_topic
        self._dead_letter_topic = dead_letter_topic
        self._max_message_bytes = max_message_bytes
        self._log = get_logger()

    def render(
        self,
        envelope: ResultEnvelope,
        *,
        traceparent: str | None,
        dead_letter: DeadLetter | None = None,
    ) -> list[OutMessage]:
        messages: list[OutMessage] = []
        if dead_letter is not None:
            letter = OutMessage(self._dead_letter_topic, *dead_letter)
            if letter.size <= self._max_message_bytes:
                messages.append(letter)
            else:
                self._log.error(
                    "dead_letter.too_large", request_id=envelope.request_id, size=letter.size
                )
        result_headers: Headers = [("request-id", envelope.request_id.encode())]
        if traceparent is not None:
            result_headers.append(("traceparent", traceparent.encode()))
        key = envelope.request_id.encode()
        try:
            value = envelope_bytes(envelope)
        except ValueError as exc:  # pydantic cannot render it (e.g. nested past its limit)
            self._log.error("envelope.unrenderable", request_id=envelope.request_id, error=str(exc))
            value = envelope_bytes(replacement(envelope, "could not be rendered as JSON"))
        message = OutMessage(self._results_topic, key, value, result_headers, envelope)
        if message.size > self._max_message_bytes:
            message = self.shrink(message)
        messages.append(message)
        return messages

    def shrink(self, message: OutMessage) -> OutMessage:
        """The smaller stand-in for an envelope the producer or broker refused as too large."""
        assert message.envelope is not None
        self._log.error(
            "envelope.too_large", request_id=message.envelope.request_id, size=message.size
        )
        small = replacement(message.envelope, "was too large to publish")
        return OutMessage(message.topic, message.key, envelope_bytes(small), message.headers, small)
