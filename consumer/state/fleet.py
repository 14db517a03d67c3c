"""The state an engine shares with its fleet: one interface, two implementations.

`InProcessState` (no `EXECUTION_STATE_URL`): rate limits and circuits are the actions' own
per-process ones, idempotency records an in-process LRU, credentials cached per process.
`ValkeyState`: the same parts on a Redis/Valkey server, each call guarded (bounded, falling
back to the in-process part) so the store is never a single point of failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from structlog.typing import FilteringBoundLogger

from actions.ratelimit import RateStore
from actions.runtime.circuit import CircuitStore
from actions.runtime.idempotency import LocalSuccesses, SuccessStore
from consumer.credentials.cache import Fetch, Forget
from consumer.ops.metrics import EngineMetrics
from consumer.secrets.redaction import SECRETS
from consumer.state.credentials import SharedCredentials, TokenSeal
from consumer.state.guard import StateGuard
from consumer.state.settings import StateSettings, decode_encryption_key

if TYPE_CHECKING:
    from consumer.state.remote import RemoteState


class FleetState(Protocol):
    """What the engine is composed from; None for a part that is per process."""

    @property
    def rates(self) -> RateStore | None: ...

    @property
    def circuits(self) -> CircuitStore | None: ...

    @property
    def successes(self) -> SuccessStore: ...

    def credentials(self, fetch: Fetch, ttl_s: float) -> tuple[Fetch, Forget | None]:
        """The Vault fetch to build the credential cache with, and what it calls when a
        token is invalidated."""
        ...

    async def aclose(self) -> None: ...


class InProcessState:
    def __init__(self, local: LocalSuccesses) -> None:
        self.rates: RateStore | None = None
        self.circuits: CircuitStore | None = None
        self.successes: SuccessStore = local

    def credentials(self, fetch: Fetch, ttl_s: float) -> tuple[Fetch, Forget | None]:
        return fetch, None

    async def aclose(self) -> None:
        return None


class ValkeyState:
    def __init__(
        self, remote: RemoteState, successes: SuccessStore, seal: TokenSeal | None
    ) -> None:
        self.remote = remote
        self.rates: RateStore | None = remote
        self.circuits: CircuitStore | None = remote
        self.successes = successes
        self._seal = seal
        self.shared_credentials: SharedCredentials | None = None

    def credentials(self, fetch: Fetch, ttl_s: float) -> tuple[Fetch, Forget | None]:
        if self._seal is None:
            return fetch, None  # no encryption key: tokens never go to the store
        shared = SharedCredentials(self.remote, self._seal, fetch, ttl_s)
        self.shared_credentials = shared
        return shared.fetch, shared.forget

    async def aclose(self) -> None:
        await self.remote.aclose()


def build_state(
    settings: StateSettings, group_id: str, log: FilteringBoundLogger, metrics: EngineMetrics
) -> InProcessState | ValkeyState:
    local = LocalSuccesses(settings.idempotency_max_entries)
    if settings.state_url is None:
        return InProcessState(local)
    # Imported here: an engine without a store does not load the client.
    from valkey.exceptions import ValkeyError  # noqa: PLC0415

    from consumer.state.remote import RemoteState, SharedSuccesses, connect  # noqa: PLC0415

    timeout_s = settings.state_timeout_s
    client = connect(
        settings.state_url.get_secret_value(),
        username=settings.state_username,
        password=settings.state_password.get_secret_value() if settings.state_password else None,
        ca_file=settings.state_ca_file,
    )
    guard = StateGuard(
        timeout_s,
        log,
        errors=(ValkeyError,),
        on_available=lambda up: metrics.state_available.set(1 if up else 0),
        on_fallback=metrics.state_fallbacks.inc,
    )
    seal = None
    if settings.state_encryption_key is not None:
        key_text = settings.state_encryption_key.get_secret_value()
        SECRETS.add_engine_secret(key_text)  # nothing the engine writes may show it
        seal = TokenSeal(decode_encryption_key(key_text))
    remote = RemoteState(client, guard, settings.state_prefix or group_id)
    return ValkeyState(remote, SharedSuccesses(remote, local), seal)
