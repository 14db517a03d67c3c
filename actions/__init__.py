"""The plugin SDK: what an action (built in or a plugin's) is made of. Knows nothing of Kafka.

An action is an `Action` subclass (or `SyncAction`, for one that does no I/O) with an
`ActionParams` model; `run` gets an `ActionContext` and raises the errors below; `rate_keys`
returns `RateKey`s of the `RateLimitSpec`s it declares; `upstream` names its circuit
(`upstream_of`); its own settings are an `ActionSettings` model of `setting(...)` fields
(`settings_model`), read by `ctx.settings.get(...)`. A plugin registers it under the
`puraify.actions` entry point (`actions.registry.PLUGIN_GROUP`). The engine's runtime (runner,
retries, circuits) is `actions.runtime`.
"""

from actions.base import Action, ActionContext, ActionParams, ServiceName, SyncAction, upstream_of
from actions.errors import (
    ActionError,
    CredentialRejected,
    ForbiddenDestination,
    InvalidParams,
    MissingCredentials,
    OutcomeUnknown,
    RateLimited,
    RetryableError,
    UpstreamError,
    UpstreamUnavailable,
    error_for_exception,
    error_for_status,
    parse_retry_after,
)
from actions.http import HttpClient, HttpError, HttpResponse, HttpTimeout
from actions.ratelimit import RateKey, RateLimitSpec
from actions.settings import ActionSettings, setting

__all__ = [
    "Action",
    "ActionContext",
    "ActionError",
    "ActionParams",
    "ActionSettings",
    "CredentialRejected",
    "ForbiddenDestination",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "HttpTimeout",
    "InvalidParams",
    "MissingCredentials",
    "OutcomeUnknown",
    "RateKey",
    "RateLimitSpec",
    "RateLimited",
    "RetryableError",
    "ServiceName",
    "SyncAction",
    "UpstreamError",
    "UpstreamUnavailable",
    "error_for_exception",
    "error_for_status",
    "parse_retry_after",
    "setting",
    "upstream_of",
]
