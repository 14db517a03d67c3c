"""Credentials: the Vault Engine client and the cache in front of it.

The cache key is (project, service), so one project's token is never served to another. A
fetch is single-flight: a burst of requests for a cold key makes one Vault call, not hundreds.

Each cached token is held for redaction (`consumer.secrets.redaction`) while it is cached; a
record's own view of the cache (`for_record()`) adds every token the record fetched to that
record's redaction scope, which holds it until the record's outputs are rendered.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from actions import InvalidParams, MissingCredentials
from actions.base import is_safe_path_segment
from actions.errors import VaultUnavailable
from actions.http import HttpClient, HttpError, HttpTimeout, InvalidRequest
from consumer.secrets.matching import Secret
from consumer.secrets.redaction import SECRETS, RedactionScope, SecretRegistry, credential_problem

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
            SECRETS.add_engine_secret(token.get_secret_value())

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
        return SecretStr(token)


@dataclass
class _Entry:
    token: SecretStr
    secret: Secret  # held for redaction while the entry is cached
    expires_at: float


class CredentialCache:
    """A TTL + LRU cache with single-flight refresh. Implements `actions.CredentialSource`."""

    def __init__(
        self,
        fetch: Fetch,
        ttl_s: float = 300.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        secrets: SecretRegistry = SECRETS,
        *,
        forget: Forget | None = None,
    ) -> None:
        self._fetch = fetch
        self._forget = forget
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._secrets = secrets
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[tuple[SecretStr, Secret]]] = {}
        # Bumped by invalidate(): a fetch that started before must not cache what it got.
        self._generation: dict[tuple[str, str], int] = {}
        self._next_sweep = clock() + ttl_s
        self.hits = 0
        self.misses = 0

    @property
    def engine_scope(self) -> RedactionScope:
        """The scope of outputs that used no credential: the engine's own secrets."""
        return self._secrets.engine_scope

    def for_record(self) -> RecordCredentials:
        """One record's view: what it fetches is added to its redaction scope."""
        return RecordCredentials(self, self._secrets.scope())

    async def get(self, project: str, service: str) -> SecretStr:
        token, _ = await self.get_held(project, service)
        return token

    async def get_held(self, project: str, service: str) -> tuple[SecretStr, Secret]:
        """The token and its redaction handle (held by the cache only while it is cached:
        a caller that keeps using it retains it, as `RedactionScope.add` does)."""
        key = (project, service)
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires_at > self._clock():
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.token, entry.secret
            self._drop(key)
        self.misses += 1
        future = self._inflight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._load(key, self._generation.get(key, 0)))
            self._inflight[key] = future
            future.add_done_callback(self._forget_inflight)
        # shield: one waiter being cancelled must not cancel the fetch the others wait for.
        return await asyncio.shield(future)

    def _forget_inflight(self, future: asyncio.Future[tuple[SecretStr, Secret]]) -> None:
        for key, pending in list(self._inflight.items()):
            if pending is future:
                del self._inflight[key]
        if not future.cancelled():
            future.exception()  # retrieved: its waiters (if any are left) have it

    def scrubbed(self, value: dict[str, Any]) -> dict[str, Any]:
        """`value` scrubbed of every token cached now (the cache used as one shared source)."""
        scope = self._secrets.scope()
        for entry in self._entries.values():
            scope.add(entry.secret)
        try:
            scrubbed: dict[str, Any] = scope.scrub_value(value)
            return scrubbed
        finally:
            scope.close()

    async def invalidate(self, project: str, service: str) -> None:
        key = (project, service)
        self._drop(key)
        self._inflight.pop(key, None)  # later callers start a fresh fetch
        self._generation[key] = self._generation.get(key, 0) + 1
        if self._forget is not None:
            await self._forget(project, service)

    async def _load(self, key: tuple[str, str], generation: int) -> tuple[SecretStr, Secret]:
        token = await self._fetch(*key)
        problem = credential_problem(token.get_secret_value())
        if problem is not None:
            project, service = key
            # Never cached, never a redaction pattern: see consumer.secrets.redaction.
            raise MissingCredentials(
                f"the {service} credential of project {project!r} {problem}: not usable as a token",
                details={"service": service},
            )
        secret = self._secrets.hold(token.get_secret_value())
        if self._generation.get(key, 0) != generation:
            # Invalidated meanwhile: use it once, do not cache it. Its users retain it.
            self._secrets.release(secret)
            return token, secret
        self._drop(key)
        self._entries[key] = _Entry(token, secret, self._clock() + self._ttl_s)
        while len(self._entries) > self._max_entries:
            self._drop(next(iter(self._entries)))
        self._sweep_expired()
        return token, secret

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._secrets.release(entry.secret)

    def _sweep_expired(self) -> None:
        """Expired entries leave (and stop being redaction patterns) within a TTL, even when
        nobody asks for them again; one pass over the cache per half TTL at most."""
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._ttl_s / 2
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            self._drop(key)

    def __len__(self) -> int:
        return len(self._entries)


class RecordCredentials:
    """The credential cache as one record sees it (an `actions.CredentialSource`): every
    token it gets is added to the record's redaction scope. `close()` after the record's
    outputs are rendered."""

    def __init__(self, cache: CredentialCache, scope: RedactionScope) -> None:
        self._cache = cache
        self.scope = scope

    async def get(self, project: str, service: str) -> SecretStr:
        token, secret = await self._cache.get_held(project, service)
        self.scope.add(secret)
        return token

    async def invalidate(self, project: str, service: str) -> None:
        await self._cache.invalidate(project, service)

    def scrubbed(self, value: dict[str, Any]) -> dict[str, Any]:
        scrubbed: dict[str, Any] = self.scope.scrub_value(value)
        return scrubbed

    def close(self) -> None:
        self.scope.close()

    def __enter__(self) -> RecordCredentials:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
