"""Shared helpers of the unit tests (not a test module)."""

from __future__ import annotations

import functools
import socket
import ssl
from collections.abc import Sequence
from typing import Any

import httpx
import structlog
from pydantic import SecretStr

from actions import ActionConfig, ActionContext, MissingCredentials
from actions.egress import IPAddress, Resolver

# Hosts the unit tests may ever contact: loopback only.
LOOPBACK = "127.0.0.1"


class FakeCredentials:
    """A `CredentialSource` that hands out `token-<project>-<service>` and records calls."""

    def __init__(self, tokens: dict[tuple[str, str], str] | None = None) -> None:
        self.tokens = tokens
        self.gets: list[tuple[str, str]] = []
        self.invalidations: list[tuple[str, str]] = []

    async def get(self, project: str, service: str) -> SecretStr:
        self.gets.append((project, service))
        if self.tokens is None:
            return SecretStr(f"token-{project}-{service}")
        try:
            return SecretStr(self.tokens[(project, service)])
        except KeyError:
            raise MissingCredentials(f"no {service} credential") from None

    async def invalidate(self, project: str, service: str) -> None:
        self.invalidations.append((project, service))


def make_context(
    *,
    http: httpx.AsyncClient,
    egress_http: httpx.AsyncClient | None = None,
    credentials: FakeCredentials | None = None,
    config: ActionConfig | None = None,
    request_id: str = "req-1",
    project: str = "demo-project",
) -> ActionContext:
    return ActionContext(
        request_id=request_id,
        project=project,
        deadline=None,
        credentials=credentials or FakeCredentials(),
        http=http,
        egress_http=egress_http or http,
        config=config or ActionConfig(),
        log=structlog.get_logger(),
    )


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One verifying context for every test client (loading CA files per client is slow)."""
    return ssl.create_default_context()


def plain_client(timeout: float = 5.0, **options: Any) -> httpx.AsyncClient:
    """A client that ignores proxy settings of the environment (loopback stand-ins only)."""
    return httpx.AsyncClient(
        trust_env=False, timeout=httpx.Timeout(timeout), verify=ssl_context(), **options
    )


def loopback_resolver(names: dict[str, Sequence[IPAddress]]) -> Resolver:
    """A resolver answering only from `names` (never the system resolver)."""

    async def resolve(host: str, port: int) -> Sequence[IPAddress]:
        try:
            return names[host]
        except KeyError:
            raise OSError(f"unknown test host {host!r}") from None

    return resolve


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port
