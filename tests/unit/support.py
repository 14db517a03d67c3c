"""Shared helpers of the unit tests (not a test module)."""

from __future__ import annotations

import functools
import json
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from multidict import CIMultiDict
from pydantic import SecretStr
from yarl import URL

from actions import ActionContext, MissingCredentials
from actions.egress import IPAddress, Resolver
from actions.http import HttpClient, HttpResponse, checked_headers
from actions.registry import default_registry
from actions.settings import ActionSettings, ActionSettingsSet

# Hosts the unit tests may ever contact: loopback only.
LOOPBACK = "127.0.0.1"


class FakeCredentials:
    """A `CredentialSource` that hands out `token-<project>-<service>` and records calls."""

    def __init__(self, tokens: dict[tuple[str, str], str] | None = None) -> None:
        self.tokens = tokens
        self.gets: list[tuple[str, str]] = []
        self.invalidations: list[tuple[str, str]] = []

    def scrubbed(self, value: dict[str, Any]) -> dict[str, Any]:
        tokens = self.tokens.values() if self.tokens is not None else ()
        return {k: "[REDACTED]" if v in tokens else v for k, v in value.items()}

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


def action_settings(*overrides: ActionSettings) -> ActionSettingsSet:
    """Every built-in action's settings at their defaults, with `overrides` in their place."""
    given: dict[type[ActionSettings], ActionSettings] = {type(v): v for v in overrides}
    defaults = [model() for model in default_registry().settings_models() if model not in given]
    return ActionSettingsSet([*defaults, *given.values()])


def make_context(
    *,
    http: HttpClient,
    egress_http: HttpClient | None = None,
    credentials: FakeCredentials | None = None,
    settings: ActionSettingsSet | None = None,
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
        settings=settings or action_settings(),
        log=structlog.get_logger(),
    )


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One verifying context for every test client (loading CA files per client is slow)."""
    return ssl.create_default_context()


def plain_client(timeout: float = 5.0, **options: Any) -> HttpClient:
    """The engine's client for trusted base URLs, as `service_client` makes it (loopback
    stand-ins only; the client never reads proxy settings of the environment)."""
    return HttpClient(timeout_s=timeout, verify=ssl_context(), **options)


@dataclass(frozen=True)
class SentRequest:
    method: str
    url: URL
    headers: CIMultiDict[str]
    body: bytes | None


class FakeHttpClient(HttpClient):
    """An `HttpClient` that sends nothing: it records each request as the real client would
    send it (URL parsed the same way, headers checked the same way) and answers with
    `answer(request)`. The equivalent of httpx's MockTransport for unit tests."""

    def __init__(self, answer: Callable[[SentRequest], HttpResponse] | None = None) -> None:
        super().__init__()
        self.answer = answer or _unexpected
        self.sent: list[SentRequest] = []

    async def request(self, method: str, url: str | URL, **options: Any) -> HttpResponse:
        target = url if isinstance(url, URL) else URL(url)
        if options.get("params"):
            target = target.extend_query(options["params"])
        headers = CIMultiDict(checked_headers(options.get("headers") or ()))
        content = options.get("content")
        body = content.encode() if isinstance(content, str) else content
        request = SentRequest(method, target, headers, body)
        self.sent.append(request)
        return self.answer(request)


def _unexpected(request: SentRequest) -> HttpResponse:
    pytest.fail(f"unexpected HTTP request to {request.url}")


def json_response(status: int, body: Any) -> HttpResponse:
    headers = CIMultiDict({"Content-Type": "application/json"})
    return HttpResponse(status, headers, json.dumps(body).encode())


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
