"""The egress policy against generated address spellings and DNS answers (hypothesis).

No traffic leaves the process: the resolver is injected (it answers from the test, never from
DNS), and the network backend under the guard only records where it was asked to connect and
then fails. A spelling that slipped past the policy would show up as a recorded attempt.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions.egress import (
    EgressPolicy,
    IPAddress,
    embedded_ipv4,
    guarded_client,
    literal_address,
    parse_networks,
)
from actions.errors import ForbiddenDestination
from actions.http import ConnectFailed, InvalidRequest

V4_BLOCKED = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
]
V6_BLOCKED = [
    ipaddress.IPv6Network(n)
    for n in (
        "::1/128",
        "::/128",
        "fe80::/10",
        "fc00::/7",
        "ff00::/8",
        "2001:db8::/32",
        "fec0::/10",
        "100::/64",
        "2001::/23",
        "3fff::/20",
        "5f00::/16",
    )
]
SPELLINGS_TRIED: Counter[str] = Counter()


def listed_blocked(address: IPAddress) -> bool:
    """The test's own verdict: in one of the ranges above (the policy's verdict is on trial)."""
    networks: list[Any] = [*V4_BLOCKED, *V6_BLOCKED]
    return any(address in network for network in networks)


def in_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> st.SearchStrategy[Any]:
    first, last = int(network.network_address), int(network.broadcast_address)
    return st.integers(first, last).map(ipaddress.ip_address)


blocked_v4 = st.sampled_from(V4_BLOCKED).flatmap(in_network)
blocked_v6 = st.sampled_from(V6_BLOCKED).flatmap(in_network)
public_v4 = (
    st.integers(0, 2**32 - 1)
    .map(ipaddress.IPv4Address)
    .filter(lambda a: a.is_global and not listed_blocked(a))
)
public_v6 = (
    st.integers(0x2000 << 112, (0x3FFF << 112) | (2**112 - 1))
    .map(ipaddress.IPv6Address)
    .filter(lambda a: a.is_global and embedded_ipv4(a) is None and not listed_blocked(a))
)


@st.composite
def number(draw: st.DrawFn, value: int) -> str:
    """One inet_aton part: decimal, octal (leading 0) or hex (0x), padded with zeros."""
    radix = draw(st.sampled_from(["dec", "oct", "hex"]))
    if radix == "dec":
        return str(value)
    if radix == "oct":
        return "0" * draw(st.integers(1, 3)) + format(value, "o")
    prefix = draw(st.sampled_from(["0x", "0X"]))
    return prefix + "0" * draw(st.integers(0, 2)) + format(value, draw(st.sampled_from("xX")))


@st.composite
def ipv4_spelling(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """`address` as one to four parts (127.1, 127.0.1, 2130706433), any radix per part."""
    n = int(address)
    parts = draw(st.integers(1, 4))
    values = [(n >> (24 - 8 * i)) & 0xFF for i in range(parts - 1)]
    values.append(n & ((1 << (8 * (5 - parts))) - 1))
    text = ".".join(draw(number(v)) for v in values)
    return text + ("." if draw(st.booleans()) else "")


@st.composite
def ipv6_wrapping(draw: st.DrawFn, address: ipaddress.IPv4Address) -> str:
    """An IPv6 address that carries `address`: mapped, compatible, 6to4, Teredo, NAT64."""
    n = int(address)
    hi, lo = n >> 16, n & 0xFFFF
    r = draw(st.integers(0, 0xFFFF))
    form = draw(
        st.sampled_from(
            ["mapped", "mapped-hex", "mapped-long", "compat", "6to4", "teredo", "nat64"]
        )
    )
    if form == "compat" and n <= 1:
        form = "mapped"
    text = {
        "mapped": f"::ffff:{address}",
        "mapped-hex": f"::ffff:{hi:x}:{lo:x}",
        "mapped-long": f"0:0:0:0:0:ffff:{hi:x}:{lo:x}",
        "compat": f"::{address}",
        "6to4": f"2002:{hi:x}:{lo:x}:{r:x}::{r:x}",
        "teredo": f"2001:0:{r:x}:{r:x}:8000:{r:x}:{hi ^ 0xFFFF:x}:{lo ^ 0xFFFF:x}",
        "nat64": f"64:ff9b::{address}",
    }[form]
    return text.upper() if draw(st.booleans()) else text


@st.composite
def zone(draw: st.DrawFn) -> str:
    return draw(st.sampled_from(["", "", "%eth0", "%25eth0", "%1"]))


@st.composite
def spelled(draw: st.DrawFn, addresses: st.SearchStrategy[IPAddress]) -> tuple[IPAddress, str]:
    """(address, how a URL's host may spell it), for IPv4 also inside IPv6 forms."""
    address = draw(addresses)
    if isinstance(address, ipaddress.IPv6Address):
        compressed = address.compressed if draw(st.booleans()) else address.exploded
        return address, compressed + draw(zone())
    if draw(st.booleans()):
        return address, draw(ipv4_spelling(address))
    return address, draw(ipv6_wrapping(address)) + draw(zone())


def inner_ipv4(address: IPAddress) -> IPAddress:
    return embedded_ipv4(address) or address


@settings(max_examples=2000, deadline=None, database=None)
@given(spelled(st.one_of(blocked_v4, blocked_v6)))
def test_every_spelling_of_a_blocked_address_is_blocked(case: tuple[IPAddress, str]) -> None:
    address, spelling = case
    SPELLINGS_TRIED["blocked"] += 1
    parsed = literal_address(spelling)
    assert parsed is not None
    assert inner_ipv4(parsed) == address or parsed == address
    assert not EgressPolicy().is_allowed(parsed)
    # Bracketed, as a URL carries it.
    if ":" in spelling:
        assert literal_address(f"[{spelling}]") == parsed


@settings(max_examples=800, deadline=None, database=None)
@given(spelled(st.one_of(public_v4, public_v6)))
def test_every_spelling_of_a_public_address_is_that_address(case: tuple[IPAddress, str]) -> None:
    address, spelling = case
    SPELLINGS_TRIED["public"] += 1
    parsed = literal_address(spelling)
    assert parsed is not None and inner_ipv4(parsed) == address
    assert EgressPolicy().is_allowed(parsed)


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.4.5",
        "256.0.0.1",
        "1.16777216",
        "0x",
        "08.0.0.1",
        "::fffff:1",
        "1::2::3",
        "127.0.0.1%2f",
        "%31%32%37.0.0.1",
        "a b",
        "evil.test\\",
        "host@evil",
        "",
    ],
)
def test_hosts_that_are_neither_address_nor_name_are_refused(host: str) -> None:
    SPELLINGS_TRIED["malformed"] += 1
    with pytest.raises(ForbiddenDestination):
        literal_address(host)


