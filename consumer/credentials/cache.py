"""Credentials: the Vault Engine client and the cache in front of it.

The cache key is (project, service), so one project's token is never served to another. A
fetch is single-flight: a burst of requests for a cold key makes one Vault call, not hundreds.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from pydantic import SecretStr

from actions import InvalidParams, MissingCredentials, VaultUnavailable
from actions.base import is_safe_path_segment
from actions.http import HttpClient, HttpError, HttpTimeout, InvalidRequest
from consumer.ops.redaction import REDACTOR

Fetch = Callable[[str, str], Awaitable[SecretStr]]
# Told when a token is invalidated (the fleet's shared cache forgets it too).
Forget = Callable[[str, str], Awaitable[None]]


class VaultRefused(VaultUnavailable):
    """The Vault refused our own token (401/403), or a path it cannot serve: most often a
    configuration error, but also a token being rotated (VAULT_TOKEN_FILE is read anew each
    time). `vault_unavailable` is retryable in the contract, so it is retried like the rest."""


class VaultEngineClient:
    """`GET {VAULT_URL}/vault/token/{project}/{service}` -> `{"token": "..."}` (one attempt;
    the action runner retries `VaultUnavailable` with the same backoff as everything else)."""

    def __init__(self, base_url: str, http: HttpClient, token: SecretStr | None = None) -> None:
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        if token:
            REDACTOR.add(token.get_secret_value())

    async def fetch(self, project: str, service: str) -> SecretStr:
        # Both are validated names already; this is the second lock on the path.
        if not (is_safe_path_segment(project) and is_safe_path_segment(service)):
            raise InvalidParams(f"not a valid project/service name: {project!r}/{service!r}")
        url = f"{self._base_url}/vault/token/{quote(project, safe='')}/{quote(service, safe='')}"
        try:
            response = await self._http.get(url, headers=self._headers)
        except HttpTimeout:
            raise VaultUnavailable("the Vault Engine did not answer in time") from None
        except InvalidRequest as exc:  # VAULT_URL or VAULT_TOKEN unusable: not transient
            raise VaultRefused(f"cannot ask the Vault Engine: {exc.message}") from None
        except HttpError as exc:
            raise VaultUnavailable(
                f"cannot reach the Vault Engine ({type(exc).__name__})"
            ) from None
        if response.status == 404:
            raise MissingCredentials(
                f"no {service} credential in the Vault for project {project!r}",
                details={"service": service},
            )
        if response.status in (401, 403):
            raise VaultRefused(
                f"the Vault Engine refused the engine's token ({response.status})",
                details={"status_code": response.status},
            )
        if response.status != 200:
            raise VaultUnavailable(
                f"the Vault Engine answered {response.status}",
                details={"status_code": response.status},
            )
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise VaultUnavailable("the Vault Engine answered without a token") from None
        if not isinstance(token, str) or not token:
            raise MissingCredentials(
                f"the {service} credential of project {project!r} is empty",
                details={"service": service},
            )
        REDACTOR.add(token)
        return SecretStr(token)


@dataclass
class _Entry:
    token: SecretStr
    expires_at: float


class CredentialCache:
    """A TTL + LRU cache with single-flight refresh. Implements `actions.CredentialSource`."""

    def __init__(
        self,
        fetch: Fetch,
        ttl_s: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        forget: Forget | None = None,
    ) -> None:
        self._fetch = fetch
        self._forget = forget
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[SecretStr]] = {}
        # Bumped by invalidate(): a fetch that started before must not cache what it got.
        self._generation: dict[tuple[str, str], int] = {}
        self.hits = 0
        self.misses = 0

    async def get(self, project: str, service: str) -> SecretStr:
        key = (project, service)
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at > self._clock():
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.token
        self.misses += 1
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._load(key, self._generation.get(key, 0)))
            self._inflight[key] = future
            future.add_done_callback(self._forget_inflight)
        # shield: one waiter being cancelled must not cancel the fetch the others wait for.
        return await asyncio.shield(future)

    def _forget_inflight(self, future: asyncio.Future[SecretStr]) -> None:
        for key, pending in list(self._inflight.items()):
            if pending is future:
                del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved: its waiters (if any are left) have it

    async def invalidate(self, project: str, service: str) -> None:
        key = (project, service)
        self._entries.pop(key, None)
        self._inflight.pop(key, None)  # later callers start a fresh fetch
        self._generation[key] = self._generation.get(key, 0) + 1
        if self._forget is not None:
            await self._forget(project, service)

    async def _load(self, key: tuple[str, str], generation: int) -> SecretStr:
        token = await self._fetch(*key)
        if self._generation.get(key, 0) != generation:
            return token  # invalidated meanwhile: use it once, do not cache it
        self._entries[key] = _Entry(token, self._clock() + self._ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return token

    def __len__(self) -> int:
        return len(self._entries)
