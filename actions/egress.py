"""The egress policy for `http_request`: which addresses a request from a flow may reach.

A request names a URL; anyone who can write to the requests topic chooses it. So the host is
checked before every request (an IP literal in any spelling is judged here: aiohttp never asks
a resolver about literals), a name is resolved here with every address checked, and the
connection goes only to the checked addresses, so a DNS answer that changes between check and
connect cannot slip through. Redirects are followed by hand (in the action) and every hop is
checked again.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from actions.errors import ForbiddenDestination, InvalidParams, UpstreamUnavailable
from actions.http import ConnectFailed, HttpClient

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


# Special-purpose ranges (IANA registries) that are not globally reachable, listed here so the
# verdict does not depend on which Python's is_global tables are installed (they change between
# releases: 3.11.7 calls 192.0.0.8 global, for one).
_ALWAYS_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments (incl. the 192.0.0.8 dummy address)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "fec0::/10",  # deprecated site-local (RFC 3879)
        "2001::/23",  # IETF protocol assignments (Teredo, judged by its IPv4, comes first)
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs (RFC 9602)
        # Local-use NAT64 (RFC 8215): where the IPv4 address sits depends on the operator's
        # prefix length, so what a translator would reach cannot be read off the address.
        "64:ff9b:1::/48",
    )
)
# The well-known NAT64 prefix (RFC 6052): the last 32 bits are the IPv4 address reached.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address in _NAT64:
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


# How many allowed literal hosts a policy remembers its verdict for (then it starts afresh).
_VERDICTS_KEPT = 1024


@dataclass(frozen=True)
class EgressPolicy:
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver
    # host -> canonical address of an allowed IP literal, None for a DNS name: `check_host`
    # runs before every request, and a flow calls the same few hosts again and again. A
    # refusal is not remembered (it is judged anew, and rare).
    _verdicts: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def is_allowed(self, address: IPAddress) -> bool:
        if any(address in network for network in self.allowed_networks):
            return True
        inner = embedded_ipv4(address)
        if inner is not None:
            return self.is_allowed(inner)
        if any(address in network for network in _ALWAYS_BLOCKED):
            return False
        return address.is_global and not (address.is_multicast or address.is_reserved)

    def check_host(self, host: str) -> str | None:
        """Refuse a host that is a blocked IP literal, or neither a literal nor a name; a DNS
        name passes here (None) and is judged on its answer when a connection is made. An
        allowed literal comes back as its canonical address, the one to connect to."""
        verdicts = self._verdicts
        if host in verdicts:
            return verdicts[host]
        literal = _cached_literal(host)
        canonical = None
        if literal is not None:
            if not self.is_allowed(literal):
                raise ForbiddenDestination(
                    f"destination {host!r} is a blocked address ({literal}; "
                    "allow it with EXECUTION_HTTP_ALLOWED_NETWORKS)",
                    details={"host": host, "address": str(literal)},
                )
            canonical = str(literal)
        if len(verdicts) >= _VERDICTS_KEPT:
            verdicts.clear()
        verdicts[host] = canonical
        return canonical

    async def connect_addresses(self, host: str, port: int) -> Sequence[IPAddress]:
        """`checked_addresses` for a new connection: no answer is a failed connect (the
        request never left), which the HTTP client reports as such."""
        try:
            return await self.checked_addresses(host, port)
        except UpstreamUnavailable as exc:
            raise ConnectFailed(exc.message) from None

    async def checked_address(self, host: str, port: int) -> IPAddress:
        """The first of `checked_addresses`."""
        return (await self.checked_addresses(host, port))[0]

    async def checked_addresses(self, host: str, port: int) -> Sequence[IPAddress]:
        """Resolve `host`; every answer must be allowed (a mixed answer is refused whole).

        An IP literal, in any spelling the system's resolver would accept (`127.1`, `0x7f.1`,
        `2130706433`, `017700000001`, a trailing dot, a bracketed IPv6 with a zone), is
        judged here without asking the resolver, so the verdict cannot depend on how a
        resolver reads it."""
        literal = literal_address(host)
        if literal is not None:
            addresses: Sequence[IPAddress] = [literal]
        else:
            try:
                addresses = await self.resolver(host, port)
            except (OSError, UnicodeError) as exc:
                raise UpstreamUnavailable(f"cannot resolve host {host!r}") from exc
        if not addresses:
            raise UpstreamUnavailable(f"host {host!r} has no address")
        refused = [a for a in addresses if not self.is_allowed(a)]
        if refused:
            raise ForbiddenDestination(
                f"destination {host!r} resolves to a blocked address ({refused[0]}; "
                "allow it with EXECUTION_HTTP_ALLOWED_NETWORKS)",
                details={"host": host, "address": str(refused[0])},
            )
        return addresses


# What a DNS name may hold once IDNA-encoded (letters, digits, hyphen; underscore in practice).
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
# A label inet_aton(3) reads as a number: hex (0x...), octal (0...) or decimal.
_NUMERIC_LABEL = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


@functools.lru_cache(maxsize=1024)
def _cached_literal(host: str) -> IPAddress | None:
    # Checked before every request: a flow calls the same few hosts again and again.
    return literal_address(host)


def literal_address(host: str) -> IPAddress | None:
    """The address an IP-literal `host` denotes, None for a DNS name. A host that is neither
    (a malformed literal, `%`-escapes, characters no name has) is refused outright: handing
    it to a resolver would let that resolver decide what it means."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in text:
        # IPv6; a zone id ("%eth0", "%25eth0" as URLs spell it) does not change the address.
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            raise ForbiddenDestination(f"{host!r} is not a valid IPv6 address") from None
    labels = (text[:-1] if text.endswith(".") else text).split(".")
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels):
        address = _inet_aton(labels)
        if address is None:
            raise ForbiddenDestination(f"{host!r} is not a valid IPv4 address")
        return address
    if not _HOST_NAME.fullmatch(text):
        raise ForbiddenDestination(f"{host!r} is not a valid host name")
    return None


