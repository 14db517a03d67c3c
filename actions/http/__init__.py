"""The HTTP API actions and plugins call: `ctx.http` / `ctx.egress_http` are `HttpClient`s.

    response = await ctx.http.request(
        "POST", url, headers={"Authorization": ...}, json={...}, timeout_s=10
    )
    response.status, response.headers["content-type"], response.body, response.json()

Failures are `HttpError`s carrying `sent` (had the request gone out?); `error_for_exception`
in `actions.errors` maps them to the contract's codes.
"""

from actions.http.client import DEFAULT_MAX_BODY_BYTES, HttpClient
from actions.http.connect import ConnectGuard
from actions.http.errors import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    HttpError,
    HttpTimeout,
    InvalidRequest,
)
from actions.http.headers import checked_headers, is_sendable_value
from actions.http.proxy import Proxies, Proxy
from actions.http.response import HttpResponse

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BadResponse",
    "ConnectFailed",
    "ConnectGuard",
    "ConnectionLost",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "HttpTimeout",
    "InvalidRequest",
    "Proxies",
    "Proxy",
    "checked_headers",
    "is_sendable_value",
]
