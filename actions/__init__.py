"""Actions: what the engine can do. Knows nothing of Kafka."""

from actions.base import Action, ActionConfig, ActionContext, ActionParams, CredentialSource
from actions.egress import EgressPolicy, guarded_client, parse_networks
from actions.errors import (
    ActionError,
    CredentialRejected,
    DeadlineExceeded,
    ForbiddenDestination,
    InvalidParams,
    MissingCredentials,
    RateLimited,
    RetryableError,
    UpstreamError,
    UpstreamUnavailable,
    VaultUnavailable,
)
from actions.registry import ActionRegistry, default_registry
from actions.retry import RetryPolicy
from actions.runner import ActionRunner

__all__ = [
    "Action",
    "ActionConfig",
    "ActionContext",
    "ActionError",
    "ActionParams",
    "ActionRegistry",
    "ActionRunner",
    "CredentialRejected",
    "CredentialSource",
    "DeadlineExceeded",
    "EgressPolicy",
    "ForbiddenDestination",
    "InvalidParams",
    "MissingCredentials",
    "RateLimited",
    "RetryPolicy",
    "RetryableError",
    "UpstreamError",
    "UpstreamUnavailable",
    "VaultUnavailable",
    "default_registry",
    "guarded_client",
    "parse_networks",
]
