"""consumer/credentials.py: the credential cache and the Vault Engine client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from actions import ActionError, InvalidParams, MissingCredentials
from actions.errors import VaultUnavailable
from actions.http import HttpClient
from consumer.credentials.cache import CredentialCache, VaultEngineClient, VaultRefused
from consumer.secrets.redaction import MASK, SECRETS, SecretRegistry
from schemas import ErrorCode
from tests.standins import VaultStandIn
from tests.unit.support import closed_port, plain_client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """Counts fetches; each answer is `<project>/<service>#<n>`; can be made to fail or wait."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def __call__(self, project: str, service: str) -> SecretStr:
        self.calls.append((project, service))
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return SecretStr(f"{project}/{service}#{len(self.calls)}")


def value(secret: SecretStr) -> str:
    return secret.get_secret_value()


async def test_miss_then_hit() -> None:
    fetch = Fetcher()
    cache = CredentialCache(fetch, clock=Clock())
    assert value(await cache.get("a", "slack")) == "a/slack#1"
    assert value(await cache.get("a", "slack")) == "a/slack#1"
    assert fetch.calls == [("a", "slack")]
    assert (cache.misses, cache.hits) == (1, 1)
    assert len(cache) == 1


async def test_ttl_expiry() -> None:
    clock = Clock()
    fetch = Fetcher()
    cache = CredentialCache(fetch, ttl_s=60.0, clock=clock)
    await cache.get("a", "slack")
    clock.now += 59.9
    assert value(await cache.get("a", "slack")) == "a/slack#1"
    clock.now += 0.1
    assert value(await cache.get("a", "slack")) == "a/slack#2"
    assert len(fetch.calls) == 2


async def test_single_flight() -> None:
    fetch = Fetcher()
    fetch.gate = asyncio.Event()
    cache = CredentialCache(fetch, clock=Clock())
    waiters = [asyncio.create_task(cache.get("a", "slack")) for _ in range(50)]
    await asyncio.sleep(0)
    fetch.gate.set()
    tokens = await asyncio.gather(*waiters)
    assert fetch.calls == [("a", "slack")]
    assert {value(t) for t in tokens} == {"a/slack#1"}


async def test_single_flight_survives_a_cancelled_waiter() -> None:
    fetch = Fetcher()
    fetch.gate = asyncio.Event()
    cache = CredentialCache(fetch, clock=Clock())
    first = asyncio.create_task(cache.get("a", "slack"))
    second = asyncio.create_task(cache.get("a", "slack"))
    await asyncio.sleep(0)
    first.cancel()
    fetch.gate.set()
    assert value(await second) == "a/slack#1"
    assert fetch.calls == [("a", "slack")]


async def test_project_isolation() -> None:
    fetch = Fetcher()
    cache = CredentialCache(fetch, clock=Clock())
    a = await cache.get("project-a", "slack")
    b = await cache.get("project-b", "slack")
    assert value(a) == "project-a/slack#1"
    assert value(b) == "project-b/slack#2"
    assert value(await cache.get("project-b", "slack")) == "project-b/slack#2"
    assert value(await cache.get("project-a", "google_sheets")) == "project-a/google_sheets#3"


async def test_project_isolation_under_concurrency() -> None:
    fetch = Fetcher()
    fetch.gate = asyncio.Event()
    cache = CredentialCache(fetch, clock=Clock())
    a = asyncio.create_task(cache.get("A", "slack"))
    b = asyncio.create_task(cache.get("B", "slack"))
    await asyncio.sleep(0)
    fetch.gate.set()
    assert value(await a).startswith("A/")
    assert value(await b).startswith("B/")
    assert len(fetch.calls) == 2


async def test_lru_eviction() -> None:
    fetch = Fetcher()
    cache = CredentialCache(fetch, max_entries=2, clock=Clock())
    await cache.get("a", "s")
    await cache.get("b", "s")
    await cache.get("a", "s")  # a is now the most recently used
    await cache.get("c", "s")  # evicts b
    assert len(cache) == 2
    calls = len(fetch.calls)
    await cache.get("a", "s")
    await cache.get("c", "s")
    assert len(fetch.calls) == calls  # still cached
    await cache.get("b", "s")
    assert fetch.calls[-1] == ("b", "s")
    assert len(fetch.calls) == calls + 1


async def test_invalidate() -> None:
    fetch = Fetcher()
    cache = CredentialCache(fetch, clock=Clock())
    await cache.get("a", "slack")
    await cache.get("a", "sheets")
    await cache.invalidate("a", "slack")
    await cache.invalidate("nobody", "slack")  # unknown keys are fine
    assert value(await cache.get("a", "slack")) == "a/slack#3"
    assert value(await cache.get("a", "sheets")) == "a/sheets#2"


async def test_failed_fetch_is_not_cached_and_reaches_all_waiters() -> None:
    fetch = Fetcher()
    fetch.gate = asyncio.Event()
    fetch.error = VaultUnavailable("vault down")
    cache = CredentialCache(fetch, clock=Clock())
    waiters = [asyncio.create_task(cache.get("a", "slack")) for _ in range(5)]
    await asyncio.sleep(0)
    fetch.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, VaultUnavailable) for r in results)
    assert len(fetch.calls) == 1
    assert len(cache) == 0
    fetch.error = None
    assert value(await cache.get("a", "slack")) == "a/slack#2"


