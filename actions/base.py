"""What every action is and what it receives: a small context, and no knowledge of Kafka."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr
from structlog.typing import FilteringBoundLogger


class CredentialSource(Protocol):
    """Credentials of one project. Implemented by the engine (Vault Engine client + cache)."""

    async def get(self, project: str, service: str) -> SecretStr:
        """The token, or raise MissingCredentials / VaultUnavailable."""
        ...

    async def invalidate(self, project: str, service: str) -> None:
        """Forget a cached token the third party rejected, so the next get() fetches anew."""
        ...


@dataclass(frozen=True)
class ActionConfig:
    """Operator settings the actions read (base URLs point at local stand-ins in tests)."""

    slack_api_url: str = "https://slack.com/api"
    google_sheets_api_url: str = "https://sheets.googleapis.com"
    http_max_response_bytes: int = 256 * 1024
    http_max_redirects: int = 5
    http_default_timeout_s: float = 10.0
    http_max_timeout_s: float = 60.0


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

    async def run(self, params: P, ctx: ActionContext) -> Mapping[str, Any]:
        raise NotImplementedError
