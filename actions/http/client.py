"""`HttpClient`: the one HTTP client every action and plugin calls through.

Underneath: HTTP/1.1 on asyncio's transports (`actions.http.wire`), answers parsed by
httptools: a general client's per-request machinery costs several times what the event loop
and sockets cost per call, and the engine needs none of its extras (CHANGELOG.md has the
measurements).

What every request gets, whoever calls: headers checked before anything is sent
(`InvalidRequest`), no redirects followed (the caller decides, hop by hop), no cookies kept
(the client serves every project), a forward proxy only when given one (`Proxies`, which the
engine reads from the environment), the body read whole but
capped and content-encoding undone within that cap (`body.read_capped`), one total timeout
plus a connect and a read timeout, and typed failures that say whether the request had gone
out (`HttpError.sent`). With a `ConnectGuard` (the egress policy), a host is checked before
every request and every new connection goes only to addresses the guard returned.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json as jsonlib
import re
import ssl
import sys
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from yarl import URL

from actions.http import pool as connections
from actions.http import wire
from actions.http.body import ACCEPT_ENCODING, read_capped
from actions.http.connect import ConnectGuard, Connector, SocketFactory
from actions.http.errors import (
    ConnectionLost,
    HttpError,
    HttpTimeout,
    InvalidRequest,
)
from actions.http.headers import checked_headers, is_token
from actions.http.proxy import Proxies
from actions.http.response import HttpResponse
from actions.http.timeouts import bounded

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# Per-project views remembered (a view is a few attributes; then they are made afresh).
_VIEWS_KEPT = 4096
_NO_JSON = object()


class _Shared:
    """What a client and its per-project views share."""

    __slots__ = ("connector", "pool", "views")

    def __init__(self, pool: connections.Pool, connector: Connector) -> None:
        self.pool = pool
        self.connector = connector
        self.views: dict[str, HttpClient] = {}


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
        max_connections_per_origin: int | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_content_codings: int = 1,
        socket_factory: SocketFactory | None = None,
        proxies: Proxies | None = None,
    ) -> None:
        self.guard = guard
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_body_bytes = max_body_bytes
        self.max_content_codings = max_content_codings
        self.max_connections = max_connections
        self.max_connections_per_origin = max_connections_per_origin or max_connections
        self._shared = _Shared(
            connections.Pool(max_connections, self.max_connections_per_origin),
            Connector(guard, verify, socket_factory, proxies or Proxies()),
        )
        self._partition = ""

    def for_project(self, project: str) -> HttpClient:
        """This client for one project's requests: the same pool and rules, but connections
        kept apart from every other project's (see `actions.http.pool`). What a tenant's
        request names (`http_request`, `send_webhook`, a plugin's URL) goes through one."""
        views = self._shared.views
        view = views.get(project)
        if view is None:
            if len(views) >= _VIEWS_KEPT:
                views.clear()
            view = views[project] = copy.copy(self)
            view._partition = project
        return view

    @property
    def connections_opened(self) -> int:
        """Connections this client opened (each new TCP connection; reuse is not counted)."""
        return self._shared.connector.opened

    @property
    def _pool(self) -> connections.Pool:
        return self._shared.pool

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
        self._shared.pool.close()
        # Usable again, like a fresh client.
        self._shared.pool = connections.Pool(self.max_connections, self.max_connections_per_origin)

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
        key = (self._partition, target.scheme, host, port)
        if target.user is not None and not any(n.lower() == "authorization" for n, _ in headers):
            # Credentials in the URL are sent as Basic authentication, never in the request line.
            headers = [*headers, ("Authorization", _basic(target))]
        path = target.raw_path_qs or "/"
        if self._shared.connector.proxied and target.scheme == "http":
            path, headers = self._through_proxy(target, path, headers)
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
            idle = None if attempt else pool.take_idle(key)
            if idle is not None:
                connection, reused = idle, True
            else:
                connection, reused = await self._connection(
                    pool, key, connect_s, fresh=attempt == 1
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
                # Kept only when the answer was read whole and the request written whole:
                # an upstream that answers early leaves the rest of the body queued, and the
                # next request would go out behind it.
                reusable = (
                    answer.reusable and not truncated and not transport.get_write_buffer_size()
                )
                return HttpResponse(answer.status, answer.headers, data, truncated, str(target))
            except wire.Closed:
                raise ConnectionLost(
                    f"the connection to {host}:{port} broke before its answer", sent=True
                ) from None
            finally:
                pool.release(connection, reusable=reusable)
        raise ConnectionLost(f"the connection to {host}:{port} broke twice", sent=True)

    def _through_proxy(
        self, target: URL, path: str, headers: list[tuple[str, str]]
    ) -> tuple[str, list[tuple[str, str]]]:
        """An http request's target and headers when a proxy carries it: its whole URL
        (absolute form, RFC 9112 3.2.2) and the proxy's credentials."""
        host = target.raw_host or ""
        proxy = self._shared.connector.proxy_for(target.scheme, host)
        if proxy is None:
            return path, headers
        if proxy.authorization is not None:
            headers = [*headers, ("Proxy-Authorization", proxy.authorization)]
        return f"http://{target.host_port_subcomponent or host}{path}", headers

    async def _connection(
        self,
        pool: connections.Pool,
        key: wire.PoolKey,
        connect_s: float | None,
        *,
        fresh: bool,
    ) -> tuple[wire.Connection, bool]:
        """A pooled connection, or a new one; `connect_s` bounds the wait and the connect."""
        origin = key[1:]
        connect = self._shared.connector.open
        if connect_s is None:
            return await pool.acquire(key, lambda: connect(origin), fresh=fresh)
        try:
            async with asyncio.timeout(connect_s):
                return await pool.acquire(key, lambda: connect(origin), fresh=fresh)
        except TimeoutError:
            raise HttpTimeout(
                f"connecting to {origin[1]}:{origin[2]} timed out", sent=False
            ) from None

    async def get(self, url: str | URL, **options: Any) -> HttpResponse:
        return await self.request("GET", url, **options)

    async def post(self, url: str | URL, **options: Any) -> HttpResponse:
        return await self.request("POST", url, **options)


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
