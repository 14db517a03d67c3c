"""actions/http/proxy.py: which calls a forward proxy carries (CONTRACT "Egress proxy"); the
calls themselves go through a real tinyproxy in tests/integration/test_egress_proxy.py."""

from __future__ import annotations

import base64

import pytest

from actions.http import Proxies, Proxy


def test_either_case_is_read_the_lower_case_first() -> None:
    proxies = Proxies.from_environ(
        {"HTTPS_PROXY": "http://upper:3128", "https_proxy": "http://lower:3128"}
    )
    assert proxies.https == Proxy("lower", 3128)
    assert Proxies.from_environ({"HTTP_PROXY": "proxy.internal:8080"}).http == Proxy(
        "proxy.internal", 8080
    )
    assert not Proxies.from_environ({})
    assert Proxies.from_environ({}).for_origin("https", "slack.com") is None


def test_each_scheme_has_its_own_proxy() -> None:
    proxies = Proxies.from_environ({"HTTPS_PROXY": "http://p:1"})
    assert proxies.for_origin("https", "slack.com") == Proxy("p", 1)
    assert proxies.for_origin("http", "slack.com") is None


def test_credentials_come_from_the_userinfo_and_are_never_shown() -> None:
    proxy = Proxy.parse("http://us%40er:p%3Ass@proxy:3128")
    assert proxy.authorization == "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    assert "p:ss" not in repr(proxy) and "p%3Ass" not in repr(proxy)
    assert "cDpzcw" not in repr(Proxies(https=proxy))


@pytest.mark.parametrize("url", ["https://proxy:443", "socks5://proxy:1080", "http://"])
def test_a_proxy_url_the_client_cannot_use_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="proxy URL"):
        Proxy.parse(url)


@pytest.mark.parametrize(
    ("host", "bypassed"),
    [
        ("internal.test", True),
        ("api.internal.test", True),  # a name covers its subdomains
        ("xinternal.test", False),
        ("corp.example", True),  # `.corp.example` covers the domain itself too
        ("a.corp.example", True),
        ("10.1.2.3", True),  # CIDR
        ("10.2.0.1", False),
        ("192.0.2.7", True),  # a single address
        ("[fd00::1]", True),
        ("127.0.0.1", False),  # loopback is not special: only NO_PROXY decides
        ("localhost", False),
        ("slack.com", False),
        ("INTERNAL.TEST.", True),
    ],
)
def test_no_proxy_names_hosts_domains_and_networks(host: str, bypassed: bool) -> None:
    proxies = Proxies.from_environ(
        {
            "HTTPS_PROXY": "http://p:1",
            "NO_PROXY": "internal.test, .corp.example,10.1.0.0/16 ,192.0.2.7,fd00::/8",
        }
    )
    assert (proxies.for_origin("https", host) is None) is bypassed


def test_a_star_bypasses_every_host() -> None:
    proxies = Proxies.from_environ({"HTTPS_PROXY": "http://p:1", "no_proxy": "*"})
    assert proxies.for_origin("https", "slack.com") is None
