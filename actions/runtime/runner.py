"""Runs one validated request's action: params, deadline, credentials, retries -> one envelope.

This is the single place where action failures become the contract's error codes.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from structlog.typing import FilteringBoundLogger

from actions.base import (
    ATTEMPT_MARGIN_S,
    NO_SLOT,
    ActionContext,
    ActionParams,
    CredentialSource,
    InFlightSlot,
    SyncAction,
)
from actions.errors import (
    ActionError,
    CredentialRejected,
    NotAttempted,
    OutcomeUnknown,
    RetryableError,
    UpstreamUnavailable,
    attempt_timed_out,
)
from actions.http import HttpClient
from actions.http.timeouts import bounded
from actions.ratelimit import RateLimiter
from actions.registry import ActionRegistry, AnyAction
from actions.runtime.circuit import CircuitBreakers
from actions.runtime.idempotency import NO_RECORDS, IdempotencyRecords, Once
from actions.runtime.outcome import FALLBACK_ON, Outcome, deadline_passed, outcome_envelope
from actions.runtime.preparation import (
    PreparedAction,
    PreparedRequest,
    Unrunnable,
    prepare_request,
)
from actions.runtime.retry import RetryPolicy
from actions.settings import ActionSettingsSet
from schemas import (
    ErrorCode,
    ErrorInfo,
    ExecutionRequest,
    FallbackResult,
    ResultEnvelope,
)


@dataclass
class ActionRunner:
    registry: ActionRegistry
    credentials: CredentialSource
    http: HttpClient
    egress_http: HttpClient
    # The actions' own settings as read at start-up (None: read them from the registry now).
    settings: ActionSettingsSet | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    attempt_timeout_s: float = 30.0
    now: Callable[[], datetime] = field(default=functools.partial(datetime.now, UTC))
    sleep: Callable[[float], Any] = asyncio.sleep
    # The retry budget's clock (fakeable together with `sleep` and `now` in tests).
    clock: Callable[[], float] = time.monotonic
    limiter: RateLimiter = field(default_factory=RateLimiter)
    breakers: CircuitBreakers = field(default_factory=CircuitBreakers)
    idempotency: IdempotencyRecords = NO_RECORDS  # NO_RECORDS: every request runs

    def __post_init__(self) -> None:
        self._settings = self.settings or self.registry.read_settings()

    async def execute(
        self,
        request: ExecutionRequest,
        request_id: str,
        log: FilteringBoundLogger,
        slot: InFlightSlot = NO_SLOT,
        credentials: CredentialSource | None = None,
        *,
        deduplicate: bool = True,
    ) -> ResultEnvelope:
        """`slot`: lent to others while the request waits (rate limit, open circuit, its twin
        running); `credentials`: the request's own view of them (its redaction scope; default
        the shared ones); `deduplicate=False`: run it even if it succeeded."""
        started_at = self.now()
        prepared = prepare_request(self.registry, request)
        source = credentials or self.credentials
        # An action without I/O has no effect to repeat: it is not checked (nor waits on it).
        once = (
            None
            if isinstance(prepared, Unrunnable) or isinstance(prepared.action, SyncAction)
            else self.idempotency.once(request, request_id, slot, deduplicate)
        )
        # Settled with the outcome: a success remembers its data, a failure (or a run
        # abandoned: cancelled) gives the claim back.
        data: dict[str, Any] | None = None
        try:
            outcome, fallback = await self._execute(
                prepared,
                request,
                request_id,
                log,
                started_at=started_at,
                slot=slot,
                credentials=source,
                once=once,
            )
            if once is not None and outcome.code is None:
                # Kept beyond this request: without the tokens it was handed.
                data = source.scrubbed(outcome.data or {})
        finally:
            if once is not None:
                await once.settle(data)
        return outcome_envelope(
            request, request_id, outcome, fallback, started_at=started_at, finished_at=self.now()
        )

    def runs_now(self, request: ExecutionRequest) -> bool:
        """Whether `execute` finishes this request without waiting on anything: a `SyncAction`
        without a fallback, or an action that does not exist (neither is deduplicated)."""
        action = self.registry.get(request.action)
        return request.fallback is None and (action is None or isinstance(action, SyncAction))

    async def _execute(
        self,
        prepared: PreparedRequest | Unrunnable,
        request: ExecutionRequest,
        request_id: str,
        log: FilteringBoundLogger,
        *,
        started_at: datetime,
        slot: InFlightSlot,
        credentials: CredentialSource,
        once: Once | None = None,
    ) -> tuple[Outcome, FallbackResult | None]:
        """The main action's outcome, and the fallback's when one ran."""
        fallback = None if isinstance(prepared, Unrunnable) else prepared.fallback
        if isinstance(prepared, Unrunnable):
            outcome = Outcome(0, code=prepared.code, message=prepared.message)
        elif once is not None and (first := await once.first_success()) is not None:
            return Outcome(0, data=first, deduplicated=True), None
        elif request.deadline is not None and started_at >= request.deadline:
            outcome = deadline_passed("before it ran")
        else:
            ctx = self._context(request, request_id, log, slot, credentials)
            outcome = await self._run(prepared.action, prepared.params, ctx)
        if fallback is None or outcome.code not in FALLBACK_ON:
            return outcome, None
        return outcome, await self._run_fallback(
            request, request_id, log, fallback, outcome, slot=slot, credentials=credentials
        )

    async def _run_fallback(
        self,
        request: ExecutionRequest,
        request_id: str,
        log: FilteringBoundLogger,
        fallback: PreparedAction,
        failed: Outcome,
        *,
        slot: InFlightSlot,
        credentials: CredentialSource,
    ) -> FallbackResult:
        name = fallback.action.name
        log = log.bind(action=name, fallback_for=request.action)
        log.debug("fallback.started", main_error_code=failed.code.value if failed.code else None)
        clock_start = time.monotonic()
        if request.deadline is not None and self.now() >= request.deadline:
            outcome = deadline_passed("before the fallback could run")
        else:
            ctx = self._context(request, request_id, log, slot, credentials)
            outcome = await self._run(fallback.action, fallback.params, ctx)
        elapsed = time.monotonic() - clock_start
        error = None
        if outcome.code is not None:
            error = ErrorInfo(
                code=outcome.code,
                message=outcome.message,
                retryable=outcome.code.retryable,
                details=outcome.details,
            )
        return FallbackResult(
            action=name,
            status="error" if error else "success",
            data=None if error else (outcome.data or {}),
            error=error,
            attempts=outcome.attempts,
            duration_ms=round(elapsed * 1000, 3),
        )

    def _context(
        self,
        request: ExecutionRequest,
        request_id: str,
        log: FilteringBoundLogger,
        slot: InFlightSlot,
        credentials: CredentialSource,
    ) -> ActionContext:
        return ActionContext(
            request_id=request_id,
            project=request.project,
            deadline=request.deadline,
            credentials=credentials,
            http=self.http,
            # Connections for URLs a request names are never shared between projects.
            egress_http=self.egress_http.for_project(request.project),
            settings=self._settings,
            log=log,
            slot=slot,
        )

    async def _run(self, action: AnyAction, params: ActionParams, ctx: ActionContext) -> Outcome:
        log = ctx.log
        attempts = 0
        clock_start = self.clock()
        refetched_credential = False
        while True:
            attempts += 1
            try:
                if isinstance(action, SyncAction):  # no upstream, budget or timeout: it runs
                    log.debug("action.started", attempt=attempts)
                    data = dict(action.run_now(params, ctx))
                else:
                    data = await self._guarded_attempt(action, params, ctx, attempts, clock_start)
            except NotAttempted as exc:
                return Outcome(
                    attempts - 1, code=exc.code, message=exc.message, details=exc.details
                )
            except CredentialRejected as exc:
                if refetched_credential:
                    return Outcome(
                        attempts, code=exc.code, message=exc.message, details=exc.details
                    )
                # A rotated token: evict it and try once more with a fresh one, at once.
                refetched_credential = True
                await ctx.credentials.invalidate(ctx.project, exc.service)
                log.warning(
                    "action.retrying",
                    attempt=attempts,
                    error_code="credential_rejected",
                    delay_s=0.0,
                )
                continue
            except RetryableError as exc:
                # An action without I/O would only fail the same way again.
                delay = (
                    None
                    if isinstance(action, SyncAction)
                    else self.retry.next_delay(
                        attempts,
                        self.clock() - clock_start,
                        exc.retry_after_s,
                        self._seconds_until(ctx.deadline),
                        wait_limit_s=exc.wait_limit_s,
                    )
                )
                if exc.pause and exc.retry_after_s:
                    # The provider said that quota is spent: no other request spends it either.
                    await self.limiter.pause(exc.pause, exc.retry_after_s)
                if delay is None:
                    return Outcome(
                        attempts, code=exc.code, message=exc.message, details=exc.details
                    )
                ctx.attempt.window_s = exc.wait_limit_s  # also bounds the next slot's wait
                log.warning(
                    "action.retrying",
                    attempt=attempts,
                    error_code=exc.code.value,
                    error_message=exc.message,
                    delay_s=round(delay, 3),
                )
                await self.sleep(delay)
                continue
            except ActionError as exc:
                return Outcome(attempts, code=exc.code, message=exc.message, details=exc.details)
            except Exception:
                # A bug. The traceback goes to our log (scrubbed); the envelope says only that.
                log.exception("action.crashed", attempt=attempts)
                return Outcome(
                    attempts,
                    code=ErrorCode.INTERNAL_ERROR,
                    message="the action failed unexpectedly (engine bug)",
                )
            return Outcome(attempts, data=data)

    async def _guarded_attempt(
        self,
        action: AnyAction,
        params: ActionParams,
        ctx: ActionContext,
        attempt: int,
        clock_start: float,
    ) -> dict[str, Any]:
        """One attempt, after waiting for the upstream's circuit and the call's rate-limit
        slots: in this request's own lane only, and never past the retry budget or deadline
        (then `NotAttempted`). The outcome is fed back to the circuit breaker."""
        upstream = action.upstream(params, ctx)
        breakers = self.breakers
        probe = False
        if upstream is not None:
            if breakers.may_wait(upstream):
                async with ctx.slot.stepped_aside():
                    probe = await breakers.admit(
                        upstream, ctx.log, self._max_wait_s(clock_start, ctx)
                    )
            else:
                probe = await breakers.admit(upstream, ctx.log, self._max_wait_s(clock_start, ctx))
        failed: bool | None = None
        try:
            keys = action.rate_keys(params, ctx)
            if keys:  # no budget to spend (http_request): nothing to reserve or wait for
                wait = await self.limiter.take(keys, self._max_wait_s(clock_start, ctx))
                if wait > 0:
                    # Waiting on a timer needs no in-flight slot: other keys may use it meanwhile.
                    async with ctx.slot.stepped_aside():
                        await self.limiter.sleep(wait)
                    ctx.log.debug("action.rate_limited", attempt=attempt, waited_s=round(wait, 3))
            ctx.log.debug("action.started", attempt=attempt)
            ctx.attempt.start(attempt)
            # A provider documented as slower than the engine's limit gets its own (Notion, SMTP).
            own = action.attempt_timeout_s(params, ctx)
            timeout_s = self.attempt_timeout_s
            if own is not None:
                timeout_s = max(timeout_s, own + ATTEMPT_MARGIN_S)
            try:
                async with bounded(timeout_s):
                    data = dict(await action.run(params, ctx))
            except TimeoutError:
                raise attempt_timed_out(timeout_s, ctx.attempt.unsafe_call_sent) from None
            failed = False
            return data
        except (UpstreamUnavailable, OutcomeUnknown):
            failed = True
            raise
        except ActionError as exc:
            # A refusal or a 429 shows the upstream is up; a failure before the call (Vault,
            # egress policy) says nothing about it.
            if exc.code in (ErrorCode.UPSTREAM_ERROR, ErrorCode.RATE_LIMITED) and not isinstance(
                exc, NotAttempted
            ):
                failed = False
            raise
        finally:
            if upstream is not None:
                await breakers.observe(upstream, probe=probe, failed=failed, log=ctx.log)

    def _max_wait_s(self, clock_start: float, ctx: ActionContext) -> float:
        """How long a request may wait for a slot: what is left of the retry budget (or of a
        provider's window it is waiting out), and never past its deadline."""
        budget = max(self.retry.budget_s, ctx.attempt.window_s or 0.0)
        remaining = budget - (self.clock() - clock_start)
        until_deadline = self._seconds_until(ctx.deadline)
        return remaining if until_deadline is None else min(remaining, until_deadline)

    def _seconds_until(self, deadline: datetime | None) -> float | None:
        if deadline is None:
            return None
        return (deadline - self.now()).total_seconds()
