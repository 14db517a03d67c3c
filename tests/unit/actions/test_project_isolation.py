"""Project isolation, generated (hypothesis): the credential cache never hands one project's
token to another, whatever the interleaving; and no project or service name can reach the
Vault URL as anything but its own single path segment.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from actions import InvalidParams
from actions.base import is_safe_path_segment
from consumer.credentials.cache import CredentialCache, VaultEngineClient
from schemas import ExecutionRequest
from tests.unit.support import FakeHttpClient, json_response

# Names chosen to look alike: a cache keyed carelessly (joined strings, case folding,
# normalisation) would mix them up.
PROJECTS = ["a", "A", "a.b", "a-b", "a_b", "ab", "b", "a.", ".a", "..."]
SERVICES = ["slack", "Slack", "google_sheets", "s.lack", "target"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


operations = st.lists(
    st.one_of(
        st.tuples(st.just("get"), st.sampled_from(PROJECTS), st.sampled_from(SERVICES)),
        st.tuples(st.just("invalidate"), st.sampled_from(PROJECTS), st.sampled_from(SERVICES)),
        st.tuples(st.just("tick"), st.floats(0, 400), st.just("")),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=400, deadline=None, database=None)
@given(operations, st.integers(1, 8), st.randoms(use_true_random=False))
def test_the_cache_never_serves_another_projects_token(
    ops: list[tuple[str, Any, str]], max_entries: int, rnd: random.Random
) -> None:
    """Gets run concurrently in bursts, fetches yield at random points, entries expire and are
    evicted and invalidated mid-flight: every answer is still the asker's own token."""
    versions: dict[tuple[str, str], int] = {}

    async def fetch(project: str, service: str) -> SecretStr:
        for _ in range(rnd.randint(0, 3)):
            await asyncio.sleep(0)
        versions[(project, service)] = versions.get((project, service), 0) + 1
        return SecretStr(f"{project}\x00{service}\x00{versions[(project, service)]}")

    async def scenario() -> int:
        clock = Clock()
        cache = CredentialCache(fetch, ttl_s=300, max_entries=max_entries, clock=clock)
        checked = 0

        async def get(project: str, service: str) -> None:
            nonlocal checked
            token = (await cache.get(project, service)).get_secret_value()
            owner, kind, _ = token.split("\x00")
            assert (owner, kind) == (project, service), "served another key's token"
            checked += 1

        burst: list[asyncio.Task[None]] = []
        for op, first, second in ops:
            if op == "get":
                burst.append(asyncio.create_task(get(first, second)))
            elif op == "invalidate":
                await cache.invalidate(first, second)
            else:
                clock.now += first
            if rnd.random() < 0.3:  # let the burst run part of the way
                await asyncio.sleep(0)
        await asyncio.gather(*burst)
        return checked

    assert asyncio.run(scenario()) == sum(op == "get" for op, _, _ in ops)


# Traversal in every spelling we could think of, encoded or not, plus text hypothesis draws.
TRAVERSALS = [
    ".",
    "..",
    "../x",
    "x/..",
    "a/../b",
    "..%2f",
    "%2e%2e",
    "%2E%2E",
    "%2e%2e%2f",
    "..%5c",
    "..\\",
    "%252e%252e",
    "\uff0e\uff0e",  # fullwidth dots
    "\u2024\u2024",  # one-dot leaders
    "..\x00",
    "a\x00",
    "a?b",
    "a#b",
    "a;b",
    " ..",
    ".. ",
    "a/b",
    "",
    "x" * 129,
]
names = st.one_of(
    st.sampled_from(TRAVERSALS),
    st.text(max_size=20),
    st.text("./%\\2eEfF", max_size=8),
    st.sampled_from(PROJECTS),
)


@settings(max_examples=1500, deadline=None, database=None)
@given(names, st.one_of(names, st.sampled_from(SERVICES)))
def test_no_name_reaches_the_vault_as_anything_but_its_own_segment(
    project: str, service: str
) -> None:
    http = FakeHttpClient(lambda request: json_response(200, {"token": "t-123456"}))
    sent = http.sent

    async def fetch() -> None:
        await VaultEngineClient("http://vault.test/base/", http).fetch(project, service)

    if not (is_safe_path_segment(project) and is_safe_path_segment(service)):
        with pytest.raises(InvalidParams):
            asyncio.run(fetch())
        assert sent == [], "nothing is sent for a name that could change the URL path"
        return
    asyncio.run(fetch())
    (request,) = sent
    assert request.url.host == "vault.test"
    assert request.url.raw_path.split("/") == [
        "",
        "base",
        "vault",
        "token",
        project,
        service,
    ]


@settings(max_examples=1500, deadline=None, database=None)
@given(names)
def test_the_request_schema_admits_only_names_the_vault_client_accepts(project: str) -> None:
    """The first lock (the request schema) is never looser than the second (the client)."""
    try:
        ExecutionRequest.model_validate({"action": "a", "project": project, "params": {}})
    except ValidationError:
        return
    assert is_safe_path_segment(project)
