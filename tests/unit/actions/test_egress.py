"""actions/egress.py: the egress policy of `http_request` (loopback only, injected resolver)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence

import pytest

from actions import UpstreamUnavailable
from actions.egress import EgressPolicy, IPAddress, embedded_ipv4, guarded_client, parse_networks
from actions.errors import ForbiddenDestination
from tests.standins import HttpTargetStandIn
from tests.unit.support import loopback_resolver


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


BLOCKED = [
    # IPv4
    "0.0.0.0",
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "100.64.0.1",
    "100.127.255.254",
    "192.0.2.1",
    "198.18.0.1",
    # IPv6
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",  # v4-mapped
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::127.0.0.1",  # v4-compatible
    "::169.254.169.254",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:db8::1",
    "fec0::1",  # deprecated site-local (RFC 3879): IANA "Reserved by IETF"
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2001:4860:4860::8888"]


@pytest.mark.parametrize("address", BLOCKED)
def test_default_policy_blocks(address: str) -> None:
    assert EgressPolicy().is_allowed(ip(address)) is False


@pytest.mark.parametrize("address", ALLOWED)
def test_default_policy_allows_public(address: str) -> None:
    assert EgressPolicy().is_allowed(ip(address)) is True


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::127.0.0.1", "127.0.0.1"),
        ("2002:7f00:1::", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),
        ("::1", None),
        ("::", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", None),
    ],
)
def test_embedded_ipv4(address: str, inner: str | None) -> None:
    found = embedded_ipv4(ip(address))
    assert (None if found is None else str(found)) == inner


def test_allowed_networks_open_loopback_only() -> None:
    policy = EgressPolicy(parse_networks("127.0.0.0/8"))
    assert policy.is_allowed(ip("127.0.0.1"))
    assert policy.is_allowed(ip("127.1.2.3"))
    # ... also spelled inside IPv6
    assert policy.is_allowed(ip("::ffff:127.0.0.1"))
    assert not policy.is_allowed(ip("10.0.0.1"))
    assert not policy.is_allowed(ip("169.254.169.254"))
    assert not policy.is_allowed(ip("::1"))
    assert policy.is_allowed(ip("93.184.216.34"))


def test_parse_networks() -> None:
    assert parse_networks("127.0.0.0/8, ::1/128") == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert parse_networks("") == ()
    assert parse_networks(" , ") == ()
    assert parse_networks(["10.0.0.0/8"]) == (ipaddress.ip_network("10.0.0.0/8"),)
    # host bits are tolerated (strict=False)
    assert parse_networks("10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize("bad", ["not-a-net", "10.0.0.0/33", "127.0.0.0/8,999.1.1.1", "::1/129"])
def test_parse_networks_names_the_bad_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="not a CIDR network") as info:
        parse_networks(bad)
    assert repr(bad.rsplit(",", maxsplit=1)[-1].strip()) in str(info.value)


async def test_checked_address_returns_an_allowed_answer() -> None:
    policy = EgressPolicy(resolver=loopback_resolver({"good.test": [ip("93.184.216.34")]}))
    assert await policy.checked_address("good.test", 443) == ip("93.184.216.34")


async def test_checked_address_refuses_a_mixed_answer_whole() -> None:
    resolver = loopback_resolver({"mixed.test": [ip("93.184.216.34"), ip("169.254.169.254")]})
    policy = EgressPolicy(resolver=resolver)
    with pytest.raises(ForbiddenDestination) as info:
        await policy.checked_address("mixed.test", 80)
    assert info.value.details == {"host": "mixed.test", "address": "169.254.169.254"}
    assert "EXECUTION_HTTP_ALLOWED_NETWORKS" in str(info.value)  # the setting that allows it


async def test_a_refused_literal_address_names_the_setting_that_allows_it() -> None:
    with pytest.raises(ForbiddenDestination, match="with EXECUTION_HTTP_ALLOWED_NETWORKS"):
        await EgressPolicy(resolver=loopback_resolver({})).checked_address("127.0.0.1", 80)


async def test_checked_address_empty_answer_is_unavailable() -> None:
    policy = EgressPolicy(resolver=loopback_resolver({"empty.test": []}))
    with pytest.raises(UpstreamUnavailable, match="no address"):
        await policy.checked_address("empty.test", 80)


async def test_checked_address_resolver_error_is_unavailable() -> None:
    policy = EgressPolicy(resolver=loopback_resolver({}))
    with pytest.raises(UpstreamUnavailable, match="cannot resolve"):
        await policy.checked_address("nowhere.test", 80)


async def test_checked_address_resolver_unicode_error_is_unavailable() -> None:
    async def resolver(host: str, port: int) -> Sequence[IPAddress]:
        raise UnicodeError("label too long")

    with pytest.raises(UpstreamUnavailable):
        await EgressPolicy(resolver=resolver).checked_address("x" * 300, 80)


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


async def test_guarded_client_connects_to_the_checked_address(target: HttpTargetStandIn) -> None:
    target.clear()
    calls: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> Sequence[IPAddress]:
        calls.append((host, port))
        return [ip("127.0.0.1")] if host == "service.test" else []

    policy = EgressPolicy(parse_networks("127.0.0.0/8"), resolver)
    async with guarded_client(policy, timeout_s=5.0) as client:
        response = await client.get(f"http://service.test:{target.port}/echo")
    assert response.status == 200
    assert response.json()["headers"]["host"] == f"service.test:{target.port}"
    assert calls == [("service.test", target.port)]
    assert len(target.requests) == 1


async def test_guarded_client_refuses_without_the_allowed_network(
    target: HttpTargetStandIn,
) -> None:
    target.clear()
    policy = EgressPolicy(resolver=loopback_resolver({"service.test": [ip("127.0.0.1")]}))
    async with guarded_client(policy, timeout_s=5.0) as client:
        with pytest.raises(ForbiddenDestination):
            await client.get(f"http://service.test:{target.port}/echo")
    assert target.requests == []


async def test_guarded_client_does_not_follow_redirects(target: HttpTargetStandIn) -> None:
    target.clear()
    policy = EgressPolicy(parse_networks("127.0.0.0/8"))
    async with guarded_client(policy, timeout_s=5.0) as client:
        response = await client.get(f"{target.base_url}/redirect", params={"to": "/echo"})
    assert response.status == 302
    assert [r.path for r in target.requests] == ["/redirect"]


async def test_guarded_client_ignores_proxy_environment(
    target: HttpTargetStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would connect to the proxy's address, not the checked one.
    target.clear()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://10.0.0.1:3128")
    async with guarded_client(EgressPolicy(parse_networks("127.0.0.0/8")), timeout_s=5) as client:
        response = await client.get(f"{target.base_url}/echo")
    assert response.status == 200
    assert [r.path for r in target.requests] == ["/echo"]  # straight to it, no proxy


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a00:1"])
def test_nat64_addresses_are_judged_by_the_ipv4_they_reach(address: str) -> None:
    assert not EgressPolicy().is_allowed(ip(address))


def test_nat64_to_a_public_ipv4_is_allowed() -> None:
    assert EgressPolicy().is_allowed(ip("64:ff9b::5db8:d822"))  # 93.184.216.34


def test_check_host_remembers_allowed_verdicts_only_and_boundedly() -> None:
    from actions import egress  # noqa: PLC0415

    policy = EgressPolicy(parse_networks("127.0.0.0/8"))
    assert policy.check_host("127.1") == "127.0.0.1"
    assert policy.check_host("127.1") == "127.0.0.1"  # remembered
    assert policy.check_host("api.test") is None
    for _ in range(2):  # a refusal is judged again each time, never remembered
        with pytest.raises(ForbiddenDestination):
            policy.check_host("10.0.0.1")
    assert "10.0.0.1" not in policy._verdicts
    for i in range(egress._VERDICTS_KEPT + 10):
        policy.check_host(f"127.0.{i // 256}.{i % 256}")
    assert len(policy._verdicts) <= egress._VERDICTS_KEPT
    # Another policy's verdicts are its own: the same literal is refused there.
    with pytest.raises(ForbiddenDestination):
        EgressPolicy().check_host("127.1")
