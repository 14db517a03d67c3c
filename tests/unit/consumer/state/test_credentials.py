"""consumer/state/credentials.py: tokens sealed with AES-GCM in the fleet's store, one Vault
fetch for the fleet, never a token in plaintext."""

from __future__ import annotations

import asyncio
import base64
import os

from pydantic import SecretStr

from consumer.credentials.cache import CredentialCache
from consumer.state.credentials import SharedCredentials, TokenSeal
from tests.unit.consumer.state.support import remote_state
from tests.valkey_server import ValkeyServer

TOKEN = "xoxb-shared-fleet-token-4711"


def test_a_sealed_token_opens_only_with_its_key_and_name() -> None:
    key = os.urandom(32)
    seal = TokenSeal(key)
    sealed = seal.seal(TOKEN, "g:cred:p:slack")
    assert TOKEN.encode() not in sealed
    assert seal.open(sealed, "g:cred:p:slack") == TOKEN
    assert seal.open(sealed, "g:cred:other:slack") is None, "moved under another key"
    assert TokenSeal(os.urandom(32)).open(sealed, "g:cred:p:slack") is None, "another key"
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert seal.open(tampered, "g:cred:p:slack") is None
    assert seal.seal(TOKEN, "n") != seal.seal(TOKEN, "n"), "a fresh nonce each time"


class CountingVault:
    def __init__(self, delay_s: float = 0.1) -> None:
        self.fetches = 0
        self._delay_s = delay_s

    async def fetch(self, project: str, service: str) -> SecretStr:
        self.fetches += 1
        await asyncio.sleep(self._delay_s)
        return SecretStr(f"{TOKEN}-{project}-{service}")


async def test_one_vault_fetch_serves_two_engines_and_no_plaintext_is_stored(
    state_server: ValkeyServer,
) -> None:
    key = os.urandom(32)
    vault = CountingVault()
    remotes = [remote_state(state_server)]
    remotes.append(remote_state(state_server, remotes[0].prefix))
    caches = []
    for remote in remotes:
        shared = SharedCredentials(remote, TokenSeal(key), vault.fetch, ttl_s=60.0)
        caches.append(CredentialCache(shared.fetch, 60.0, forget=shared.forget))
    tokens = await asyncio.gather(*(c.get("proj", "slack") for c in caches for _ in range(5)))
    assert {t.get_secret_value() for t in tokens} == {f"{TOKEN}-proj-slack"}
    assert vault.fetches == 1, "single flight across both engines"
    client = remotes[0].client
    keys = [k async for k in client.scan_iter(f"{remotes[0].prefix}:*")]
    assert keys, "the token is cached in the store"
    for name in keys:
        if await client.type(name) == b"string":
            value = await client.get(name)
            assert isinstance(value, bytes)
            assert TOKEN.encode() not in value
            assert base64.b64encode(TOKEN.encode()) not in value
    assert 0 < await client.pttl(remotes[0].key("cred", "proj", "slack")) <= 60_000
    # A rejected token is forgotten by the fleet: the next engine fetches anew.
    await caches[0].invalidate("proj", "slack")
    assert await client.exists(remotes[0].key("cred", "proj", "slack")) == 0
    fresh = CredentialCache(
        SharedCredentials(remotes[1], TokenSeal(key), vault.fetch, 60.0).fetch, 60.0
    )
    await fresh.get("proj", "slack")
    assert vault.fetches == 2
    for remote in remotes:
        await remote.aclose()


async def test_without_the_store_credentials_still_come_from_the_vault(
    restarted_state_server: ValkeyServer,
) -> None:
    remote = remote_state(restarted_state_server, timeout_s=0.2)
    vault = CountingVault(delay_s=0)
    shared = SharedCredentials(remote, TokenSeal(os.urandom(32)), vault.fetch, 60.0)
    restarted_state_server.kill()
    token = await shared.fetch("proj", "slack")
    assert token.get_secret_value() == f"{TOKEN}-proj-slack"
    assert vault.fetches == 1
    await remote.aclose()