# -- VaultEngineClient ---------------------------------------------------------------------

ENGINE_TOKEN = "engine-service-token-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def vault_server() -> Iterator[VaultStandIn]:
    with VaultStandIn(required_bearer=ENGINE_TOKEN) as server:
        yield server


@pytest.fixture
def vault(vault_server: VaultStandIn) -> VaultStandIn:
    vault_server.clear()
    return vault_server


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with plain_client() as client:
        yield client


def client_for(
    vault: VaultStandIn, http: HttpClient, token: str = ENGINE_TOKEN
) -> VaultEngineClient:
    return VaultEngineClient(vault.base_url + "/", http, SecretStr(token))


async def test_vault_200_is_a_secret(vault: VaultStandIn, http: HttpClient) -> None:
    secret = "xoxb-" + uuid.uuid4().hex
    vault.set_token("demo", "slack", secret)
    token = await client_for(vault, http).fetch("demo", "slack")
    assert isinstance(token, SecretStr)
    assert token.get_secret_value() == secret
    assert secret not in repr(token)
    [request] = vault.requests
    assert request.path == "/vault/token/demo/slack"
    assert request.headers["authorization"] == f"Bearer {ENGINE_TOKEN}"


async def test_vault_fetched_token_is_scrubbed_from_the_outputs_of_the_record_that_used_it(
    vault: VaultStandIn, http: HttpClient
) -> None:
    secret = "fetched-" + uuid.uuid4().hex
    vault.set_token("demo", "redact", secret)
    cache = CredentialCache(client_for(vault, http).fetch)
    with cache.for_record() as record, cache.for_record() as other:
        await record.get("demo", "redact")
        assert record.scope.scrub_text(f"token={secret}!") == "token=[REDACTED]!"
        assert other.scope.scrub_text(f"token={secret}!") == f"token={secret}!"
    assert ENGINE_TOKEN not in SECRETS.scrub(f"Bearer {ENGINE_TOKEN}")
    assert ENGINE_TOKEN not in SECRETS.scope().scrub_text(f"Bearer {ENGINE_TOKEN}")


async def test_vault_404_is_missing_credentials(vault: VaultStandIn, http: HttpClient) -> None:
    with pytest.raises(MissingCredentials) as info:
        await client_for(vault, http).fetch("demo", "nothing")
    assert info.value.code is ErrorCode.MISSING_CREDENTIALS
    assert info.value.details == {"service": "nothing"}


async def test_vault_503_is_unavailable(vault: VaultStandIn, http: HttpClient) -> None:
    vault.fail_next(1, 503)
    with pytest.raises(VaultUnavailable) as info:
        await client_for(vault, http).fetch("demo", "slack")
    assert info.value.details == {"status_code": 503}
    assert info.value.code.retryable


async def test_vault_wrong_engine_bearer_is_refused(vault: VaultStandIn, http: HttpClient) -> None:
    vault.set_token("demo", "slack", "some-secret-value")
    with pytest.raises(VaultRefused) as info:
        await client_for(vault, http, token="wrong-engine-token").fetch("demo", "slack")
    assert info.value.details == {"status_code": 401}
    assert info.value.code is ErrorCode.VAULT_UNAVAILABLE and info.value.code.retryable
    # Retried like every vault_unavailable, so the envelope's `retryable: true` is honest.
    assert isinstance(info.value, VaultUnavailable)


async def test_vault_without_engine_token_sends_no_authorization(
    vault: VaultStandIn, http: HttpClient
) -> None:
    with pytest.raises(VaultRefused):
        await VaultEngineClient(vault.base_url, http).fetch("demo", "slack")
    assert "authorization" not in vault.requests[0].headers


@pytest.mark.parametrize(("project", "service"), [("my project", "slack"), ("demo", "a/b?c")])
async def test_vault_refuses_names_that_are_not_path_segments(
    vault: VaultStandIn, http: HttpClient, project: str, service: str
) -> None:
    with pytest.raises(InvalidParams):
        await client_for(vault, http).fetch(project, service)
    assert vault.requests == [], "nothing is sent for a name that could change the URL path"


@pytest.mark.parametrize("service", ["..", "."])
async def test_vault_dot_segments_cannot_walk_the_path(
    vault: VaultStandIn, http: HttpClient, service: str
) -> None:
    # `http_request` takes the service from the request's params (pattern [A-Za-z0-9._-]+,
    # so "." and ".." pass); the client's quoting is "the second lock on the path".
    with pytest.raises(ActionError):
        await client_for(vault, http).fetch("demo", service)
    assert all(r.path.startswith("/vault/token/demo/") for r in vault.requests), [
        r.path for r in vault.requests
    ]


