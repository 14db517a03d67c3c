"""`HttpClient`: the one HTTP client every action and plugin calls through (aiohttp underneath).

Why aiohttp directly: measured at 200 calls in flight, the httpx client the engine had cost
3-4 times the CPU per call of aiohttp, and httpx over aiohttp's connection engine
(`httpx-aiohttp`) still about twice (README "HTTP data plane" has the figures).

What every request gets, whoever calls: headers checked before anything is sent
(`InvalidRequest`), no redirects followed (the caller decides, hop by hop), no cookies kept
(the client serves every project), no proxy from the environment, the body read whole but
capped and content-encoding undone within that cap (`body.read_capped`), one total timeout
plus a connect and a read timeout, and typed failures that say whether the request had gone
out (`HttpError.sent`). With a `ConnectGuard` (the egress policy), a host is checked before
every request and every new connection goes only to addresses the guard returned.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import json as jsonlib
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from actions.http.body import ACCEPT_ENCODING, read_capped
from actions.http.errors import (
    BadResponse,
    ConnectFailed,
    ConnectionLost,
    HttpError,
    HttpTimeout,
    InvalidRequest,
)
from actions.http.headers import checked_headers
from actions.http.response import HttpResponse
from actions.timeouts import bounded

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


# Set by `request` for its own task; the request class below marks it when the request starts
# to go out on a connection, so a timeout or a lost connection knows which side of that it was.
_PROGRESS: contextvars.ContextVar[_SendProgress | None] = contextvars.ContextVar(
    "http_send_progress", default=None
)


class _MarkedRequest(aiohttp.ClientRequest):
    async def send(self, conn: Any) -> aiohttp.ClientResponse:
        progress = _PROGRESS.get()
        if progress is not None:
            progress.sent = True
        return await super().send(conn)


class _GuardedResolver(AbstractResolver):
    """Answers a connection's name lookup with the guard's checked addresses only."""

    def __init__(self, guard: ConnectGuard) -> None:
        self._guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[ResolveResult]:
        addresses = await self._guard.connect_addresses(host, port)
        results: list[ResolveResult] = []
        for address in addresses:
            kind = socket.AF_INET if address.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, kind):
                results.append(
                    ResolveResult(
                        hostname=host,
                        host=str(address),
                        port=port,
                        family=kind,
                        proto=0,
                        flags=socket.AI_NUMERICHOST,
                    )
                )
        if not results:
            raise ConnectFailed(f"host {host!r} has no address of the family asked for")
        return results

    async def close(self) -> None:
        return None


_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)
_NO_AUTO_CONTENT_TYPE = ("Content-Type",)


@functools.lru_cache(maxsize=128)
def _timeouts(connect_s: float, total_s: float) -> aiohttp.ClientTimeout:
    """aiohttp's own timers, only where they bound something the total does not: a connect
    timeout shorter than the total. The total (reads included) is `request`'s asyncio.timeout,
    which knows whether the request had gone out; one timer per call, not one per read."""
    if connect_s >= total_s:
        return _NO_TIMEOUT
    return aiohttp.ClientTimeout(total=None, connect=connect_s)


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
        self._session: aiohttp.ClientSession | None = None

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
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _open_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        self.connections_opened += 1
        if self._socket_factory is not None:
            return self._socket_factory(addr_info)
        family, kind, proto, _canonical, _address = addr_info
        return socket.socket(family=family, type=kind, proto=proto)

    def _session_now(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp binds a session to its loop).
        if self._session is None:
            # True: aiohttp's own verifying context, made once per process (and only if used).
            tls: ssl.SSLContext | bool = self._verify
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                # Guarded: every new connection asks the guard again (it re-checks the answer).
                use_dns_cache=self.guard is None,
                resolver=None if self.guard is None else _GuardedResolver(self.guard),
                ssl=tls,
                socket_factory=self._open_socket,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"Accept-Encoding": ACCEPT_ENCODING},
                auto_decompress=False,  # done within the body cap, see body.read_capped
                trust_env=False,  # a proxy would connect to its address, not a checked one
                request_class=_MarkedRequest,
                timeout=_NO_TIMEOUT,
            )
        return self._session

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
        reset = _PROGRESS.set(progress)
        try:
            async with bounded(total):
                return await self._exchange(method, target, pairs, body, (total, cap, codings))
        except HttpError:
            raise
        except aiohttp.ClientError as exc:  # before TimeoutError: aiohttp's timeouts are both
            raise _failure(exc, target, progress.sent) from None
        except TimeoutError:
            where = "answer" if progress.sent else "connection"
            raise HttpTimeout(
                f"no complete {where} within {total:g} s", sent=progress.sent
            ) from None
        finally:
            _PROGRESS.reset(reset)

    async def _exchange(
        self,
        method: str,
        target: URL,
        headers: list[tuple[str, str]],
        body: bytes | None,
        limits: tuple[float, int, int],
    ) -> HttpResponse:
        total_s, cap, codings = limits
        timeouts = _timeouts(min(total_s, self.connect_timeout_s), total_s)
        # A body gets the Content-Type the caller gives, none invented; without a body there
        # is none to skip (aiohttp's cheaper path).
        answer = await self._session_now().request(
            method,
            target,
            headers=headers,
            data=body,
            allow_redirects=False,
            timeout=timeouts,
            skip_auto_headers=None if body is None else _NO_AUTO_CONTENT_TYPE,
        )
        try:
            if cap <= 0:
                data, truncated = b"", False
            else:
                data, truncated = await read_capped(
                    answer.content,
                    answer.headers.get("Content-Encoding"),
                    cap,
                    codings,
                )
            return HttpResponse(answer.status, answer.headers, data, truncated, str(answer.url))
        finally:
            answer.release()  # what `async with` on the response does, one layer fewer
            await answer.wait_for_close()

    async def get(self, url: str | URL, **options: Any) -> HttpResponse:
        return await self.request("GET", url, **options)

    async def post(self, url: str | URL, **options: Any) -> HttpResponse:
        return await self.request("POST", url, **options)


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


def _failure(exc: aiohttp.ClientError, target: URL, sent: bool) -> HttpError:
    where = f"{target.raw_host}:{target.port}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return HttpTimeout(f"connecting to {where} timed out", sent=False)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return HttpTimeout(f"{where} did not answer in time", sent=True)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ConnectFailed(f"the TLS certificate of {where} did not verify for that host name")
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return ConnectFailed(f"TLS with {where} failed")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return ConnectFailed(f"cannot resolve {target.raw_host!r}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.strerror or type(exc.os_error).__name__
        return ConnectFailed(f"cannot connect to {where} ({reason})")
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidRequest("the URL is not one aiohttp can send")
    if isinstance(exc, aiohttp.ClientResponseError):
        return BadResponse(f"{where} answered something that is not HTTP ({exc.message})")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ConnectionLost(f"the answer of {where} was cut short", sent=True)
    return ConnectionLost(f"the connection to {where} broke ({type(exc).__name__})", sent=sent)
