"""What every action is and what it receives: a small context, and no knowledge of Kafka."""

from __future__ import annotations

import contextlib
import functools
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
from actions.settings import ActionSettings, ActionSettingsSet

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
    names one (None if unparsable). It depends only on the scheme and authority, so those are
    parsed once per distinct authority: a flow calls the same few hosts with ever new paths."""
    for scheme in ("http://", "https://"):
        if url.startswith(scheme):
            # The authority ends where yarl ends it: the first `/`, `?` or `#`.
            end = len(url)
            for mark in "/?#":
                at = url.find(mark, len(scheme))
                if 0 <= at < end:
                    end = at
            return _authority_upstream(url[:end])
    return _authority_upstream(url)


@functools.lru_cache(maxsize=1024)
def _authority_upstream(url: str) -> str | None:
    try:
        parsed = URL(url)
        host = parsed.raw_host
    except (ValueError, TypeError, IndexError):  # IndexError: yarl on hosts like `http://[]@`
        return None
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

    def scrubbed(self, value: dict[str, Any]) -> dict[str, Any]:
        """`value` with every token this source handed out masked: what may be kept beyond
        the request (the data of its success, repeated to a deduplicated twin)."""
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


# What an attempt needs besides the provider's answer (the credential, the connection): the
# margin the runner adds to an action's own `attempt_timeout_s`.
ATTEMPT_MARGIN_S = 10.0
# The shortest provider timeout a deadline leaves: below it no call could complete.
MIN_PROVIDER_TIMEOUT_S = 1.0


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
    # What the actions declared (`Action.settings_model`): `ctx.settings.get(MySettings)`.
    settings: ActionSettingsSet
    log: FilteringBoundLogger
    slot: InFlightSlot = NO_SLOT
    attempt: AttemptState = field(default_factory=AttemptState)

    async def token(self, service: str) -> SecretStr:
        return await self.credentials.get(self.project, service)

    def call_timeout_s(self, setting_s: float) -> float:
        """A provider call's timeout: its setting, never past the request's deadline (but at
        least `MIN_PROVIDER_TIMEOUT_S`, so a call made just before the deadline can complete)."""
        if self.deadline is None:
            return setting_s
        left = (self.deadline - datetime.now(UTC)).total_seconds()
        return max(min(setting_s, left), MIN_PROVIDER_TIMEOUT_S)

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
    # Its own settings (base URLs, limits), read from the environment at start-up.
    settings_model: ClassVar[type[ActionSettings] | None] = None

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
        """How long its provider may take to answer when it documents answers slower than
        EXECUTION_ACTION_TIMEOUT_S (Notion's 60 s, SMTP's 10 minutes for DATA): the runner
        allows that plus `ATTEMPT_MARGIN_S`, if longer. None: the engine's setting."""
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
