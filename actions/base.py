"""What every action is and what it receives: a small context, and no knowledge of Kafka."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr
from structlog.typing import FilteringBoundLogger

from actions.ratelimit import RateKey, RateLimitSpec

SERVICE_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"


def _not_a_dot_segment(name: str) -> str:
    # The name becomes a path segment of the Vault URL: "." and ".." would walk the path.
    if name in {".", ".."}:
        raise ValueError("must not be '.' or '..'")
    return name


ServiceName = Annotated[
    str,
    Field(pattern=SERVICE_PATTERN, json_schema_extra={"not": {"enum": [".", ".."]}}),
    AfterValidator(_not_a_dot_segment),
]


def upstream_of(url: str) -> str | None:
    """The circuit-breaker name of a URL's upstream: its host and port (None if unparsable)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed.netloc.decode("ascii", "replace") or None


def is_safe_path_segment(name: str) -> bool:
    return re.fullmatch(SERVICE_PATTERN, name) is not None and name not in {".", ".."}


class CredentialSource(Protocol):
    """Credentials of one project. Implemented by the engine (Vault Engine client + cache)."""

    async def get(self, project: str, service: str) -> SecretStr:
        """The token, or raise MissingCredentials / VaultUnavailable."""
        ...

    async def invalidate(self, project: str, service: str) -> None:
        """Forget a cached token the third party rejected, so the next get() fetches anew."""
        ...


class InFlightSlot(Protocol):
    """The concurrency slot a running request holds in the engine."""

    def stepped_aside(self) -> AbstractAsyncContextManager[None]:
        """Within this block the request waits on a timer only (a rate-limit slot, an open
        circuit): its slot serves other requests meanwhile; its ordering lane stays held."""
        ...


class _NoSlot:
    """Outside the engine's scheduler (tests, tools): nothing to lend."""

    def stepped_aside(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()


NO_SLOT: InFlightSlot = _NoSlot()


@dataclass(frozen=True)
class ActionConfig:
    """Operator settings the actions read (base URLs point at local stand-ins in tests)."""

    slack_api_url: str = "https://slack.com/api"
    google_sheets_api_url: str = "https://sheets.googleapis.com"
    http_max_response_bytes: int = 256 * 1024
    http_max_redirects: int = 5
    http_default_timeout_s: float = 10.0
    http_max_timeout_s: float = 60.0
    notion_api_url: str = "https://api.notion.com"
    notion_version: str = "2022-06-28"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    # "starttls" (upgrade on the submission port), "tls" (implicit TLS, port 465), "none".
    smtp_security: str = "starttls"
    smtp_from: str | None = None
    smtp_timeout_s: float = 30.0


@dataclass(frozen=True)
class ActionContext:
    request_id: str
    project: str
    deadline: datetime | None
    credentials: CredentialSource
    # For the operator-configured third-party APIs (Slack, Google): trusted base URLs.
    http: httpx.AsyncClient
    # For `http_request`, whose URL comes from the request: every connection goes through the
    # egress policy (see actions.egress.guarded_client).
    egress_http: httpx.AsyncClient
    config: ActionConfig
    log: FilteringBoundLogger
    slot: InFlightSlot = NO_SLOT

    async def token(self, service: str) -> SecretStr:
        return await self.credentials.get(self.project, service)


class ActionParams(BaseModel):
    """Base of every params model: unknown params are rejected, like unknown request fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=ActionParams)


class Action(Generic[P]):
    """An action: a name, a params model, the Vault service it uses (if any), and `run`.

    `run` returns the envelope's `data` on success and raises an `ActionError` on failure.
    """

    name: ClassVar[str]
    params_model: ClassVar[type[ActionParams]]
    # The Vault service whose token `run` uses; None when it needs none, or it depends on params.
    service: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    # The rate limits its `rate_keys` name, each with the setting that configures it and its
    # default: the engine's settings read them from here (adding one touches no engine code).
    rate_limits: ClassVar[tuple[RateLimitSpec, ...]] = ()

    async def run(self, params: P, ctx: ActionContext) -> Mapping[str, Any]:
        raise NotImplementedError

    def rate_keys(self, params: P, ctx: ActionContext) -> Sequence[RateKey]:
        """The rate-limit budgets one call spends (e.g. its Slack channel); the runner waits
        for a slot in each before every attempt. None by default."""
        return ()

    def upstream(self, params: P, ctx: ActionContext) -> str | None:
        """The upstream (usually a host) whose circuit breaker guards this call; None: none."""
        return None


class SyncAction(Action[P]):
    """An action that does no I/O and never waits (e.g. `log_message`): `run_now` does its
    work synchronously, so the engine may run it inline, without a task, a timeout or a
    concurrency slot. Its failure is final: with no I/O, a retry would only repeat it. It has
    no rate budget and no upstream."""

    def run_now(self, params: P, ctx: ActionContext) -> Mapping[str, Any]:
        raise NotImplementedError

    async def run(self, params: P, ctx: ActionContext) -> Mapping[str, Any]:
        return self.run_now(params, ctx)