class RecordingSockets:
    """The client's socket factory: records where a connection was about to go, and never
    connects (every attempt fails as a refused connection would)."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    def __call__(self, addr_info: tuple[Any, ...]) -> socket.socket:
        host, port = addr_info[4][:2]
        self.attempts.append((str(host), int(port)))
        raise ConnectionRefusedError("recording sockets: no connection is made")


async def refuse_dns(host: str, port: int) -> Sequence[IPAddress]:
    raise OSError(f"the test resolver knows no names ({host!r})")


# Label separators that IDNA (UTS 46) maps to ".": ideographic, fullwidth, halfwidth.
IDNA_DOTS = ["\u3002", "\uff0e", "\uff61"]


@st.composite
def url_host(draw: st.DrawFn, addresses: st.SearchStrategy[IPAddress]) -> tuple[IPAddress, str]:
    address, spelling = draw(spelled(addresses))
    if ":" in spelling:
        return address, f"[{spelling.replace('%eth0', '%25eth0').replace('%1', '%251')}]"
    if draw(st.integers(0, 3)) == 0:
        dot = draw(st.sampled_from(IDNA_DOTS))
        spelling = spelling.replace(".", dot)
    return address, spelling


def test_no_spelling_in_a_url_reaches_the_network() -> None:
    """Through the HTTP client as `http_request` uses it: a blocked address in any spelling is
    refused before any connection; an allowed one is connected to at the address that was
    checked."""
    loop = asyncio.new_event_loop()
    recorder = RecordingSockets()
    allowed = "127.0.0.0/8"
    client = guarded_client(
        EgressPolicy(parse_networks(allowed), refuse_dns), socket_factory=recorder, timeout_s=2.0
    )
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=1500,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(url_host(st.one_of(blocked_v4, blocked_v6, public_v4, public_v6)))
    def property_(case: tuple[IPAddress, str]) -> None:
        address, host = case
        SPELLINGS_TRIED["url"] += 1
        recorder.attempts.clear()
        opened = address in ipaddress.ip_network(allowed) or not listed_blocked(address)
        try:
            loop.run_until_complete(client.get(f"http://{host}:8080/x"))
        except ForbiddenDestination:
            assert not opened, host
            assert recorder.attempts == []
            outcomes["forbidden"] += 1
            return
        except InvalidRequest:
            assert recorder.attempts == []  # the URL parser itself refused the spelling
            outcomes["invalid_url"] += 1
            return
        except ConnectFailed:
            pass
        assert opened, f"{host} was let through"
        # One attempt, at the checked address in its canonical form, never the spelling.
        (connected, port), *rest = recorder.attempts
        assert not rest and port == 8080
        assert inner_ipv4(ipaddress.ip_address(connected)) == address
        outcomes["connected"] += 1

    try:
        property_()
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
    assert outcomes["forbidden"] > 300 and outcomes["connected"] > 300, outcomes


@settings(max_examples=500, deadline=None, database=None)
@given(st.lists(st.one_of(blocked_v4, blocked_v6, public_v4, public_v6), min_size=1, max_size=6))
def test_a_dns_answer_is_judged_whole(answer: list[IPAddress]) -> None:
    async def resolver(host: str, port: int) -> Sequence[IPAddress]:
        return answer

    policy = EgressPolicy(resolver=resolver)
    SPELLINGS_TRIED["dns-answer"] += 1
    if all(policy.is_allowed(a) for a in answer):
        assert asyncio.run(policy.checked_address("mixed.test", 443)) == answer[0]
    else:
        with pytest.raises(ForbiddenDestination):
            asyncio.run(policy.checked_address("mixed.test", 443))


def test_zz_report_spellings_tried() -> None:
    # Named to run last in this module: the count goes into the notes.
    print(f"\naddress spellings tried: {dict(SPELLINGS_TRIED)} = {sum(SPELLINGS_TRIED.values())}")
    assert sum(SPELLINGS_TRIED.values()) >= 4000
