"""How an HTTP call can fail, and whether the request had gone out when it did.

`sent` is what retry decisions need: a call that never left (no connection, a connect timeout,
a request the client refused to send) can be repeated without repeating its effect; one that
went out and got no complete answer may have had its effect already.
"""

from __future__ import annotations


class HttpError(Exception):
    """Base of every failure `HttpClient.request` raises (egress refusals aside, which are
    `ForbiddenDestination`). The message names no header value and no body."""

    sent: bool = True

    def __init__(self, message: str, *, sent: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if sent is not None:
            self.sent = sent


class InvalidRequest(HttpError, ValueError):
    """The request cannot be sent as given (a header with a line break, a URL that does not
    parse): the caller's fault, never the upstream's. Nothing was sent."""

    sent = False


class ConnectFailed(HttpError):
    """No connection: the name did not resolve, the address refused, TLS did not verify."""

    sent = False


class HttpTimeout(HttpError):
    """No complete answer in time. `sent` is False when the time ran out while connecting
    (or waiting for a free connection), True once the request had started to go out."""


class ConnectionLost(HttpError):
    """The connection broke after the request started to go out (reset, closed early, an
    answer cut short)."""


class BadResponse(HttpError):
    """The upstream answered something this client will not read: a body it cannot decode,
    more content-encoding layers than allowed, an encoding it does not support."""