@pytest.mark.parametrize("body", [{"token": ""}, {"token": None}], ids=["empty", "null"])
async def test_vault_empty_token_is_missing(
    vault: VaultStandIn, http: HttpClient, body: dict[str, object]
) -> None:
    vault.fail_next(1, 200, body=body)
    with pytest.raises(MissingCredentials):
        await client_for(vault, http).fetch("demo", "slack")


@pytest.mark.parametrize("body", [b"not json", b"[]", b"{}"])
async def test_vault_answer_without_token_is_unavailable(
    vault: VaultStandIn, http: HttpClient, body: bytes
) -> None:
    vault.fail_next(1, 200, body=body)
    with pytest.raises(VaultUnavailable):
        await client_for(vault, http).fetch("demo", "slack")


async def test_vault_connection_refused_is_unavailable(http: HttpClient) -> None:
    client = VaultEngineClient(f"http://127.0.0.1:{closed_port()}", http)
    with pytest.raises(VaultUnavailable, match="cannot reach"):
        await client.fetch("demo", "slack")


async def test_vault_timeout_is_unavailable(vault: VaultStandIn) -> None:
    vault.delay_s = 0.3
    try:
        async with plain_client(timeout=0.05) as http:
            with pytest.raises(VaultUnavailable, match="in time"):
                await client_for(vault, http).fetch("demo", "slack")
    finally:
        vault.delay_s = 0.0


async def test_cache_in_front_of_the_vault(vault: VaultStandIn, http: HttpClient) -> None:
    vault.set_token("demo", "slack", "cached-secret-1")
    cache = CredentialCache(client_for(vault, http).fetch)
    tokens = await asyncio.gather(*(cache.get("demo", "slack") for _ in range(20)))
    assert {t.get_secret_value() for t in tokens} == {"cached-secret-1"}
    assert len(vault.requests) == 1


async def test_a_fetch_in_flight_when_invalidated_is_not_cached() -> None:
    fetcher = Fetcher()
    fetcher.gate = asyncio.Event()
    cache = CredentialCache(fetcher, ttl_s=60, clock=Clock())
    stale = asyncio.create_task(cache.get("p", "slack"))
    await asyncio.sleep(0)
    await cache.invalidate("p", "slack")
    fetcher.gate.set()
    assert value(await stale) == "p/slack#1"  # the caller that asked before still gets an answer
    assert value(await cache.get("p", "slack")) == "p/slack#2", "but it was not cached"


async def test_cached_tokens_are_held_for_redaction_until_evicted() -> None:
    registry = SecretRegistry()
    cache = CredentialCache(Fetcher(), max_entries=2, clock=Clock(), secrets=registry)
    await cache.get("a", "s")
    await cache.get("b", "s")
    assert registry.holds("a/s#1") and registry.holds("b/s#2")
    await cache.get("c", "s")  # evicts a
    assert not registry.holds("a/s#1")
    await cache.invalidate("b", "s")
    assert not registry.holds("b/s#2")
    assert len(registry) == 1


async def test_an_expired_token_leaves_within_a_ttl_even_if_never_asked_for_again() -> None:
    registry = SecretRegistry()
    clock = Clock()
    cache = CredentialCache(Fetcher(), ttl_s=10, clock=clock, secrets=registry)
    await cache.get("old", "s")
    clock.now += 11
    await cache.get("new", "s")  # a later fetch sweeps what expired
    assert not registry.holds("old/s#1")
    assert registry.holds("new/s#2")


async def test_a_token_in_use_by_a_record_is_never_dropped_before_its_outputs_are_out() -> None:
    registry = SecretRegistry()
    cache = CredentialCache(Fetcher(), max_entries=1, clock=Clock(), secrets=registry)
    record = cache.for_record()
    token = value(await record.get("a", "s"))
    await cache.get("b", "s")  # evicts a's entry from the cache
    await cache.invalidate("a", "s")
    assert registry.holds(token), "still used by the record"
    assert record.scope.scrub_text(f"echo {token}") == f"echo {MASK}"
    record.close()  # its outputs were rendered
    assert not registry.holds(token)


async def test_a_rotated_token_leaves_after_the_records_that_used_it() -> None:
    registry = SecretRegistry()
    fetch = Fetcher()
    cache = CredentialCache(fetch, clock=Clock(), secrets=registry)
    with cache.for_record() as first:
        old = value(await first.get("p", "slack"))
        await first.invalidate("p", "slack")  # the third party rejected it: rotated
        new = value(await first.get("p", "slack"))
        assert old != new
        assert first.scope.scrub_text(f"{old} {new}") == f"{MASK} {MASK}"
        assert registry.holds(old)
    assert not registry.holds(old)
    assert registry.holds(new)  # still cached


@pytest.mark.parametrize("stored", ["", "abcd", "x" * 16_385])
async def test_a_credential_value_that_cannot_be_a_token_is_refused(stored: str) -> None:
    registry = SecretRegistry()

    async def fetch(project: str, service: str) -> SecretStr:
        return SecretStr(stored)

    cache = CredentialCache(fetch, secrets=registry)
    with pytest.raises(MissingCredentials, match="not usable as a token"):
        await cache.get("p", "slack")
    assert len(cache) == 0 and len(registry) == 0
