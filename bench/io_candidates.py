"""The HTTP clients `python -m bench io` measures on their own (no Kafka, no engine): the same
calls at the same concurrency against the same target, CPU per call and connections opened.

- `HttpClient (the engine's), guarded`: what the engine uses (actions/http, HTTP/1.1 on
  asyncio's transports, the egress guard on).
- `aiohttp session, unguarded`: a bare aiohttp session, nothing checked: the floor of the
  guarded aiohttp session the engine used before its own client.
- `httpx over httpx-aiohttp`: httpx's API on aiohttp's connection engine (the other way the
  data-plane issue allowed); an aiohttp session without a guard, so its figure is a floor.
- `httpx, guarded (previous engine)`: the client the engine had: httpx over httpcore, the pool
  split into shards of 2 kept-alive connections, every connection through the egress policy.
  Kept here, not in the engine, only to be measured against.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore
import httpx

from actions.egress import EgressPolicy, guarded_client, parse_networks

Get = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Measured:
    name: str
    cpu_per_call_s: float
    calls_per_s: float
    connections: int


async def measure(
    name: str,
    get: Get,
    port: int,
    connections: Callable[[], Awaitable[int]],
    *,
    calls: int,
    keys: int,
    latency_ms: int,
    limit: int,
) -> Measured:
    room = asyncio.Semaphore(limit)

    async def call(i: int) -> None:
        async with room:
            await get(f"http://127.0.0.1:{port}/d/{latency_ms}/alone-{i % keys}/{i // keys}")

    before = await connections()
    await asyncio.gather(*(call(i) for i in range(limit)))  # connections up
    started, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(call(i) for i in range(calls)))
    cpu, elapsed = time.process_time() - started, time.monotonic() - wall
    # Our own /connections request came on a connection of its own.
    opened = await connections() - before - 1
    return Measured(name, cpu / calls, calls / elapsed, opened)


async def chosen(port: int, counter: Callable[[], Awaitable[int]], **run: int) -> Measured:
    policy = EgressPolicy(parse_networks("127.0.0.0/8"))
    async with guarded_client(policy, max_connections=run["limit"]) as client:

        async def get(url: str) -> None:
            response = await client.get(url)
            assert response.status == 200
            response.json()

        return await measure("HttpClient (the engine's), guarded", get, port, counter, **run)


async def aiohttp_plain(
    port: int, counter: Callable[[], Awaitable[int]], **run: int
) -> Measured | None:
    """A bare aiohttp session, nothing checked: the floor of the data plane the engine had
    before its own HTTP/1.1 client (which was a guarded aiohttp session)."""
    try:
        import aiohttp  # noqa: PLC0415
    except ImportError:
        return None
    connector = aiohttp.TCPConnector(limit=run["limit"])
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def get(url: str) -> None:
            async with session.get(url) as response:
                assert response.status == 200
                json.loads(await response.read())

        return await measure("aiohttp session, unguarded", get, port, counter, **run)


async def httpx_over_aiohttp(
    port: int, counter: Callable[[], Awaitable[int]], **run: int
) -> Measured | None:
    try:
        import aiohttp  # noqa: PLC0415
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415
    except ImportError:  # the `bench` extra is not installed
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=run["limit"]), cookie_jar=aiohttp.DummyCookieJar()
    )
    async with httpx.AsyncClient(transport=AiohttpTransport(client=session)) as client:

        async def get(url: str) -> None:
            response = await client.get(url)
            response.raise_for_status()
            response.json()

        return await measure("httpx over httpx-aiohttp", get, port, counter, **run)


async def httpx_guarded(port: int, counter: Callable[[], Awaitable[int]], **run: int) -> Measured:
    async with _previous_client(EgressPolicy(parse_networks("127.0.0.0/8")), run["limit"]) as c:

        async def get(url: str) -> None:
            response = await c.get(url)
            response.raise_for_status()
            response.json()

        return await measure("httpx, guarded (previous engine)", get, port, counter, **run)


# ---- the previous engine's client, as it was (actions/egress.py + actions/pool.py) ----

_SHARD_SIZE = 2


class _Sharded(httpx.AsyncBaseTransport):
    """httpcore's pool re-examines every connection on each request start and end (O(n^2) at
    n in flight), so requests were dealt round-robin over pools of 2 kept-alive connections."""

    def __init__(self, make: Callable[[httpx.Limits], httpx.AsyncBaseTransport], limit: int):
        count = max(1, math.ceil(limit / _SHARD_SIZE))
        limits = httpx.Limits(
            max_connections=limit, max_keepalive_connections=math.ceil(limit / count)
        )
        self.shards = [make(limits) for _ in range(count)]
        self._next = itertools.cycle(self.shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy, self._inner = policy, inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[object] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self._policy.checked_address(host, port)
        return await self._inner.connect_tcp(
            str(address), port, timeout=timeout, local_address=local_address
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _previous_client(policy: EgressPolicy, limit: int) -> httpx.AsyncClient:
    tls = httpx.create_ssl_context()

    def shard(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
        transport = httpx.AsyncHTTPTransport(verify=tls, limits=limits)
        pool = transport._pool
        pool._network_backend = _GuardedBackend(policy, pool._network_backend)
        return transport

    return httpx.AsyncClient(transport=_Sharded(shard, limit), follow_redirects=False)