def _inet_aton(labels: list[str]) -> ipaddress.IPv4Address | None:
    """IPv4 as the C library reads it: 1-4 parts, each decimal, octal or hex, the last part
    filling the remaining bytes (`127.1` is 127.0.0.1, `2130706433` is too)."""
    if not 1 <= len(labels) <= 4:
        return None
    values: list[int] = []
    for label in labels:
        if label[:2].lower() == "0x":
            if len(label) == 2:
                return None
            values.append(int(label[2:], 16))
        elif len(label) > 1 and label.startswith("0"):
            if not set(label) <= set("01234567"):
                return None
            values.append(int(label, 8))
        else:
            values.append(int(label))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(head):
        number += value << (24 - 8 * index)
    return ipaddress.IPv4Address(number)


def guarded_client(
    policy: EgressPolicy,
    *,
    verify: ssl.SSLContext | bool = True,
    max_connections: int = 100,
    max_connections_per_origin: int | None = None,
    timeout_s: float = 10.0,
    **options: Any,
) -> HttpClient:
    """The client for URLs a request names: every host is checked by `policy` before every
    request (IP literals included, which no resolver sees), and every new connection goes only
    to the addresses the policy checked (a DNS answer cannot change between check and connect).
    TLS verifies the certificate against the host name, never the address. It follows no
    redirect: the caller follows them hop by hop, each one checked again. A request that a
    project names goes through `for_project(project)`: connections never shared between
    projects. `options` go to `HttpClient` (`socket_factory` lets tests observe connection
    attempts)."""
    return HttpClient(
        guard=policy,
        verify=verify,
        max_connections=max_connections,
        max_connections_per_origin=max_connections_per_origin,
        timeout_s=timeout_s,
        **options,
    )


def service_client(timeout_s: float, *, max_in_flight: int = 100, **options: Any) -> HttpClient:
    """The client for the APIs the engine itself calls (Slack, Sheets, Notion, the Vault),
    at operator-configured base URLs. The same `HttpClient` (no cookies, headers checked,
    bodies capped) with its own pool: a connection it opened to an operator's internal
    address is never handed to a request-chosen URL. Each API may hold `max_in_flight`
    connections and all of them twice that, so a slow API leaves room for the others."""
    return HttpClient(
        timeout_s=timeout_s,
        max_connections=2 * max_in_flight,
        max_connections_per_origin=max_in_flight,
        **options,
    )


def egress_url(raw: str, query: Mapping[str, Any] | None = None) -> URL:
    """`raw` (its own query string merged with `query`) as a URL an action may send to through
    the egress client: one that parses, with scheme http or https and a host."""
    try:
        url = URL(raw)
        if query:
            url = url.update_query({k: _query_value(v) for k, v in query.items()})
    except (ValueError, TypeError, IndexError) as exc:  # IndexError: yarl on `http://[]@`
        raise InvalidParams(f"params.url: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ForbiddenDestination(f"scheme {url.scheme!r} is not allowed (http and https only)")
    if not url.raw_host:
        raise InvalidParams("params.url: no host")
    return url


def _query_value(value: Any) -> str | list[str]:
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    return _scalar(value)


def _scalar(value: Any) -> str:
    # As a query string spells them (JSON's true/false, not Python's True/False).
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)
