"""How `HttpClient` opens a connection: the addresses (the guard's checked ones, or the
system's), happy eyeballs over them, a proxy when one applies, and TLS.

A name with several addresses is connected to as RFC 8305 says (`aiohappyeyeballs`, what
aiohttp uses): the next address is tried 250 ms after the last one started, families
interleaved, the first to connect wins, so a silent first address does not cost the whole
connect timeout. Only the addresses in hand are tried: with a guard, those it checked.

Through a proxy (`actions.http.proxy`), the guard still judges the destination first (the
name's addresses, all of them allowed), then the connection goes to the proxy: a `CONNECT`
tunnel for https, TLS then made with the destination and verified against its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiohappyeyeballs

from actions.http import pool as connections
from actions.http import wire
from actions.http.errors import ConnectFailed
from actions.http.proxy import Proxies, Proxy, open_tunnel

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Called with each address a new connection tries (aiohappyeyeballs' AddrInfoType): returns
# the socket to connect with. Tests record attempts through it; the client counts connections.
SocketFactory = Callable[[tuple[Any, ...]], socket.socket]

# RFC 8305 5: "a recommended value of 250 milliseconds" between connection attempts.
HAPPY_EYEBALLS_DELAY_S = 0.25
# How long a name's addresses are reused without asking the system again (unguarded clients
# only: a guarded one asks its guard for every new connection).
_DNS_TTL_S = 10.0


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


class Connector:
    """Opens connections for one client (and its per-project views)."""

    def __init__(
        self,
        guard: ConnectGuard | None,
        verify: ssl.SSLContext | bool,
        socket_factory: SocketFactory | None,
        proxies: Proxies,
    ) -> None:
        self.guard = guard
        self.proxies = proxies
        self.proxied = bool(proxies)  # asked before every request
        self.opened = 0  # each new TCP connection; reuse is not counted
        self._verify = verify
        self._socket_factory = socket_factory
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}

    def proxy_for(self, scheme: str, host: str) -> Proxy | None:
        return self.proxies.for_origin(scheme, host) if self.proxied else None

    async def open(self, origin: wire.Origin) -> wire.Connection:
        scheme, host, port = origin
        where = f"{host}:{port}"
        proxy = self.proxy_for(scheme, host)
        if proxy is None:
            sock = await self._connect(await self._addresses(host, port), port, where)
        else:
            if self.guard is not None and not _is_literal(host):
                await self.guard.connect_addresses(host, port)  # judged before the proxy is asked
            proxy_addresses = await self._addresses(proxy.host, proxy.port, guarded=False)
            sock = await self._connect(proxy_addresses, proxy.port, f"the proxy {proxy.where}")
            if scheme == "https":
                try:
                    await open_tunnel(sock, proxy, host, port)
                except BaseException:
                    sock.close()
                    raise
        tls = connections.tls_context(self._verify) if scheme == "https" else None
        loop = asyncio.get_running_loop()
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

    async def _addresses(self, host: str, port: int, *, guarded: bool = True) -> list[str]:
        if _is_literal(host):
            return [host]
        if guarded and self.guard is not None:
            return [str(a) for a in await self.guard.connect_addresses(host, port)]
        return await self._resolve(host, port)

    async def _connect(self, addresses: list[str], port: int, where: str) -> socket.socket:
        """A socket connected to one of `addresses` (happy eyeballs), TCP_NODELAY set."""
        infos = [connections.addr_info(address, port) for address in addresses]
        try:
            sock = await aiohappyeyeballs.start_connection(
                infos,
                happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY_S,
                interleave=1,
                socket_factory=self._open_socket,
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise ConnectFailed(f"cannot connect to {where} ({reason})") from None
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _open_socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        self.opened += 1
        if self._socket_factory is not None:
            return self._socket_factory(addr_info)
        family, kind, proto, _canonical, _address = addr_info
        return socket.socket(family=family, type=kind, proto=proto)

    async def _resolve(self, host: str, port: int) -> list[str]:
        loop = asyncio.get_running_loop()
        dns = self._dns
        known = dns.get((host, port))
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
        if len(dns) > 1024:
            dns.clear()
        dns[(host, port)] = (loop.time() + _DNS_TTL_S, addresses)
        return addresses


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
