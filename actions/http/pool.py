"""The kept-alive connections of `HttpClient` (per origin, at most `limit` in use at once),
and what a new connection is made with (the TLS context, the socket's address info).

Waiters for a place are served first come, first served; an idle connection is closed after
`IDLE_S`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from actions.http.wire import Connection, Origin

# An idle kept-alive connection is closed after this long (aiohttp's keepalive_timeout).
IDLE_S = 15.0


class Pool:
    """Kept-alive connections per origin; at most `limit` in use at once."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = max(limit, 1)
        self._clock = clock
        self._idle: dict[Origin, list[Connection]] = {}
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._next_sweep = 0.0
        self.closed = False

    def take_idle(self, origin: Origin) -> Connection | None:
        """`acquire` without waiting and without a coroutine, when a place is free and a
        kept-alive connection to `origin` is idle (the usual case under load); else None."""
        idle = self._idle.get(origin)
        if not idle or self._in_use >= self._limit or self._waiters:
            return None
        now = self._clock()
        while idle:
            connection = idle.pop()
            if connection.usable and now - connection.idle_since < IDLE_S:
                self._in_use += 1
                return connection
            connection.close()
        return None

    async def acquire(
        self,
        origin: Origin,
        connect: Callable[[], Awaitable[Connection]],
        *,
        fresh: bool = False,
    ) -> tuple[Connection, bool]:
        """A connection to `origin` (kept-alive unless `fresh`) and whether it was reused."""
        await self._turn()
        try:
            if not fresh:
                idle = self._idle.get(origin)
                now = self._clock()
                while idle:
                    connection = idle.pop()
                    if connection.usable and now - connection.idle_since < IDLE_S:
                        return connection, True
                    connection.close()
            return await connect(), False
        except BaseException:
            self._in_use -= 1
            self._wake_next()
            raise

    async def _turn(self) -> None:
        """One of the `limit` places; waiters get theirs in the order they came."""
        if self._in_use < self._limit and not self._waiters:
            self._in_use += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # _wake_next counted this caller in before waking it
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._in_use -= 1  # handed a place it will not use: to the next
                self._wake_next()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self, connection: Connection, *, reusable: bool) -> None:
        self._in_use -= 1
        if reusable and connection.usable and not self.closed:
            connection.idle_since = self._clock()
            self._idle.setdefault(connection.origin, []).append(connection)
            self._sweep(connection.idle_since)
        else:
            connection.close()
        self._wake_next()

    def _wake_next(self) -> None:
        while self._waiters and self._in_use < self._limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_use += 1
                waiter.set_result(None)
                return

    def _sweep(self, now: float) -> None:
        """Close connections idle longer than IDLE_S (once per IDLE_S at most)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + IDLE_S
        for origin, idle in list(self._idle.items()):
            keep = [c for c in idle if c.usable and now - c.idle_since < IDLE_S]
            for connection in idle:
                if connection not in keep:
                    connection.close()
            if keep:
                self._idle[origin] = keep
            else:
                del self._idle[origin]

    def close(self) -> None:
        self.closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


_DEFAULT_CONTEXT: ssl.SSLContext | None = None
_UNVERIFIED_CONTEXT: ssl.SSLContext | None = None


def tls_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The context a TLS connection uses: the caller's, the system's verifying one (made
    once per process, and only if used), or one that verifies nothing (`verify=False`)."""
    global _DEFAULT_CONTEXT, _UNVERIFIED_CONTEXT  # noqa: PLW0603 (made once, on first use)
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify:
        if _DEFAULT_CONTEXT is None:
            _DEFAULT_CONTEXT = ssl.create_default_context()
        return _DEFAULT_CONTEXT
    if _UNVERIFIED_CONTEXT is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        _UNVERIFIED_CONTEXT = context
    return _UNVERIFIED_CONTEXT


def addr_info(address: str, port: int) -> tuple[Any, ...]:
    """What the socket factory is called with: (family, type, proto, canonname, sockaddr)."""
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))
