"""Runs one validated request's action: params, deadline, credentials, retries -> one envelope.

This is the single place where action failures become the contract's error codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError
from structlog.typing import FilteringBoundLogger

from actions.base import ActionConfig, ActionContext, ActionParams, CredentialSource
from actions.circuit import CircuitBreakers
from actions.errors import (
    ActionError,
    CredentialRejected,
    NotAttempted,
    RetryableError,
    UpstreamUnavailable,
)
from actions.idempotency import SuccessStore, idempotency_key, new_owner
from actions.ratelimit import RateLimiter
from actions.registry import ActionRegistry, AnyAction
from actions.retry import RetryPolicy
from schemas import (
    ErrorCode,
    ErrorInfo,
    ExecutionRequest,
    FallbackResult,
    ResultEnvelope,
    error_envelope,
    success_envelope,
)


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """'params.channel: Field required; ...' — names the fields, never echoes their values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        location = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        parts.append(f"{location}: {error['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


@dataclass
class _Outcome:
    """How one action's run ended: data on success, else an error code and message."""

    attempts: int
    data: dict[str, Any] | None = None
    code: ErrorCode | None = None
    message: str = ""
    details: dict[str, Any] | None = None
    deduplicated: bool = False


@dataclass(frozen=True)
class _Prepared:
    action: AnyAction
    params: ActionParams


# A fallback runs when the action itself failed for good: after its retries, or at once for a
# final failure. Not when the request is wrong (unknown action, bad params) or too late.
FALLBACK_ON = frozenset(
    {
        ErrorCode.MISSING_CREDENTIALS,
        ErrorCode.VAULT_UNAVAILABLE,
        ErrorCode.UPSTREAM_ERROR,
        ErrorCode.UPSTREAM_UNAVAILABLE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.FORBIDDEN_DESTINATION,
        ErrorCode.INTERNAL_ERROR,
    }
)


def _deadline_passed(when: str) -> _Outcome:
    return _Outcome(
        0, code=ErrorCode.DEADLINE_EXCEEDED, message=f"the request's deadline passed {when}"
    )


def _log_outcome(log: FilteringBoundLogger, outcome: _Outcome, elapsed_s: float) -> None:
    duration_ms = round(elapsed_s * 1000, 3)
    if outcome.code is None:
        log.info("action.succeeded", attempts=outcome.attempts, duration_ms=duration_ms)
    else:
        log.warning(
            "action.failed",
            error_code=outcome.code.value,
            error_message=outcome.message,
            attempts=outcome.attempts,
            duration_ms=duration_ms,
        )


@dataclass
class ActionRunner:
    registry: ActionRegistry
    credentials: CredentialSource
    http: httpx.AsyncClient
    egress_http: httpx.AsyncClient
    config: ActionConfig = field(default_factory=ActionConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    attempt_timeout_s: float = 30.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], Any] = asyncio.sleep
    limiter: RateLimiter = field(default_factory=RateLimiter)
    breakers: CircuitBreakers = field(default_factory=CircuitBreakers)
    # Lends the caller's concurrency slot to others while it waits on a timer (rate limit, open
    # circuit); the engine passes its scheduler's `stepped_aside`.
    step_aside: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext
    # Records of requests that succeeded (`request_id` idempotency); None: every request runs.
    successes: SuccessStore | None = None
    idempotency_ttl_s: float = 86_400.0
    # How long a running request holds its id against a duplicate arriving meanwhile.
    idempotency_lease_s: float = 10.0

    async def execute(
        self,
        request: ExecutionRequest,
        request_id: str,
        log: FilteringBoundLogger,
        *,
        deduplicate: bool = True,
    ) -> ResultEnvelope:
        """`deduplicate=False` runs the request even if its id already succeeded (a replay
        with `--include-succeeded`)."""
        started_at = self.now()
        outcome, fallback = await self._execute(
            request, request_id, log, started_at, deduplicate and self.successes is not None
        )
        finished_at = self.now()
        common: dict[str, Any] = {
            "started_at": started_at,
            "finished_at": finished_at,
            "action": request.action,
            "project": request.project,
            "attempts": outcome.attempts,
            "metadata": request.metadata,
            "environment": request.environment,
        }
        if outcome.code is not None:
            envelope = error_envelope(
                request_id, outcome.code, outcome.message, details=outcome.details, **common
            )
        else:
            envelope = success_envelope(request_id, outcome.data or {}, **common)
        if outcome.deduplicated:
            envelope = envelope.model_copy(update={"deduplicated": True})
        if fallback is not None:
            envelope = envelope.model_copy(update={"fallback": fallback})
        return envelope

    async def _execute(
        self,
        request: ExecutionRequest,
        request_id: str,
        log: FilteringBoundLogger,
        started_at: datetime,
        deduplicate: bool = False,
    ) -> tuple[_Outcome, FallbackResult | None]:
        """The main action's outcome (logged), and the fallback's when one ran."""
        if not deduplicate:
            return await self._execute_once(request, request_id, log, started_at, None)
        key, owner = idempotency_key(request.project, request_id), new_owner()
        succeeded = False
        try:
            outcome, fallback = await self._execute_once(
                request, request_id, log, started_at, (key, owner)
            )
            # A deduplicated request never held the claim: nothing to write or give back.
            succeeded = outcome.code is None
            if succeeded and not outcome.deduplicated:
                await self.successes.succeeded(  # type: ignore[union-attr]
                    key, owner, outcome.data or {}, self.idempotency_ttl_s
                )
            return outcome, fallback
        finally:
            if not succeeded:
                # Failures are not remembered (and an abandoned run gives its claim back).
                await self.successes.release(key, owner)  # type: ignore[union-attr]

    async def _execute_once(
        self,
        request: ExecutionRequest,
        request_id: str,
        log: FilteringBoundLogger,
        started_at: datetime,
        claim: tuple[str, str] | None,
    ) -> tuple[_Outcome, FallbackResult | None]:
        clock_start = time.monotonic()
        prepared = self._prepare(request.action, request.params, "params")
        fallback: _Prepared | _Outcome | None = None
        if request.fallback is not None and isinstance(prepared, _Prepared):
            # Checked before anything runs: a fallback that could never run is a bad request.
            fallback = self._prepare(
                request.fallback.action, request.fallback.params, "fallback.params", "fallback: "
            )
        if isinstance(prepared, _Outcome):
            outcome = prepared
        elif isinstance(fallback, _Outcome):
            outcome = fallback
        elif claim is not None and (first := await self._first_success(*claim)) is not None:
            log.info("request.deduplicated")
            return _Outcome(0, data=first, deduplicated=True), None
        elif request.deadline is not None and started_at >= request.deadline:
            outcome = _deadline_passed("before it ran")
        else:
            outcome = await self._run(
                prepared.action, prepared.params, self._context(request, request_id, log)
            )
        _log_outcome(log, outcome, time.monotonic() - clock_start)
        if not isinstance(fallback, _Prepared) or outcome.code not in FALLBACK_ON:
            return outcome, None
        return outcome, await self._run_fallback(request, request_id, log, fallback, outcome)

    async def _first_success(self, key: str, owner: str) -> dict[str, Any] | None:
        """The data of this request's first success, or None once this caller holds the claim
        to run it. While another caller runs it, wait (lending the in-flight slot) for its
        outcome; a claim whose holder vanished ends with its lease."""
        assert self.successes is not None
        pause = 0.02
        while True:
            claim = await self.successes.claim(key, owner, self.idempotency_lease_s)
            if claim.data is not None:
                return claim.data
            if claim.mine:
                return None
            async with self.step_aside():
                await self.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def _run_fallback(
        self,
        request: ExecutionRequest,
        request_id: str,
        log: FilteringBoundLogger,
        fallback: _Prepared,
        failed: _Outcome,
    ) -> FallbackResult:
        name = fallback.action.name
        log = log.bind(action=name, fallback_for=request.action)
        log.info("fallback.started", main_error_code=failed.code.value if failed.code else None)
        clock_start = time.monotonic()
        if request.deadline is not None and self.now() >= request.deadline:
            outcome = _deadline_passed("before the fallback could run")
        else:
            outcome = await self._run(
                fallback.action, fallback.params, self._context(request, request_id, log)
            )
        elapsed = time.monotonic() - clock_start
        _log_outcome(log, outcome, elapsed)
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

    def _prepare(
        self, name: str, raw_params: dict[str, Any], where: str, label: str = ""
    ) -> _Prepared | _Outcome:
        action = self.registry.get(name)
        if action is None:
            return _Outcome(
                0, code=ErrorCode.UNKNOWN_ACTION, message=f"{label}no action named {name!r}"
            )
        try:
            params = action.params_model.model_validate(raw_params)
        except ValidationError as exc:
            return _Outcome(
                0, code=ErrorCode.INVALID_PARAMS, message=describe_validation_error(exc, where)
            )
        return _Prepared(action, params)

    def _context(
        self, request: ExecutionRequest, request_id: str, log: FilteringBoundLogger
    ) -> ActionContext:
        return ActionContext(
            request_id=request_id,
            project=request.project,
            deadline=request.deadline,
            credentials=self.credentials,
            http=self.http,
            egress_http=self.egress_http,
            config=self.config,
            log=log,
        )

    async def _run(self, action: AnyAction, params: ActionParams, ctx: ActionContext) -> _Outcome:
        log = ctx.log
        attempts = 0
        clock_start = time.monotonic()
        refetched_credential = False
        while True:
            attempts += 1
            try:
                data = await self._guarded_attempt(action, params, ctx, attempts, clock_start)
            except NotAttempted as exc:
                return _Outcome(
                    attempts - 1, code=exc.code, message=exc.message, details=exc.details
                )
            except CredentialRejected as exc:
                if refetched_credential:
                    return _Outcome(
                        attempts, code=exc.code, message=exc.message, details=exc.details
                    )
                # A rotated token: evict it and try once more with a fresh one, at once.
                refetched_credential = True
                await self.credentials.invalidate(ctx.project, exc.service)
                log.info(
                    "action.retrying",
                    attempt=attempts,
                    error_code="credential_rejected",
                    delay_s=0.0,
                )
                continue
            except RetryableError as exc:
                delay = self.retry.next_delay(
                    attempts,
                    time.monotonic() - clock_start,
                    exc.retry_after_s,
                    self._seconds_until(ctx.deadline),
                )
                if delay is None:
                    return _Outcome(
                        attempts, code=exc.code, message=exc.message, details=exc.details
                    )
                log.info(
                    "action.retrying",
                    attempt=attempts,
                    error_code=exc.code.value,
                    error_message=exc.message,
                    delay_s=round(delay, 3),
                )
                await self.sleep(delay)
                continue
            except ActionError as exc:
                return _Outcome(attempts, code=exc.code, message=exc.message, details=exc.details)
            except Exception:
                # A bug. The traceback goes to our log (scrubbed); the envelope says only that.
                log.exception("action.crashed", attempt=attempts)
                return _Outcome(
                    attempts,
                    code=ErrorCode.INTERNAL_ERROR,
                    message="the action failed unexpectedly (engine bug)",
                )
            return _Outcome(attempts, data=data)

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
        probe = False
        if upstream is not None:
            max_wait = self._max_wait_s(clock_start, ctx.deadline)
            if self.breakers.may_wait(upstream):
                async with self.step_aside():
                    probe = await self.breakers.admit(upstream, ctx.log, max_wait)
            else:
                probe = await self.breakers.admit(upstream, ctx.log, max_wait)
        failed: bool | None = None
        try:
            wait = await self.limiter.take(
                action.rate_keys(params, ctx), self._max_wait_s(clock_start, ctx.deadline)
            )
            if wait > 0:
                # Waiting on a timer needs no in-flight slot: other keys may use it meanwhile.
                async with self.step_aside():
                    await self.limiter.sleep(wait)
                ctx.log.info("action.rate_limited", attempt=attempt, waited_s=round(wait, 3))
            ctx.log.info("action.started", attempt=attempt)
            data = await self._attempt(action, params, ctx)
            failed = False
            return data
        except UpstreamUnavailable:
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
                await self.breakers.observe(upstream, probe=probe, failed=failed, log=ctx.log)

    async def _attempt(
        self, action: AnyAction, params: ActionParams, ctx: ActionContext
    ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.attempt_timeout_s):
                return dict(await action.run(params, ctx))
        except TimeoutError:
            raise UpstreamUnavailable(
                f"the action did not finish within {self.attempt_timeout_s:g} s"
            ) from None

    def _max_wait_s(self, clock_start: float, deadline: datetime | None) -> float:
        """How long a request may wait for a slot: what is left of the retry budget, and never
        past its deadline."""
        remaining = self.retry.budget_s - (time.monotonic() - clock_start)
        until_deadline = self._seconds_until(deadline)
        return remaining if until_deadline is None else min(remaining, until_deadline)

    def _seconds_until(self, deadline: datetime | None) -> float | None:
        if deadline is None:
            return None
        return (deadline - self.now()).total_seconds()
