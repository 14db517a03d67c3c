"""actions/http/pool.py's policy against hostile upstreams and tenants (issue 22's findings).

Connections for tenant-chosen URLs are kept per (project, origin); a connection goes back to
the pool only once its request was written whole and its answer read whole; idle connections
count against the limit; a slow origin cannot take another origin's places.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog

from actions.builtin.http_request import ACTION
from actions.egress import EgressPolicy, guarded_client, parse_networks, service_client
from actions.http import HttpClient
from actions.registry import ActionRegistry
from actions.runtime.runner import ActionRunner
from schemas import ExecutionRequest
from tests.unit.actions.test_http_client import raw_server
from tests.unit.support import FakeCredentials, FakeHttpClient

LOOPBACK = parse_networks("127.0.0.0/8")


def _cl0_server(heads: list[tuple[int, bytes]]):  # type: ignore[no-untyped-def]
    """An upstream with the "CL.0" flaw: it answers each head at once and never reads the
    body, so a body's bytes are read as the start of the connection's next request. It answers
    with the path it read, and records (connection number, head)."""
    count = [0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count[0] += 1
        number = count[0]
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            heads.append((number, head))
            path = head.split(b" ", 2)[1]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
            await writer.drain()

    return handler


def _request(project: str, params: dict[str, object]) -> ExecutionRequest:
    return ExecutionRequest(action="http_request", project=project, params=params)


async def test_one_projects_body_never_captures_another_projects_request() -> None:
    heads: list[tuple[int, bytes]] = []
    async with raw_server(_cl0_server(heads)) as (port, accepted):
        egress = guarded_client(EgressPolicy(LOOPBACK))
        runner = ActionRunner(
            registry=ActionRegistry([ACTION]),
            credentials=FakeCredentials(),
            http=FakeHttpClient(),
            egress_http=egress,
        )
        log = structlog.get_logger()
        url = f"http://127.0.0.1:{port}"
        # Project A's body ends in an open header line: on a shared connection, the next
        # request's line and headers would become that smuggled request's header value.
        first = await runner.execute(
            _request(
                "tenant-a", {"url": f"{url}/a", "method": "POST", "body": "GET /a2 HTTP/1.1\r\nX: "}
            ),
            "req-a",
            log,
        )
        second = await runner.execute(
            _request("tenant-b", {"url": f"{url}/b", "headers": {"Authorization": "Bearer B"}}),
            "req-b",
            log,
        )
        await egress.aclose()
    assert first.status == second.status == "success"
    assert second.data is not None and second.data["body"] == "/b", "B got its own answer"
    b_heads = [(number, head) for number, head in heads if b"Bearer B" in head]
    assert len(b_heads) == 1 and b_heads[0][1].startswith(b"GET /b HTTP/1.1\r\n")
    assert b_heads[0][0] != heads[0][0], "B's request went on a connection of its own"
    assert len(accepted) == 2


async def test_a_connection_whose_body_is_not_sent_whole_is_not_used_again() -> None:
    """An upstream that answers 401 before reading a large body and keeps the connection:
    the next request would be queued behind the unsent bytes (which it reads as a request)."""
    body = b"x" * (8 * 1024 * 1024) + b"GET /SMUGGLED-BY-TENANT-A HTTP/1.1\r\nHost: h\r\n\r\n"
    paths: list[bytes] = []

    async def early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            path = head.split(b" ", 2)[1]
            paths.append(path)
            writer.write(b"HTTP/1.1 401 No\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
            await writer.drain()
            if path == b"/upload":
                await asyncio.sleep(0.2)  # answered early; reads the rest later, as requests
                with contextlib.suppress(asyncio.IncompleteReadError):
                    await reader.readexactly(8 * 1024 * 1024)

    async with raw_server(early) as (port, accepted), HttpClient(timeout_s=5) as client:
        url = f"http://127.0.0.1:{port}"
        first = await client.post(f"{url}/upload", content=body)
        assert first.status == 401
        second = await client.get(f"{url}/next")
    assert second.body == b"/next", second.body
    assert len(accepted) == 2


@contextlib.asynccontextmanager
async def _listeners(count: int) -> AsyncIterator[tuple[list[int], list[int]]]:
    """`count` keep-alive servers; yields their ports and [open now, most open at once]."""
    gauge = [0, 0]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        gauge[0] += 1
        gauge[1] = max(gauge)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            gauge[0] -= 1
            writer.close()

    servers = [await asyncio.start_server(handler, "127.0.0.1", 0) for _ in range(count)]
    try:
        yield [s.sockets[0].getsockname()[1] for s in servers], gauge
    finally:
        for server in servers:
            server.close()


async def test_idle_connections_count_against_the_limit() -> None:
    async with _listeners(16) as (ports, gauge), HttpClient(max_connections=4) as client:
        for port in ports:
            await client.get(f"http://127.0.0.1:{port}/")
            await asyncio.sleep(0.01)  # the server sees a closed connection's end
        await asyncio.sleep(0.05)
        assert gauge[0] <= 4, f"{gauge[0]} connections open with max_connections=4"
        assert gauge[1] <= 5  # a closed one's end may be seen just after the next opened


async def test_a_slow_origin_does_not_starve_another() -> None:
    """The provider client as the engine makes it: 100 calls in flight to a slow API leave
    room for a call to another one."""
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    fast = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def quick(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(fast)
        await writer.drain()

    client = service_client(10.0)
    async with raw_server(slow) as (slow_port, slow_accepted), raw_server(quick) as (port, _):
        calls = [
            asyncio.create_task(client.get(f"http://127.0.0.1:{slow_port}/{i}")) for i in range(100)
        ]
        for _ in range(200):
            if len(slow_accepted) == 100:
                break
            await asyncio.sleep(0.01)
        try:
            assert len(slow_accepted) == 100  # all in flight
            started = time.perf_counter()
            answer = await client.get(f"http://127.0.0.1:{port}/", timeout_s=1.0)
            took = time.perf_counter() - started
        finally:
            release.set()
            await asyncio.gather(*calls)
            await client.aclose()
    assert answer.body == b"ok"
    assert took < 0.1, f"{took * 1000:.0f} ms"


async def test_waiters_of_several_origins_are_served_in_turn() -> None:
    """With every place taken, freed places go to the waiting origins in turn, not to the
    origin that queued the most callers first."""
    gate = asyncio.Event()
    order: list[str] = []

    async def gated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                order.append(head.split(b" ", 2)[1].decode())
                await gate.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
                return

    async with (
        raw_server(gated) as (port_a, _),
        raw_server(gated) as (port_b, _),
        HttpClient(max_connections=2) as client,
    ):
        first = asyncio.create_task(client.get(f"http://127.0.0.1:{port_a}/a0"))
        second = asyncio.create_task(client.get(f"http://127.0.0.1:{port_a}/a1"))
        await asyncio.sleep(0.05)
        waiting = [
            asyncio.create_task(client.get(f"http://127.0.0.1:{port_a}/a{i}")) for i in (2, 3, 4)
        ]
        await asyncio.sleep(0.01)
        waiting.append(asyncio.create_task(client.get(f"http://127.0.0.1:{port_b}/b0")))
        await asyncio.sleep(0.05)
        assert order == ["/a0", "/a1"]
        gate.set()
        await asyncio.gather(first, second, *waiting)
    # The two freed places: one to a's first waiter, one to b's (b came last).
    assert set(order[2:4]) == {"/a2", "/b0"}, order
