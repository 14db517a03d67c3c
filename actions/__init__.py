"""Actions: what the engine can do. Knows nothing of Kafka.

The public API, for the engine and for plugins (a plugin imports only from here): an action is
an `Action` subclass with an `ActionParams` model; `run` gets an `ActionContext` and raises the
errors below; `rate_keys` returns `RateKey`s; `upstream` names its circuit (`upstream_of`).
"""

from actions.base import (
    NO_SLOT,
    SERVICE_PATTERN,
    Action,
    ActionConfig,
    ActionContext,
    ActionParams,
    CredentialSource,
    InFlightSlot,
    ServiceName,
    SyncAction,
    is_safe_path_segment,
    upstream_of,
)
from actions.circuit import CircuitBreakers
from actions.egress import (
    EgressPolicy,
    egress_url,
    guarded_client,
    literal_address,
    parse_networks,
)
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
    error_for_exception,
    error_for_status,
    parse_retry_after,
)
from actions.http import (
    HttpClient,
    HttpError,
    HttpResponse,
    HttpTimeout,
)
from actions.limits import MAX_JSON_DEPTH, json_depth_exceeds, upstream_json
from actions.preparation import (
    PreparedAction,
    PreparedRequest,
    Unrunnable,
    describe_validation_error,
    prepare_request,
)
from actions.ratelimit import Rate, RateKey, RateLimiter
from actions.registry import (
    PLUGIN_GROUP,
    ActionRegistry,
    AnyAction,
    builtin_actions,
    default_registry,
    plugin_actions,
)
from actions.request_id_header import request_id_header_value
from actions.retry import RetryPolicy
from actions.runner import FALLBACK_ON, ActionRunner
from actions.smtp_outcome import submit_message
from actions.webhook_signing import (
    DEFAULT_TOLERANCE_S,
    STANDARD_ID_HEADER,
    STANDARD_SIGNATURE_HEADER,
    STANDARD_TIMESTAMP_HEADER,
    STRIPE_SIGNATURE_HEADER,
    standard_sign,
    stripe_sign,
    stripe_verify,
)

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "FALLBACK_ON",
    "MAX_JSON_DEPTH",
    "NO_SLOT",
    "PLUGIN_GROUP",
    "SERVICE_PATTERN",
    "STANDARD_ID_HEADER",
    "STANDARD_SIGNATURE_HEADER",
    "STANDARD_TIMESTAMP_HEADER",
    "STRIPE_SIGNATURE_HEADER",
    "Action",
    "ActionConfig",
    "ActionContext",
    "ActionError",
    "ActionParams",
    "ActionRegistry",
    "ActionRunner",
    "AnyAction",
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
    "HttpTimeout",
    "InFlightSlot",
    "InvalidParams",
    "MissingCredentials",
    "NotAttempted",
    "OutcomeUnknown",
    "PreparedAction",
    "PreparedRequest",
    "Rate",
    "RateKey",
    "RateLimitExhausted",
    "RateLimited",
    "RateLimiter",
    "RetryPolicy",
    "RetryableError",
    "ServiceName",
    "SyncAction",
    "Unrunnable",
    "UpstreamError",
    "UpstreamUnavailable",
    "VaultUnavailable",
    "builtin_actions",
    "default_registry",
    "describe_validation_error",
    "egress_url",
    "error_for_exception",
    "error_for_status",
    "guarded_client",
    "is_safe_path_segment",
    "json_depth_exceeds",
    "literal_address",
    "parse_networks",
    "parse_retry_after",
    "plugin_actions",
    "prepare_request",
    "request_id_header_value",
    "standard_sign",
    "stripe_sign",
    "stripe_verify",
    "submit_message",
    "upstream_json",
    "upstream_of",
]
