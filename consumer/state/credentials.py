"""The credential cache on the fleet's store, only with `EXECUTION_STATE_ENCRYPTION_KEY`.

A token is stored sealed with AES-256-GCM (a random 96-bit nonce per write; the key name is the
associated data, so a value copied under another project's key does not open), expiring with
the cache's TTL. Never in plaintext: without the key nothing goes to the store.

It sits between the process's own `CredentialCache` and the Vault: a miss in process looks in
the store, and a miss there fetches from the Vault once for the fleet where it is cheap: the
first engine takes a short lock, the others wait a moment for its result to appear (then fetch
themselves, so a lost lock holder costs a little time, never a request).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from actions.errors import StateUnavailable
from consumer.credentials.cache import Fetch

if TYPE_CHECKING:  # the client library is imported only when a store is configured
    from consumer.state.remote import RemoteState

_VERSION = b"v1"
_NONCE_BYTES = 12
# Single flight across the fleet: how long the lock holds, how long others look for its result.
_LOCK_MS = 3000
_WAIT_S = 2.0
_POLL_S = 0.05


class TokenSeal:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, token: str, name: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + nonce + self._aead.encrypt(nonce, token.encode(), name.encode())

    def open(self, sealed: bytes, name: str) -> str | None:
        """The token, or None for a value that is not ours (wrong key, tampered, other key)."""
        if not sealed.startswith(_VERSION):
            return None
        body = sealed[len(_VERSION) :]
        nonce, ciphertext = body[:_NONCE_BYTES], body[_NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, name.encode()).decode()
        except (InvalidTag, ValueError):
            return None


class SharedCredentials:
    """Wraps a Vault fetch (`consumer.credentials.cache.Fetch`) with the fleet's sealed cache;
    `fetch` and `forget` are what `CredentialCache` is built with."""

    def __init__(self, remote: RemoteState, seal: TokenSeal, fetch: Fetch, ttl_s: float) -> None:
        self._remote = remote
        self._seal = seal
        self._fetch = fetch
        self._ttl_ms = max(int(ttl_s * 1000), 1)
        self.vault_fetches = 0

    def _name(self, project: str, service: str) -> str:
        return self._remote.key("cred", project, service)

    async def fetch(self, project: str, service: str) -> SecretStr:
        name = self._name(project, service)
        found = await self._read(name)
        if found is not None:
            return found
        lock = self._remote.key("credlock", project, service)
        try:
            mine = await self._remote.guard.run(
                lambda: self._remote.client.set(lock, b"1", nx=True, px=_LOCK_MS)
            )
        except StateUnavailable:
            return await self._from_vault(project, service, None)
        if not mine:
            # Another engine is fetching it: its result shows up in the store shortly.
            waited = 0.0
            while waited < _WAIT_S:
                await asyncio.sleep(_POLL_S)
                waited += _POLL_S
                found = await self._read(name)
                if found is not None:
                    return found
        try:
            return await self._from_vault(project, service, name)
        finally:
            if mine:
                await self._quietly(lambda: self._remote.client.delete(lock))

    async def forget(self, project: str, service: str) -> None:
        """The third party refused the token: no engine may use the stored copy any more."""
        name = self._name(project, service)
        await self._quietly(lambda: self._remote.client.delete(name))

    async def _read(self, name: str) -> SecretStr | None:
        try:
            sealed = await self._remote.guard.run(lambda: self._remote.client.get(name))
        except StateUnavailable:
            return None
        if not isinstance(sealed, bytes) or not sealed:
            return None
        token = self._seal.open(sealed, name)
        if token is None:
            return None
        return SecretStr(token)

    async def _from_vault(self, project: str, service: str, name: str | None) -> SecretStr:
        self.vault_fetches += 1
        token = await self._fetch(project, service)
        if name is not None:
            sealed = self._seal.seal(token.get_secret_value(), name)
            await self._quietly(lambda: self._remote.client.set(name, sealed, px=self._ttl_ms))
        return token

    async def _quietly(self, call: Callable[[], Awaitable[object]]) -> None:
        with contextlib.suppress(StateUnavailable):
            await self._remote.guard.run(call)
