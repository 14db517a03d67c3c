"""Forward proxies (CONTRACT "Egress proxy"): which calls go through one, and the tunnel.

`Proxies.from_environ` reads `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (either case, the
lower-case one first, as curl and httpx do). An https call goes through a `CONNECT` tunnel,
its TLS still made with the destination and verified against the destination's name; an http
call is sent to the proxy in absolute form. Only `NO_PROXY` decides what bypasses the proxy
(hosts, `.domain` or `domain` suffixes, IP addresses and CIDR networks, `*` for all; loopback
is not special), and the caller's egress policy has judged the destination before the proxy
is asked. The proxy's credentials come from its URL's userinfo and go only into
`Proxy-Authorization`; nothing here names them (a proxy is named by host and port).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from yarl import URL

from actions.http.errors import ConnectFailed

# A CONNECT answer's head larger than this is refused (as an answer's head is).
_MAX_HEAD_BYTES = 64 * 1024
_CONNECT_STATUS = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?")


@dataclass(frozen=True)
class Proxy:
    """One forward proxy: where it listens and the Proxy-Authorization value, if any."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, raw: str) -> Proxy:
        """`http://user:pass@host:port` (a bare `host:port` is taken as http); ValueError
        for anything else, naming no credential."""
        url = URL(raw if "://" in raw else f"http://{raw}")
        if url.scheme != "http" or not url.raw_host:
            raise ValueError(
                f"a proxy URL must be http://[user:password@]host[:port] (got scheme "
                f"{url.scheme!r}, host {url.raw_host or ''!r})"
            )
        authorization = None
        if url.raw_user is not None:
            pair = f"{unquote(url.raw_user)}:{unquote(url.raw_password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(url.raw_host, url.port or 80, authorization)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Proxies:
    """The proxy for each scheme and what bypasses them; empty: every call goes direct."""

    https: Proxy | None = None
    http: Proxy | None = None
    no_proxy: tuple[str, ...] = ()
    _networks: tuple[Network, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Proxies:
        def read(name: str) -> str:
            return (environ.get(name.lower()) or environ.get(name.upper()) or "").strip()

        https, http, bypass = read("https_proxy"), read("http_proxy"), read("no_proxy")
        names: list[str] = []
        networks: list[Network] = []
        for entry in (e.strip().lower() for e in bypass.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                names.append(entry.lstrip(".").rstrip("."))
        return cls(
            Proxy.parse(https) if https else None,
            Proxy.parse(http) if http else None,
            tuple(names),
            tuple(networks),
        )

    def __bool__(self) -> bool:
        return self.https is not None or self.http is not None

    def for_origin(self, scheme: str, host: str) -> Proxy | None:
        """The proxy a call to `host` goes through, None when it goes direct."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self._bypassed(host.strip("[]").lower().rstrip(".")):
            return None
        return proxy

    def _bypassed(self, host: str) -> bool:
        if "*" in self.no_proxy:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return any(host == name or host.endswith("." + name) for name in self.no_proxy)
        return host in self.no_proxy or any(address in network for network in self._networks)


async def open_tunnel(sock: socket.socket, proxy: Proxy, host: str, port: int) -> None:
    """Ask the proxy (connected on `sock`) for a tunnel to `host:port`: `ConnectFailed` unless
    it answers 2xx. Nothing is read past the answer's head: the destination speaks only after
    the TLS client hello, so bytes after it are refused rather than guessed at."""
    loop = asyncio.get_running_loop()
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if proxy.authorization is not None:
        head += f"Proxy-Authorization: {proxy.authorization}\r\n"
    await loop.sock_sendall(sock, (head + "\r\n").encode("ascii"))
    answer = bytearray()
    while (end := answer.find(b"\r\n\r\n")) < 0:
        if len(answer) > _MAX_HEAD_BYTES:
            raise ConnectFailed(f"the proxy {proxy.where} sent an oversized answer to CONNECT")
        data = await loop.sock_recv(sock, 4096)
        if not data:
            raise ConnectFailed(f"the proxy {proxy.where} closed the tunnel to {authority}")
        answer += data
    status = _CONNECT_STATUS.fullmatch(answer[: answer.find(b"\r\n")])
    if status is None:
        raise ConnectFailed(f"the proxy {proxy.where} did not answer CONNECT in HTTP/1.x")
    code = int(status.group(1))
    if not 200 <= code < 300:
        raise ConnectFailed(f"the proxy {proxy.where} refused a tunnel to {authority} ({code})")
    if end + 4 != len(answer):
        raise ConnectFailed(f"the proxy {proxy.where} sent bytes after its CONNECT answer")
