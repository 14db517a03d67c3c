"""Runs one validated request's action: params, deadline, credentials, retries -> one envelope.

This is the single place where action failures become the contract's error codes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError
from structlog.typing import FilteringBoundLogger

from actions.base import ActionConfig, ActionContext, ActionParams, CredentialSource
from actions.errors import ActionError, CredentialRejected, RetryableError, UpstreamUnavailable
from actions.registry import ActionRegistry, AnyAction
from actions.retry import RetryPolicy
from schemas import ErrorCode, ExecutionRequest, ResultEnvelope, error_envelope, success_envelope


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

    async def execute(
        self, request: ExecutionRequest, request_id: str, log: FilteringBoundLogger
    ) -> ResultEnvelope:
        started_at = self.now()
        attempts = 0

        def fail(
            code: ErrorCode, message: str, details: dict[str, Any] | None = None
        ) -> ResultEnvelope:
            finished_at = self.now()
            envelope = error_envelope(
                request_id,
                code,
                message,
                started_at=started_at,
                finished_at=finished_at,
                action=request.action,
                project=request.project,
                details=details,
                attempts=attempts,
                metadata=request.metadata,
                environment=request.environment,
            )
            log.warning(
                "action.failed",
                error_code=code.value,
                error_message=message,
                attempts=attempts,
                duration_ms=envelope.duration_ms,
            )
            return envelope

        action = self.registry.get(request.action)
        if action is None:
            return fail(ErrorCode.UNKNOWN_ACTION, f"no action named {request.action!r}")
        try:
            params = action.params_model.model_validate(request.params)
        except ValidationError as exc:
            return fail(ErrorCode.INVALID_PARAMS, describe_validation_error(exc, "params"))
        if request.deadline is not None and started_at >= request.deadline:
            return fail(ErrorCode.DEADLINE_EXCEEDED, "the request's deadline passed before it ran")

        ctx = ActionContext(
            request_id=request_id,
            project=request.project,
            deadline=request.deadline,
            credentials=self.credentials,
            http=self.http,
            egress_http=self.egress_http,
            config=self.config,
            log=log,
        )
        clock_start = time.monotonic()
        refetched_credential = False
        while True:
            attempts += 1
            log.info("action.started", attempt=attempts)
            try:
                data = await self._attempt(action, params, ctx)
            except CredentialRejected as exc:
                if refetched_credential:
                    return fail(exc.code, exc.message, exc.details)
                # A rotated token: evict it and try once more with a fresh one, at once.
                refetched_credential = True
                await self.credentials.invalidate(request.project, exc.service)
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
                    self._seconds_until(request.deadline),
                )
                if delay is None:
                    return fail(exc.code, exc.message, exc.details)
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
                return fail(exc.code, exc.message, exc.details)
            except Exception:
                # A bug. The traceback goes to our log (scrubbed); the envelope says only that.
                log.exception("action.crashed", attempt=attempts)
                return fail(ErrorCode.INTERNAL_ERROR, "the action failed unexpectedly (engine bug)")
            finished_at = self.now()
            envelope = success_envelope(
                request_id,
                data,
                action=request.action,
                project=request.project,
                started_at=started_at,
                finished_at=finished_at,
                attempts=attempts,
                metadata=request.metadata,
                environment=request.environment,
            )
            log.info("action.succeeded", attempts=attempts, duration_ms=envelope.duration_ms)
            return envelope

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

    def _seconds_until(self, deadline: datetime | None) -> float | None:
        if deadline is None:
            return None
        return (deadline - self.now()).total_seconds()
