"""The egress policy for `http_request`: which addresses a request from a flow may reach.

A request names a URL; anyone who can write to the requests topic chooses it. So the host is
resolved here, every address is checked, and the connection goes to the checked address, so a
DNS answer that changes between check and connect cannot slip through. Redirects are followed by
hand (in the action) and every hop's connection is checked again.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx
from httpcore._backends.base import SOCKET_OPTION

from actions.errors import ForbiddenDestination, UpstreamUnavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]


async def system_resolver(host: str, port: int) -> Sequence[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        # Drop an IPv6 zone ("fe80::1%eth0"): the bare address is what gets checked.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def parse_networks(spec: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """`"127.0.0.0/8, ::1/128"` -> networks; raises ValueError naming a bad entry."""
    items = spec.split(",") if isinstance(spec, str) else spec
    networks: list[IPNetwork] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"not a CIDR network: {item!r}") from exc
    return tuple(networks)


# Not covered by Python's is_global / is_reserved, but never a public destination.
_ALWAYS_BLOCKED = (ipaddress.ip_network("fec0::/10"),)  # deprecated site-local (RFC 3879)
# NAT64 prefixes: the last 32 bits are the IPv4 address a translator would reach.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if any(address in prefix for prefix in _NAT64):
        return ipaddress.IPv4Address(address.packed[12:])
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    packed = address.packed
    # IPv4-compatible (deprecated ::a.b.c.d), excluding :: and ::1 themselves.
    if packed[:12] == bytes(12) and int.from_bytes(packed[12:], "big") > 1:
        return ipaddress.IPv4Address(packed[12:])
    return None


@dataclass(frozen=True)
class EgressPolicy:
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver

    def is_allowed(self, address: IPAddress) -> bool:
        if any(address in network for network in self.allowed_networks):
            return True
        inner = embedded_ipv4(address)
        if inner is not None:
            return self.is_allowed(inner)
        if any(address in network for network in _ALWAYS_BLOCKED):
            return False
        return address.is_global and not (address.is_multicast or address.is_reserved)

    async def checked_address(self, host: str, port: int) -> IPAddress:
        """Resolve `host`; every answer must be allowed (a mixed answer is refused whole)."""
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise UpstreamUnavailable(f"cannot resolve host {host!r}") from exc
        if not addresses:
            raise UpstreamUnavailable(f"host {host!r} has no address")
        refused = [a for a in addresses if not self.is_allowed(a)]
        if refused:
            raise ForbiddenDestination(
                f"destination {host!r} resolves to a blocked address ({refused[0]})",
                details={"host": host, "address": str(refused[0])},
            )
        return addresses[0]


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Every new connection resolves its host through the policy and connects to the address
    that was checked: the check and the connection cannot see different DNS answers (rebinding).
    TLS still verifies the certificate against the host name, which httpcore passes on as SNI.
    """

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self._policy.checked_address(host, port)
        return await self._inner.connect_tcp(
            str(address),
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ForbiddenDestination("unix sockets are not an allowed destination")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(policy: EgressPolicy, **client_options: Any) -> httpx.AsyncClient:
    """An httpx client whose every connection goes through `policy`. It never follows redirects
    itself: the caller follows them hop by hop so it can drop credentials across origins."""
    transport = httpx.AsyncHTTPTransport()
    pool = transport._pool  # httpx keeps its httpcore pool here (pinned: httpx<1, tested)
    pool._network_backend = GuardedNetworkBackend(policy, pool._network_backend)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, **client_options)
