"""Actions: what the engine can do. Knows nothing of Kafka."""

from actions.base import (
    NO_SLOT,
    Action,
    ActionConfig,
    ActionContext,
    ActionParams,
    CredentialSource,
    InFlightSlot,
    SyncAction,
)
from actions.circuit import CircuitBreakers, CircuitStore, SharedCircuit
from actions.egress import EgressPolicy, guarded_client, parse_networks
from actions.errors import (
    ActionError,
    CircuitOpen,
    CredentialRejected,
    DeadlineExceeded,
    ForbiddenDestination,
    InvalidParams,
    MissingCredentials,
    NotAttempted,
    RateLimited,
    RateLimitExhausted,
    RetryableError,
    StateUnavailable,
    UpstreamError,
    UpstreamUnavailable,
    VaultUnavailable,
)
from actions.idempotency import Claim, LocalSuccesses, SuccessStore
from actions.ratelimit import Rate, RateKey, RateLimiter, RateLimitSpec, RateStore
from actions.registry import ActionRegistry, default_registry
from actions.retry import RetryPolicy
from actions.runner import ActionRunner

__all__ = [
    "NO_SLOT",
    "Action",
    "ActionConfig",
    "ActionContext",
    "ActionError",
    "ActionParams",
    "ActionRegistry",
    "ActionRunner",
    "CircuitBreakers",
    "CircuitOpen",
    "CircuitStore",
    "Claim",
    "CredentialRejected",
    "CredentialSource",
    "DeadlineExceeded",
    "EgressPolicy",
    "ForbiddenDestination",
    "InFlightSlot",
    "InvalidParams",
    "LocalSuccesses",
    "MissingCredentials",
    "NotAttempted",
    "Rate",
    "RateKey",
    "RateLimitExhausted",
    "RateLimitSpec",
    "RateLimited",
    "RateLimiter",
    "RateStore",
    "RetryPolicy",
    "RetryableError",
    "SharedCircuit",
    "StateUnavailable",
    "SuccessStore",
    "SyncAction",
    "UpstreamError",
    "UpstreamUnavailable",
    "VaultUnavailable",
    "default_registry",
    "guarded_client",
    "parse_networks",
]
