"""What every action is and what it receives: a small context, and no knowledge of Kafka."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr
from structlog.typing import FilteringBoundLogger
from yarl import URL

from actions.errors import InvalidParams
from actions.http import HttpClient, is_sendable_value
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
    """The circuit-breaker name of a URL's upstream: its host, and its port when the URL
    names one (None if unparsable)."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None
    host = parsed.raw_host
    if not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return host if parsed.explicit_port is None else f"{host}:{parsed.explicit_port}"


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
    # Content-encoding layers a response may have (`gzip, gzip` is 2): more is refused.
    http_max_content_encodings: int = 1
    http_max_redirects: int = 5
    http_default_timeout_s: float = 10.0
    http_max_timeout_s: float = 60.0
    notion_api_url: str = "https://api.notion.com"
    # 2025-09-03: databases hold data sources; pages are created under `data_source_id`.
    notion_version: str = "2025-09-03"
    # How long a `Retry-After` from Notion is honoured when the request has no deadline.
    notion_retry_after_max_s: float = 120.0
    # How long `create_sheet` may wait out Google's per-minute quota (429) in all: a minute's
    # window and a margin. The request's deadline bounds it too.
    sheets_quota_wait_s: float = 65.0
    smtp_host: str = "localhost"
    smtp_port: int = 587
    # "starttls" (upgrade on the submission port), "tls" (implicit TLS, port 465), "none".
    smtp_security: str = "starttls"
    smtp_from: str | None = None
    smtp_timeout_s: float = 30.0
    # RFC 5321 4.5.3.2.6: wait 10 minutes for the reply to DATA's final dot ("an early timeout
    # would typically result in delivery of multiple copies").
    smtp_data_timeout_s: float = 600.0
    # How long a provider's answer is awaited. Notion ends a request at 60 s (503): we wait
    # longer. Slack and Google document no server time limit: the attempt's own 30 s.
    notion_timeout_s: float = 65.0
    slack_timeout_s: float = 30.0
    google_sheets_timeout_s: float = 30.0


# What an attempt needs besides the provider's answer (the credential, the connection): the
# margin an action's `attempt_timeout_s` adds to its provider's timeout.
ATTEMPT_MARGIN_S = 10.0
# The shortest provider timeout a deadline leaves: below it no call could complete.
MIN_PROVIDER_TIMEOUT_S = 1.0


def provider_timeout_s(setting_s: float, ctx: ActionContext) -> float:
    """A provider call's timeout: its setting, never past the request's deadline (but at least
    `MIN_PROVIDER_TIMEOUT_S`, so a call made just before the deadline can still complete)."""
    if ctx.deadline is None:
        return setting_s
    left = (ctx.deadline - datetime.now(UTC)).total_seconds()
    return max(min(setting_s, left), MIN_PROVIDER_TIMEOUT_S)


@dataclass
class AttemptState:
    """What the running attempt has done so far. The runner reads it when an attempt runs out
    of time: a non-idempotent call already handed to the transport may have taken effect."""

    number: int = 1
    unsafe_call_sent: bool = False
    # The provider's window (seconds from the first attempt) the last retry waited out, if any.
    window_s: float | None = None

    def sending(self, *, idempotent: bool) -> None:
        """Called by an action just before it hands a call to the transport."""
        if not idempotent:
            self.unsafe_call_sent = True

    def start(self, number: int) -> None:
        self.number = number
        self.unsafe_call_sent = False


# Read-only by convention, not frozen: a frozen dataclass sets each field through
# `object.__setattr__`, 3.2 us per context against 1.0 with slots, and every request has one.
@dataclass(slots=True)
class ActionContext:
    request_id: str
    project: str
    deadline: datetime | None
    credentials: CredentialSource
    # For the operator-configured third-party APIs (Slack, Google): trusted base URLs.
    http: HttpClient
    # For URLs a request names (`http_request`, `send_webhook`): every host and connection goes
    # through the egress policy (see actions.egress.guarded_client).
    egress_http: HttpClient
    config: ActionConfig
    log: FilteringBoundLogger
    slot: InFlightSlot = NO_SLOT
    attempt: AttemptState = field(default_factory=AttemptState)

    async def token(self, service: str) -> SecretStr:
        return await self.credentials.get(self.project, service)

    async def credential_header(self, service: str, prefix: str = "Bearer ") -> str:
        """`prefix + token` of `service`, as a header value: `InvalidParams` when the stored
        credential cannot be one (empty, a line break, a control character, leading or
        trailing space: the receiver would read another token, or a second header)."""
        return credential_header_value(await self.token(service), service, prefix)


def credential_header_value(token: SecretStr, service: str, prefix: str) -> str:
    secret = token.get_secret_value()
    if not secret or not is_sendable_value(secret):
        raise InvalidParams(
            f"the {service} credential cannot be sent in an HTTP header (empty, or a line "
            "break, control character or leading/trailing space in its value)",
            details={"service": service},
        )
    if not is_sendable_value(prefix + "x"):
        raise InvalidParams(
            "credential.prefix has a line break, a control character or a leading space"
        )
    return prefix + secret


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

    def attempt_timeout_s(self, params: P, ctx: ActionContext) -> float | None:
        """How long one attempt may need when its provider documents answers slower than
        EXECUTION_ACTION_TIMEOUT_S (Notion's 60 s, SMTP's 10 minutes for DATA): the runner
        allows the longer of the two. None: the engine's setting."""
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
