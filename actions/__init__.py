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
from actions.circuit import CircuitBreakers
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
    OutcomeUnknown,
    RateLimited,
    RateLimitExhausted,
    RetryableError,
    UpstreamError,
    UpstreamUnavailable,
    VaultUnavailable,
)
from actions.http import (
    HttpClient,
    HttpError,
    HttpResponse,
)
from actions.ratelimit import Rate, RateKey, RateLimiter
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
    "CredentialRejected",
    "CredentialSource",
    "DeadlineExceeded",
    "EgressPolicy",
    "ForbiddenDestination",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "InFlightSlot",
    "InvalidParams",
    "MissingCredentials",
    "NotAttempted",
    "OutcomeUnknown",
    "Rate",
    "RateKey",
    "RateLimitExhausted",
    "RateLimited",
    "RateLimiter",
    "RetryPolicy",
    "RetryableError",
    "SyncAction",
    "UpstreamError",
    "UpstreamUnavailable",
    "VaultUnavailable",
    "default_registry",
    "guarded_client",
    "parse_networks",
]
