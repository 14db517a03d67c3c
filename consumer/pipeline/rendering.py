"""What goes out for a record: its result envelope (keyed by request_id) and, for a record the
engine cannot understand, its dead letter (original key, bytes and headers, plus ours).

Publishing and committing them is `consumer.partitions.channel`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

from actions.limits import escape_lone_surrogates, holds_lone_surrogate
from consumer.broker.dead_letter_size import wire_size
from consumer.ops.logging import get_logger
from consumer.pipeline.envelopes import replacement
from consumer.pipeline.intake import Rejected
from consumer.secrets.redaction import RedactionScope
from schemas import ErrorInfo, ResultEnvelope

Headers = list[tuple[str, bytes]]
# (original key, original value, headers)
DeadLetter = tuple[bytes | None, bytes | None, Headers]

# Retrying these cannot help: the record itself is too large for the producer or the broker.
TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)


def render_envelope(
    envelope: ResultEnvelope, scope: RedactionScope
) -> tuple[ResultEnvelope, bytes]:
    """The envelope as published: scrubbed of `scope`'s secrets (the record's: its credentials
    and the engine's own), then rendered. Whatever the later steps make (an envelope with its
    lone surrogates escaped, a replacement) is made from the scrubbed one."""
    published = scrubbed_envelope(envelope, scope)
    try:
        return published, serialised(published)
    except ValueError:  # pydantic cannot render it (a lone surrogate, nesting past its limit)
        pass
    escaped = with_lone_surrogates_escaped(published)
    if escaped is not None:  # an action kept an upstream's lone surrogate as it came
        return escaped, serialised(escaped)
    get_logger().error("envelope.unrenderable", request_id=envelope.request_id)
    small = replacement(published, "could not be rendered as JSON")
    return small, serialised(small)


def serialised(published: ResultEnvelope) -> bytes:
    """An envelope's JSON. Only for envelopes that are published as they are: scrubbed by
    `render_envelope`, or made from one that was."""
    return _SERIALISER.to_json(published)


_SERIALISER = ResultEnvelope.__pydantic_serializer__


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
    scope: RedactionScope,
) -> Headers:
    """The engine's headers first, then the record's own (renamed where they would pass for
    the engine's); the error message scrubbed with the record's `scope`."""
    return [
        ("error-code", rejected.code.value.encode()),
        ("error-message", scope.scrub_text(rejected.message).encode()),
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
    # Set on envelopes: the envelope as published (scrubbed), what a replacement is made from.
    envelope: ResultEnvelope | None = None

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
        scope: RedactionScope,
        traceparent: str | None,
        dead_letter: DeadLetter | None = None,
    ) -> list[OutMessage]:
        """`scope`: the record's redaction scope, which everything published is scrubbed of."""
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
        published, value = render_envelope(envelope, scope)
        message = OutMessage(
            self._results_topic, envelope.request_id.encode(), value, result_headers, published
        )
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
        """The smaller stand-in for an envelope the producer or broker refused as too large,
        made from the envelope as published (scrubbed with its record's scope when rendered)."""
        assert message.envelope is not None
        self._log.error(
            "envelope.too_large", request_id=message.envelope.request_id, size=message.size
        )
        small = replacement(message.envelope, "was too large to publish")
        return OutMessage(message.topic, message.key, serialised(small), message.headers, small)


def with_lone_surrogates_escaped(envelope: ResultEnvelope) -> ResultEnvelope | None:
    """The envelope with its lone surrogates written as `\\udXXX` text (no UTF-8 output can
    carry them), or None when it holds none. Actions escape what they parse
    (`actions.limits.upstream_json`); this catches one that did not, on the failure path only."""
    dumped = envelope.model_dump()
    if not holds_lone_surrogate(dumped):
        return None
    return ResultEnvelope.model_validate(escape_lone_surrogates(dumped))
