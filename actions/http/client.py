"""`HttpClient`: the one HTTP client every action and plugin calls through.

Underneath: HTTP/1.1 on asyncio's transports (`actions.http.wire`). The engine had httpx, then
aiohttp; measured at 200 calls in flight, aiohttp's per-request machinery still cost 3-4 times
what the event loop and sockets cost per call, and the client needs none of its extras
(README "HTTP data plane" has the figures).

What every request gets, whoever calls: headers checked before anything is sent
(`InvalidRequest`), no redirects followed (the caller decides, hop by hop), no cookies kept
(the client serves every project), no proxy from the environment, the body read whole but
capped and content-encoding undone within that cap (`body.read_capped`), one total timeout
plus a connect and a read timeout, and typed failures that say whether the request had gone
out (`HttpError.sent`). With a `ConnectGuard` (the egress policy), a host is checked before
every request and every new connection goes only to addresses the guard returned.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json as jsonlib
import re
import socket
import ssl
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

from yarl import URL

from actions.http import pool as connections
from actions.http import wire
from actions.http.body import ACCEPT_ENCODING, read_capped
from actions.http.errors import (
    ConnectFailed,
    ConnectionLost,
    HttpError,
    HttpTimeout,
    InvalidRequest,
)
from actions.http.headers import checked_headers, is_token
from actions.http.response import HttpResponse
from actions.http.timeouts import bounded

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Headers = Mapping[str, str] | Iterable[tuple[str, str]]
# Called with each address a new connection tries (aiohappyeyeballs' AddrInfoType): returns
# the socket to connect with. Tests record attempts through it; the client counts connections.
SocketFactory = Callable[[tuple[Any, ...]], socket.socket]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_NO_JSON = object()


class ConnectGuard(Protocol):
    """Decides where requests may go (implemented by `actions.egress.EgressPolicy`)."""

    def check_host(self, host: str) -> str | None:
        """Refuse (ForbiddenDestination) a host that is a blocked IP literal, or neither a
        literal nor a name. Called before every request: a literal never reaches a resolver.
        Returns an allowed literal's canonical address (what is connected to), None for a
        name."""
        ...

    async def connect_addresses(self, host: str, port: int) -> Sequence[IPAddress]:
        """Every address of `host`, all of them allowed; else ForbiddenDestination, or
        ConnectFailed when the name has no answer."""
        ...


class _SendProgress:
    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


# Sent with every request unless the caller gives its own (what aiohttp sent).
_DEFAULT_HEADERS = [
    ("Accept", "*/*"),
    ("Accept-Encoding", ACCEPT_ENCODING),
    ("User-Agent", f"Python/{sys.version_info[0]}.{sys.version_info[1]} puraify-execution-engine"),
]
# How long a name's addresses are reused without asking the system again (unguarded clients
# only: a guarded one asks its guard for every new connection).
_DNS_TTL_S = 10.0


class HttpClient:
    """One pool of connections and the rules above. Use it as `async with`, or `aclose()`.

    `request(...)` returns an `HttpResponse` with the body already read (and capped) and the
    connection back in the pool; it raises `HttpError` subclasses (`InvalidRequest`,
    `ConnectFailed`, `HttpTimeout`, `ConnectionLost`, `BadResponse`) or, with a guard,
    `ForbiddenDestination`."""

    def __init__(
        self,
        *,
        guard: ConnectGuard | None = None,
        verify: ssl.SSLContext | bool = True,
        max_connections: int = 100,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_content_codings: int = 1,
        socket_factory: SocketFactory | None = None,
    ) -> None:
        self.guard = guard
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_body_bytes = max_body_bytes
        self.max_content_codings = max_content_codings
        self.max_connections = max_connections
        # Connections this client opened (each new TCP connection; reuse is not counted).
        self.connections_opened = 0
        self._verify = verify
        self._socket_factory = socket_factory
        self._pool = connections.Pool(max_connections)
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._pool.close()
        self._pool = connections.Pool(self.max_connections)  # usable again, like a fresh client

    def _open_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        self.connections_opened += 1
        if self._socket_factory is not None:
            return self._socket_factory(addr_info)
        family, kind, proto, _canonical, _address = addr_info
        return socket.socket(family=family, type=kind, proto=proto)

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        headers: Headers | None = None,
        params: Mapping[str, str] | None = None,
        json: Any = _NO_JSON,
        content: bytes | str | None = None,
        timeout_s: float | None = None,
        max_body_bytes: int | None = None,
        max_content_codings: int | None = None,
    ) -> HttpResponse:
        """One request, no redirect followed. `json` (any JSON value, `None` included) or
        `content` is the body; `params` are added to the URL's query; `timeout_s` bounds the
        whole exchange, body included; `max_body_bytes=0` does not read the body at all;
        `max_body_bytes` and `max_content_codings` override the client's defaults."""
        target = _absolute(url)
        if params:
            target = target.extend_query(params)
        pairs = checked_headers(headers or ())
        body: bytes | None
        if json is not _NO_JSON:
            body = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
            if not any(name.lower() == "content-type" for name, _ in pairs):
                pairs.append(("Content-Type", "application/json"))
        else:
            body = content.encode() if isinstance(content, str) else content
        if self.guard is not None:
            canonical = self.guard.check_host(target.raw_host or "")
            if canonical is not None and canonical != target.raw_host:
                # `127.1`, `[::ffff:7f00:1%25x]`: connect to the address that was checked.
                target = target.with_host(canonical)
        total = self.timeout_s if timeout_s is None else timeout_s
        cap = self.max_body_bytes if max_body_bytes is None else max_body_bytes
        codings = self.max_content_codings if max_content_codings is None else max_content_codings
        progress = _SendProgress()
        try:
            async with bounded(total):
                return await self._exchange(
                    method, target, pairs, body, (total, cap, codings), progress=progress
                )
        except HttpError:
            raise
        except TimeoutError:
            where = "answer" if progress.sent else "connection"
            raise HttpTimeout(
                f"no complete {where} within {total:g} s", sent=progress.sent
            ) from None

    async def _exchange(
        self,
        method: str,
        target: URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
        limits: tuple[float, int, int],
        *,
        progress: _SendProgress,
    ) -> HttpResponse:
        total_s, cap, codings = limits
        host = target.raw_host or ""
        port = target.port or (443 if target.scheme == "https" else 80)
        origin = (target.scheme, host, port)
        if target.user is not None and not any(n.lower() == "authorization" for n, _ in headers):
            # Credentials in the URL are sent as Basic authentication, never in the request line.
            headers = [*headers, ("Authorization", _basic(target))]
        path = target.raw_path_qs or "/"
        if " " in path or not path.isprintable() or not is_token(method):
            # A request line that could be read as two (yarl quotes these; a URL made with
            # encoded=True by a caller might not): refused before anything is sent.
            raise InvalidRequest("the URL's path or the method cannot go in a request line")
        try:
            head = wire.request_head(
                method,
                path,
                target.host_port_subcomponent or host,
                headers,
                body,
                defaults=_DEFAULT_HEADERS,
            )
        except UnicodeEncodeError:
            raise InvalidRequest("the request cannot be encoded") from None
        message = head if body is None else head + body
        connect_s = self.connect_timeout_s if self.connect_timeout_s < total_s else None
        pool = self._pool  # released to the pool it came from, even if aclose() ran meanwhile
        for attempt in (0, 1):
            idle = None if attempt else pool.take_idle(origin)
            if idle is not None:
                connection, reused = idle, True
            else:
                connection, reused = await self._connection(
                    pool, target, origin, connect_s, fresh=attempt == 1
                )
            reusable = False
            try:
                transport = connection.transport
                progress.sent = True
                if transport is None:
                    raise wire.Closed(answered=False)
                transport.write(message)
                try:
                    answer = await wire.read_answer(connection, method)
                except wire.Closed as closed:
                    if reused and not closed.answered and method in wire.IDEMPOTENT and not attempt:
                        continue  # a kept-alive connection the server had closed: once more
                    raise ConnectionLost(
                        f"the connection to {host}:{port} broke before its answer", sent=True
                    ) from None
                if cap <= 0:
                    data, truncated = b"", False
                else:
                    data, truncated = await read_capped(
                        answer, answer.headers.get("Content-Encoding"), cap, codings
                    )
                reusable = answer.reusable and not truncated
                return HttpResponse(answer.status, answer.headers, data, truncated, str(target))
            except wire.Closed:
                raise ConnectionLost(
                    f"the connection to {host}:{port} broke before its answer", sent=True
                ) from None
            finally:
                pool.release(connection, reusable=reusable)
        raise ConnectionLost(f"the connection to {host}:{port} broke twice", sent=True)

    async def _connection(
        self,
        pool: connections.Pool,
        target: URL,
        origin: wire.Origin,
        connect_s: float | None,
        *,
        fresh: bool,
    ) -> tuple[wire.Connection, bool]:
        """A pooled connection, or a new one; `connect_s` bounds the wait and the connect."""
        if connect_s is None:
            return await pool.acquire(origin, lambda: self._connect(target, origin), fresh=fresh)
        try:
            async with asyncio.timeout(connect_s):
                return await pool.acquire(
                    origin, lambda: self._connect(target, origin), fresh=fresh
                )
        except TimeoutError:
            raise HttpTimeout(
                f"connecting to {origin[1]}:{origin[2]} timed out", sent=False
            ) from None

    async def _connect(self, target: URL, origin: wire.Origin) -> wire.Connection:
        scheme, host, port = origin
        where = f"{host}:{port}"
        loop = asyncio.get_running_loop()
        if _is_literal(host):
            addresses = [host]
        elif self.guard is not None:
            addresses = [str(a) for a in await self.guard.connect_addresses(host, port)]
        else:
            addresses = await self._resolve(host, port)
        reason = "no address"
        sock: socket.socket | None = None
        for address in addresses:
            info = connections.addr_info(address, port)
            try:
                candidate = self._open_socket(info)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                continue
            try:
                candidate.setblocking(False)
                await loop.sock_connect(candidate, info[4])
            except OSError as exc:
                candidate.close()
                reason = exc.strerror or type(exc).__name__
                continue
            except BaseException:
                candidate.close()
                raise
            sock = candidate
            break
        if sock is None:
            raise ConnectFailed(f"cannot connect to {where} ({reason})")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tls = connections.tls_context(self._verify) if scheme == "https" else None
        try:
            _, connection = await loop.create_connection(
                lambda: wire.Connection(origin),
                sock=sock,
                ssl=tls,
                # The certificate is checked against the URL's host name, never the address.
                server_hostname=host if tls is not None else None,
            )
        except ssl.SSLCertVerificationError:
            sock.close()
            raise ConnectFailed(
                f"the TLS certificate of {where} did not verify for that host name"
            ) from None
        except ssl.SSLError:
            sock.close()
            raise ConnectFailed(f"TLS with {where} failed") from None
        except OSError as exc:
            sock.close()
            raise ConnectFailed(
                f"cannot connect to {where} ({exc.strerror or type(exc).__name__})"
            ) from None
        except BaseException:
            sock.close()
            raise
        return connection

    async def _resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        known = self._dns.get((host, port))
        if known is not None and known[0] > loop.time():
            return known[1]
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError):
            raise ConnectFailed(f"cannot resolve {host!r}") from None
        addresses: list[str] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ConnectFailed(f"cannot resolve {host!r}")
        if len(self._dns) > 1024:
            self._dns.clear()
        self._dns[(host, port)] = (loop.time() + _DNS_TTL_S, addresses)
        return addresses

    async def get(self, url: str | URL, **options: Any) -> HttpResponse:
        return await self.request("GET", url, **options)

    async def post(self, url: str | URL, **options: Any) -> HttpResponse:
        return await self.request("POST", url, **options)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _basic(target: URL) -> str:
    user = target.user or ""
    password = target.password or ""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


# Visible ASCII: a URL written only with these is sent as written (its percent-encoding kept:
# `%21` stays `%21`); anything else (a space, a control character, non-ASCII) is quoted.
_AS_WRITTEN = re.compile(r"[\x21-\x7e]+")


def _absolute(url: str | URL) -> URL:
    try:
        if isinstance(url, URL):
            target = url
        else:
            target = URL(url, encoded=_AS_WRITTEN.fullmatch(url) is not None)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"the URL does not parse ({exc})") from None
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise InvalidRequest("the URL must be absolute, http or https, with a host")
    return target
