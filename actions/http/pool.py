"""The kept-alive connections of `HttpClient`, and what a new connection is made with (the
TLS context, the socket's address info).

Connections are pooled per key: (partition, scheme, host, port). The partition is the project
for a client that serves tenant-chosen URLs (`HttpClient.for_project`), so a connection one
project's request used never carries another project's: HTTP/1.1 gives a client no way to see
that an upstream read part of one request as the start of the next (a body it did not read,
"CL.0"), and only keeping tenants' connections apart stops one tenant's bytes from capturing
another's request.

Every open connection counts, idle or in use: at most `per_origin` per key and `limit` in
all. When the total is reached, a new connection first closes the least recently used idle
one of another key; when none is idle, the callers wait, and a freed place goes to the keys
with waiters in turn (one waiter per key per round), each key's waiters first come, first
served. With `per_origin` below `limit`, a slow origin holding all of its places leaves the
rest to the others. An idle connection is closed after `IDLE_S`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from actions.http.wire import Connection, PoolKey

# An idle kept-alive connection is closed after this long (aiohttp's keepalive_timeout).
IDLE_S = 15.0


class _Slot:
    """One key's connections: idle ones (most recent last), how many are in use, waiters."""

    __slots__ = ("busy", "idle", "waiters")

    def __init__(self) -> None:
        self.idle: list[Connection] = []
        self.busy = 0
        # A waiter is handed an idle connection, or None: a place to open a new one.
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()


class Pool:
    """Kept-alive connections per key; `per_origin` open per key and `limit` open in all."""

    def __init__(
        self,
        limit: int,
        per_origin: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = max(limit, 1)
        self._per_origin = max(min(per_origin or self._limit, self._limit), 1)
        self._clock = clock
        self._slots: dict[PoolKey, _Slot] = {}
        self.open = 0  # connections open (idle or in use) or being opened
        # Every idle connection, least recently used first (what makes room is closed first).
        self._idle: dict[Connection, None] = {}
        # Keys with waiters, in the order they are served (one waiter each per round).
        self._waiting: dict[PoolKey, None] = {}
        self._next_sweep = 0.0
        self.closed = False

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def in_use(self) -> int:
        return self.open - len(self._idle)

    def take_idle(self, key: PoolKey) -> Connection | None:
        """`acquire` without waiting and without a coroutine, when a kept-alive connection
        of `key` is idle and no caller waits for one (the usual case under load); else None."""
        slot = self._slots.get(key)
        if slot is None or not slot.idle or slot.waiters:
            return None
        connection = self._pop_idle(slot)
        if connection is None:
            self._forget(key, slot)
        return connection

    async def acquire(
        self,
        key: PoolKey,
        connect: Callable[[], Awaitable[Connection]],
        *,
        fresh: bool = False,
    ) -> tuple[Connection, bool]:
        """A connection for `key` (kept-alive unless `fresh`) and whether it was reused."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        if not slot.waiters:
            idle = None if fresh else self._pop_idle(slot)
            if idle is not None:
                return idle, True
            handed = None if self._reserve(key, slot) else await self._wait(key, slot)
        else:
            handed = await self._wait(key, slot)
        if handed is not None:
            if not fresh:
                return handed, True
            handed.close()  # its place is kept for the new connection
        try:
            connection = await connect()
        except BaseException:
            self._give_back(slot, key)
            raise
        connection.key = key
        return connection, False

    def _reserve(self, key: PoolKey, slot: _Slot) -> bool:
        """A place for a new connection of `key`, closing an idle one to make room."""
        if slot.busy + len(slot.idle) >= self._per_origin:
            if not slot.idle:
                return False
            self._close_idle(slot.idle[0])
        if self.open >= self._limit:
            if not self._idle:
                return False
            self._close_idle(next(iter(self._idle)))
        slot.busy += 1
        self.open += 1
        self._slots[key] = slot  # closing an idle connection may have let the slot go
        return True

    async def _wait(self, key: PoolKey, slot: _Slot) -> Connection | None:
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        slot.waiters.append(waiter)
        self._waiting[key] = None
        self._dispatch()  # an idle connection of this key, or a place, may be there already
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection or a place it will not use: to the next caller.
                handed = waiter.result()
                if handed is not None:
                    self.release(handed, reusable=True)
                else:
                    self._give_back(slot, key)
            else:
                if waiter in slot.waiters:
                    slot.waiters.remove(waiter)
                if not slot.waiters:
                    self._waiting.pop(key, None)
                self._forget(key, slot)
            raise

    def _give_back(self, slot: _Slot, key: PoolKey) -> None:
        """A reserved place that was not used (the connect failed, the caller gave up)."""
        slot.busy -= 1
        self.open -= 1
        self._forget(key, slot)
        self._dispatch()

    def _pop_idle(self, slot: _Slot) -> Connection | None:
        """The most recently used idle connection of `slot` still fit for use, counted in use."""
        idle = slot.idle
        now = self._clock()
        while idle:
            connection = idle.pop()
            del self._idle[connection]
            if connection.usable and now - connection.idle_since < IDLE_S:
                slot.busy += 1
                return connection
            connection.close()
            self.open -= 1
        return None

    def _close_idle(self, connection: Connection) -> None:
        slot = self._slots[connection.key]
        slot.idle.remove(connection)
        del self._idle[connection]
        connection.close()
        self.open -= 1
        self._forget(connection.key, slot)

    def release(self, connection: Connection, *, reusable: bool) -> None:
        """Back from a request: kept (`reusable`: its request was written whole and its
        answer read whole) or closed; a waiter is served either way."""
        key = connection.key
        slot = self._slots[key]
        slot.busy -= 1
        if reusable and connection.usable and not self.closed:
            connection.idle_since = now = self._clock()
            slot.idle.append(connection)
            self._idle[connection] = None
            if now >= self._next_sweep:
                self._sweep(now)
        else:
            connection.close()
            self.open -= 1
            self._forget(key, slot)
        if self._waiting:
            self._dispatch()

    def _dispatch(self) -> None:
        """Serve waiting keys in turn, one waiter each per round, while places are free."""
        progress = True
        while progress and self._waiting:
            progress = False
            for key in list(self._waiting):
                slot = self._slots[key]
                waiters = slot.waiters
                while waiters and waiters[0].done():
                    waiters.popleft()  # cancelled while waiting
                if not waiters:
                    del self._waiting[key]
                    continue
                handed = self._pop_idle(slot)
                if handed is not None or self._reserve(key, slot):
                    waiters.popleft().set_result(handed)
                    progress = True
                    del self._waiting[key]
                    if waiters:
                        self._waiting[key] = None  # served: to the back of the line

    def _forget(self, key: PoolKey, slot: _Slot) -> None:
        if not slot.busy and not slot.idle and not slot.waiters:
            self._slots.pop(key, None)

    def _sweep(self, now: float) -> None:
        """Close connections idle longer than IDLE_S (once per IDLE_S at most)."""
        self._next_sweep = now + IDLE_S
        for connection in list(self._idle):
            if connection.usable and now - connection.idle_since < IDLE_S:
                break  # the rest were used more recently
            self._close_idle(connection)

    def close(self) -> None:
        self.closed = True
        for connection in list(self._idle):
            self._close_idle(connection)


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
