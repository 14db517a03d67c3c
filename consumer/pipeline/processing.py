"""Processing: one consumed record -> exactly one envelope (plus a dead letter if unreadable),
rendered to the records its partition publishes.

Nothing here may fail for good: a bug while running or rendering still yields one
`internal_error` envelope, or the partition's watermark would never pass the record.

A scheduled record runs with its own view of the credential cache: what it fetches is in its
redaction scope, which scrubs its log events and envelope and is released once they are
rendered (`consumer.ops.redaction`). An immediate record fetches nothing: the engine's scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from structlog.typing import FilteringBoundLogger

from actions import NO_SLOT, ActionRunner, InFlightSlot
from consumer.credentials.cache import CredentialCache, RecordCredentials
from consumer.ops.logging import get_logger
from consumer.ops.metrics import EngineMetrics
from consumer.ops.record_log import record_logger
from consumer.ops.redaction import SECRETS, RedactionScope
from consumer.ops.tracing import NO_TRACING, NoTracing
from consumer.pipeline.envelopes import bug_envelope, rejection_envelope
from consumer.pipeline.intake import Accepted, IntakeLimits, Rejected, decode_record
from consumer.pipeline.rendering import DeadLetter, OutcomeRenderer, OutMessage, dead_letter_headers
from consumer.state.idempotency import reexecutes
from schemas import ResultEnvelope


class Finished(Protocol):
    """Where a processed record's messages go: its partition's channel."""

    def finish(self, offset: int, messages: list[OutMessage]) -> None: ...


@dataclass(frozen=True)
class Work:
    """A scheduled record and the channel of the partition it came from."""

    record: Any  # aiokafka ConsumerRecord
    decoded: Accepted | Rejected | None  # None: intake failed (a bug)
    channel: Finished


class _Outcome(NamedTuple):
    envelope: ResultEnvelope
    traceparent: str | None = None
    dead_letter: DeadLetter | None = None


class RecordProcessor:
    """Intake, execution and rendering of one record, in that order. `intake` is called by the
    consume loop for every record; the result is processed either at once (`process_now`, for
    what needs no I/O) or in a scheduled job (`run`)."""

    def __init__(
        self,
        runner: ActionRunner,
        renderer: OutcomeRenderer,
        limits: IntakeLimits,
        *,
        metrics: EngineMetrics,
        tracing: NoTracing,
        credentials: CredentialCache | None = None,
    ) -> None:
        """`credentials`: the cache the runner fetches from, to track what each record
        fetched; None: records are scrubbed of the engine's own secrets only (tests)."""
        self._runner = runner
        self._credentials = credentials
        self._engine_scope = (
            SECRETS.engine_scope if credentials is None else credentials.engine_scope
        )
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
        """Whether processing needs no I/O and no waiting, so it may run in the consume loop:
        a rejection, or a request the runner can execute at once (with tracing off: a span
        is exported asynchronously)."""
        if isinstance(decoded, Rejected):
            return True
        return self._tracing is NO_TRACING and self._runner.runs_now(decoded.request)

    def process_now(self, record: Any, decoded: Accepted | Rejected) -> list[OutMessage]:
        """An immediate record's messages (see `is_immediate`)."""
        try:
            if isinstance(decoded, Rejected):
                outcome = self._rejected(record, decoded)
            else:
                log = _received(record, decoded, self._engine_scope)
                envelope = self._runner.execute_now(decoded.request, decoded.request_id, log)
                outcome = _Outcome(envelope, decoded.traceparent)
        except Exception:
            outcome = self._bug(record)
        return self._render(record, outcome, self._engine_scope)

    async def run(self, work: Work, slot: InFlightSlot) -> None:
        """A scheduled job: process the record, hand what it yields to its partition (`process`
        without its own coroutine: one layer fewer on every resumption of the job)."""
        if self._credentials is None:
            messages = await self._process(work, slot, None)
        else:
            with self._credentials.for_record() as credentials, credentials.scope.active():
                messages = await self._process(work, slot, credentials)
        work.channel.finish(work.record.offset, messages)

    async def process(self, work: Work, slot: InFlightSlot = NO_SLOT) -> list[OutMessage]:
        if self._credentials is None:
            return await self._process(work, slot, None)
        with self._credentials.for_record() as credentials, credentials.scope.active():
            return await self._process(work, slot, credentials)

    async def _process(
        self, work: Work, slot: InFlightSlot, credentials: RecordCredentials | None
    ) -> list[OutMessage]:
        record, decoded = work.record, work.decoded
        scope = self._engine_scope if credentials is None else credentials.scope
        try:
            if decoded is None:
                raise RuntimeError("intake failed")  # logged where it happened
            if isinstance(decoded, Rejected):
                outcome = self._rejected(record, decoded)
            else:
                outcome = await self._executed(record, decoded, slot, credentials, scope)
        except Exception:
            outcome = self._bug(record)
        return self._render(record, outcome, scope)

    def _bug(self, record: Any) -> _Outcome:
        """Called from an `except`: the engine failed on this record; it still gets one
        envelope, or its partition's watermark would never pass it."""
        self._log.exception("engine.bug", partition=record.partition, offset=record.offset)
        return _Outcome(bug_envelope(record, "the engine failed on this record (bug)"))

    def _render(self, record: Any, outcome: _Outcome, scope: RedactionScope) -> list[OutMessage]:
        self._metrics.envelope(outcome.envelope)  # ops
        try:
            return self._renderer.render(
                outcome.envelope,
                traceparent=outcome.traceparent,
                dead_letter=outcome.dead_letter,
                scope=scope,
            )
        except Exception:
            self._log.exception("engine.bug", partition=record.partition, offset=record.offset)
            return self._renderer.render(
                bug_envelope(record, "the engine could not render this record's result (bug)"),
                traceparent=None,
            )

    def _rejected(self, record: Any, rejected: Rejected) -> _Outcome:
        _record_logger(record, rejected, self._engine_scope).warning(
            "request.invalid",
            error_code=rejected.code.value,
            error_message=rejected.message,
            action=rejected.action,
            project=rejected.project,
        )
        headers = dead_letter_headers(
            record.headers,
            rejected,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        return _Outcome(
            rejection_envelope(rejected), rejected.traceparent, (record.key, record.value, headers)
        )

    async def _executed(
        self,
        record: Any,
        accepted: Accepted,
        slot: InFlightSlot,
        credentials: RecordCredentials | None,
        scope: RedactionScope,
    ) -> _Outcome:
        log = _received(record, accepted, scope)
        execution = self._runner.execute(
            accepted.request,
            accepted.request_id,
            log,
            slot,
            credentials,
            deduplicate=not reexecutes(record.headers),
        )
        if self._tracing is NO_TRACING:
            envelope = await execution
        else:
            envelope = await self._tracing.run(accepted, execution)  # ops: a span per request
        return _Outcome(envelope, accepted.traceparent)


def _received(record: Any, accepted: Accepted, scope: RedactionScope) -> FilteringBoundLogger:
    """The request's logger, once it says `request.received`."""
    request = accepted.request
    log = _record_logger(record, accepted, scope, action=request.action, project=request.project)
    log.info("request.received")
    return log


def _record_logger(
    record: Any, decoded: Accepted | Rejected, scope: RedactionScope, **request: Any
) -> FilteringBoundLogger:
    """A record's logger: its ids, then (for a request) its action and project."""
    traceparent = decoded.traceparent
    if traceparent:
        return record_logger(
            scope,
            request_id=decoded.request_id,
            partition=record.partition,
            offset=record.offset,
            traceparent=traceparent,
            **request,
        )
    return record_logger(
        scope,
        request_id=decoded.request_id,
        partition=record.partition,
        offset=record.offset,
        **request,
    )
