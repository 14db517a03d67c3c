"""Processing: one consumed record -> exactly one envelope (plus a dead letter if unreadable),
rendered to the records its partition publishes, and one outcome event that says how it ended.

Nothing here may fail for good: a bug while running or rendering still yields one
`internal_error` envelope, or the partition's watermark would never pass the record.

Every record runs with its own view of the credential cache: what it fetches is in its
redaction scope, which scrubs its log events and envelope and is released once they are
rendered (`consumer.secrets.redaction`).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from structlog.typing import FilteringBoundLogger

from actions.base import InFlightSlot
from actions.runtime.runner import ActionRunner
from consumer.credentials.cache import CredentialCache
from consumer.ops.logging import get_logger, record_logger
from consumer.ops.metrics import EngineMetrics
from consumer.ops.tracing import NO_TRACING, NoTracing
from consumer.pipeline.envelopes import bug_envelope, rejection_envelope
from consumer.pipeline.intake import Accepted, IntakeLimits, Rejected, decode_record
from consumer.pipeline.rendering import DeadLetter, OutcomeRenderer, OutMessage, dead_letter_headers
from consumer.secrets.redaction import RedactionScope
from consumer.state.idempotency import reexecutes
from schemas import ResultEnvelope


class Finished(Protocol):
    """Where a processed record's messages go: its partition's channel."""

    def finish(self, offset: int, messages: list[OutMessage]) -> None: ...


class Work(NamedTuple):
    """A consumed record, what intake made of it, and the channel of its partition. (A named
    tuple: one per record, at half a frozen dataclass's cost.)"""

    record: Any  # aiokafka ConsumerRecord
    decoded: Accepted | Rejected | None  # None: intake failed (a bug)
    channel: Finished
    consumed_at: float  # time.time() when the engine took it: the outcome's `queued_ms`


class RecordProcessor:
    """Intake, execution and rendering of one record, in that order. `intake` is called by the
    consume loop for every record; `process` then runs in a scheduled job, or is driven to its
    end at once by the loop when `is_immediate` says it will not wait on anything."""

    def __init__(
        self,
        runner: ActionRunner,
        renderer: OutcomeRenderer,
        limits: IntakeLimits,
        *,
        credentials: CredentialCache,
        metrics: EngineMetrics,
        tracing: NoTracing,
    ) -> None:
        """`credentials`: the cache the runner fetches from, to track what each record
        fetched (its redaction scope)."""
        self._runner = runner
        self._credentials = credentials
        self._renderer = renderer
        self._limits = limits
        self._metrics = metrics
        self._tracing = tracing
        self._log = get_logger()

    def intake(self, record: Any) -> Accepted | Rejected:
        return decode_record(
            record.value,
            record.headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            limits=self._limits,
        )

    def is_immediate(self, decoded: Accepted | Rejected) -> bool:
        """Whether `process` finishes without waiting on anything, so the consume loop may
        drive it to its end at once: a rejection, or a request the runner runs without I/O
        (with tracing off: a span is exported asynchronously)."""
        if isinstance(decoded, Rejected):
            return True
        return self._tracing is NO_TRACING and self._runner.runs_now(decoded.request)

    async def run(self, work: Work, slot: InFlightSlot) -> None:
        """A scheduled job: process the record, hand what it yields to its partition."""
        work.channel.finish(work.record.offset, await self.process(work, slot))

    async def process(self, work: Work, slot: InFlightSlot) -> list[OutMessage]:
        record, decoded = work.record, work.decoded
        with self._credentials.for_record() as credentials, credentials.scope.active() as scope:
            log: FilteringBoundLogger | None = None
            traceparent: str | None = None
            dead_letter: DeadLetter | None = None
            try:
                if decoded is None:
                    raise RuntimeError("intake failed")  # logged where it happened
                traceparent = decoded.traceparent
                if isinstance(decoded, Rejected):
                    log = _record_log(record, decoded, scope, decoded.action, decoded.project)
                    envelope = rejection_envelope(decoded)
                    dead_letter = _dead_letter(record, decoded, scope)
                else:
                    request = decoded.request
                    log = _record_log(record, decoded, scope, request.action, request.project)
                    log.debug("request.received")
                    execution = self._runner.execute(
                        request,
                        decoded.request_id,
                        log,
                        slot,
                        credentials,
                        deduplicate=not reexecutes(record.headers),
                    )
                    if self._tracing is NO_TRACING:
                        envelope = await execution
                    else:  # ops: a span per request
                        envelope = await self._tracing.run(
                            request, decoded.request_id, traceparent, execution
                        )
            except Exception:
                envelope = self._bug(record, "the engine failed on this record (bug)")
                log = log or _bug_log(record, envelope, scope)
                traceparent = dead_letter = None
            _log_outcome(log, envelope, work.consumed_at, invalid=isinstance(decoded, Rejected))
            self._metrics.envelope(envelope)  # ops
            try:
                return self._renderer.render(
                    envelope, scope=scope, traceparent=traceparent, dead_letter=dead_letter
                )
            except Exception:
                bug = self._bug(record, "the engine could not render this record's result (bug)")
                return self._renderer.render(bug, scope=scope, traceparent=None)

    def _bug(self, record: Any, message: str) -> ResultEnvelope:
        """Called from an `except`: the engine failed on this record; it still gets one
        envelope, or its partition's watermark would never pass it."""
        self._log.exception("engine.bug", partition=record.partition, offset=record.offset)
        return bug_envelope(record, message)


def _dead_letter(record: Any, rejected: Rejected, scope: RedactionScope) -> DeadLetter:
    headers = dead_letter_headers(
        record.headers,
        rejected,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        scope=scope,
    )
    return record.key, record.value, headers


def _record_log(
    record: Any,
    decoded: Accepted | Rejected,
    scope: RedactionScope,
    action: str | None,
    project: str | None,
) -> FilteringBoundLogger:
    """A record's logger: its ids, then what it names (action, project) when it was read."""
    fields: dict[str, Any] = {
        "request_id": decoded.request_id,
        "partition": record.partition,
        "offset": record.offset,
    }
    if decoded.traceparent:
        fields["traceparent"] = decoded.traceparent
    if action is not None:
        fields["action"] = action
    if project is not None:
        fields["project"] = project
    return record_logger(scope, **fields)


def _bug_log(record: Any, envelope: ResultEnvelope, scope: RedactionScope) -> FilteringBoundLogger:
    return record_logger(
        scope, request_id=envelope.request_id, partition=record.partition, offset=record.offset
    )


def _log_outcome(
    log: FilteringBoundLogger, envelope: ResultEnvelope, consumed_at: float, *, invalid: bool
) -> None:
    """The request's one outcome event (the contract's canonical log line)."""
    fields: dict[str, Any] = {
        "attempts": envelope.attempts,
        "duration_ms": envelope.duration_ms,
        "queued_ms": max(round((envelope.started_at.timestamp() - consumed_at) * 1000, 3), 0.0),
    }
    if envelope.deduplicated:
        fields["deduplicated"] = True
    fallback = envelope.fallback
    if fallback is not None:
        fields["fallback_action"] = fallback.action
        fields["fallback_status"] = fallback.status
        if fallback.error is not None:
            fields["fallback_error_code"] = fallback.error.code.value
    error = envelope.error
    if error is None:
        log.info("action.succeeded", **fields)
        return
    log.warning(
        "request.invalid" if invalid else "action.failed",
        error_code=error.code.value,
        error_message=error.message,
        retryable=error.retryable,
        **fields,
    )
