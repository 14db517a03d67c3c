"""actions/http/pool.py: at most the limit in use, waiters in order, idle connections reused."""

from __future__ import annotations

import asyncio

from actions.http import HttpClient, wire
from actions.http import pool as connection_pool
from tests.unit.actions.test_http_client import raw_server


async def test_at_most_the_limit_is_in_use_and_waiters_are_served_in_order() -> None:
    started: list[int] = []
    gate = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            started.append(int(head.split(b" ")[1].strip(b"/")))
            await gate.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async with raw_server(slow) as (port, accepted), HttpClient(max_connections=3) as client:
        tasks = []
        for i in range(8):
            tasks.append(asyncio.create_task(client.get(f"http://127.0.0.1:{port}/{i}")))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert sorted(started) == [0, 1, 2]  # three in use, five waiting
        tasks[4].cancel()  # a waiter that gives up does not keep a place
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[4], asyncio.CancelledError)
        assert started == [0, 1, 2, 3, 5, 6, 7] or sorted(started[3:]) == [3, 5, 6, 7]
        assert len(accepted) == 3
        assert client._pool.in_use == 0


class _Transport:
    def close(self) -> None:
        pass


async def test_take_idle_hands_out_a_kept_alive_connection_within_the_limit_only() -> None:
    origin = ("", "http", "h.test", 80)

    async def connect() -> wire.Connection:
        connection = wire.Connection(origin[1:])
        connection.transport = _Transport()  # type: ignore[assignment]
        return connection

    pool = connection_pool.Pool(1)
    assert pool.take_idle(origin) is None  # nothing idle yet
    first, reused = await pool.acquire(origin, connect)
    assert not reused
    pool.release(first, reusable=True)
    assert pool.take_idle(("", "http", "other.test", 80)) is None  # another origin's
    assert pool.take_idle(origin) is first
    pool.release(first, reusable=True)
    taken, reused = await pool.acquire(origin, connect)
    assert taken is first and reused
    assert pool.take_idle(origin) is None  # the one place is in use
    waiter = asyncio.create_task(pool.acquire(origin, connect))
    await asyncio.sleep(0)
    pool.release(taken, reusable=True)
    # A caller already waiting comes first: take_idle does not jump the queue.
    assert pool.take_idle(origin) is None
    handed, _ = await waiter
    pool.release(handed, reusable=False)
    assert pool.open == 0
