"""CONTRACT "Egress proxy", through a real forward proxy (Debian's tinyproxy, `tests.tinyproxy`)
on loopback: `CONNECT` for https with TLS verified against the destination's name (a trustme CA
behind the proxy), absolute form for http, `NO_PROXY` deciding what goes direct, the proxy's
credentials from its URL and never in a message, the egress policy judging the destination
before the proxy is asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import trustme

from actions import ForbiddenDestination
from actions.egress import EgressPolicy, IPAddress, guarded_client, parse_networks
from actions.http import ConnectFailed, Proxies
from tests.integration.conftest import Topics, engine_settings, running_engine
from tests.integration.kafka_io import (
    Outgoing,
    create_topic,
    envelopes_by_id,
    produce,
    read_topic,
)
from tests.tinyproxy import TinyProxy, find_tinyproxy

LOOPBACK = parse_networks("127.0.0.0/8")
PASSWORD = "s3cret-proxy-pw"


@pytest.fixture(scope="module")
def proxy() -> Iterator[TinyProxy]:
    binary = find_tinyproxy()
    if binary is None:
        pytest.skip("no tinyproxy on PATH, and Debian's tinyproxy-bin is not reachable")
    with TinyProxy(binary, user="engine", password=PASSWORD) as running:
        yield running


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def localhost(host: str, port: int) -> Sequence[IPAddress]:
    assert host == "localhost", host
    return [ipaddress.ip_address("127.0.0.1")]


@contextlib.asynccontextmanager
async def origin(
    ca: trustme.CA | None = None, name: str = "localhost"
) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback server answering `ok` (TLS with a certificate for `name` when `ca` is
    given); yields its port and the request heads it read."""
    heads: list[bytes] = []
    context = None
    if ca is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(context)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            while True:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1], heads
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_goes_through_a_connect_tunnel_verified_end_to_end(
    proxy: TinyProxy, ca: trustme.CA
) -> None:
    proxies = Proxies.from_environ({"HTTPS_PROXY": proxy.url})
    policy = EgressPolicy(LOOPBACK, localhost)
    async with (
        origin(ca) as (port, heads),
        guarded_client(policy, verify=trusting(ca), proxies=proxies, timeout_s=10) as client,
    ):
        view = client.for_project("p")
        first = await view.get(f"https://localhost:{port}/through/the/tunnel")
        second = await view.get(f"https://localhost:{port}/again")
    assert first.text() == second.text() == "ok"
    assert heads[0].startswith(b"GET /through/the/tunnel HTTP/1.1\r\n")
    assert b"Proxy-Authorization" not in b"".join(heads), "the credential stays with the proxy"
    log = proxy.log()
    assert f"CONNECT localhost:{port} HTTP/1.1" in log, log[-2000:]
    assert log.count(f"CONNECT localhost:{port}") == 1, "one tunnel, kept alive"


async def test_the_certificate_is_checked_against_the_destination_not_the_proxy(
    proxy: TinyProxy, ca: trustme.CA
) -> None:
    proxies = Proxies.from_environ({"https_proxy": proxy.url})
    policy = EgressPolicy(LOOPBACK, localhost)
    async with (
        origin(ca, name="other.test") as (port, heads),
        guarded_client(policy, verify=trusting(ca), proxies=proxies, timeout_s=10) as client,
    ):
        with pytest.raises(ConnectFailed, match="certificate"):
            await client.get(f"https://localhost:{port}/")
    assert heads == []


async def test_http_goes_to_the_proxy_in_absolute_form(proxy: TinyProxy) -> None:
    proxies = Proxies.from_environ({"http_proxy": proxy.url})
    async with (
        origin() as (port, heads),
        guarded_client(EgressPolicy(LOOPBACK), proxies=proxies, timeout_s=10) as client,
    ):
        response = await client.get(f"http://127.0.0.1:{port}/absolute?form=1")
    assert response.text() == "ok"
    assert heads[0].startswith(b"GET /absolute?form=1 HTTP/1.1\r\n")  # the proxy's rewrite
    assert f"GET http://127.0.0.1:{port}/absolute?form=1 HTTP/1.1" in proxy.log()


async def test_no_proxy_decides_what_goes_direct(proxy: TinyProxy) -> None:
    environ = {"HTTP_PROXY": proxy.url, "NO_PROXY": "example.test, 127.0.0.0/8"}
    async with (
        origin() as (port, heads),
        guarded_client(
            EgressPolicy(LOOPBACK), proxies=Proxies.from_environ(environ), timeout_s=10
        ) as client,
    ):
        assert (await client.get(f"http://127.0.0.1:{port}/direct")).text() == "ok"
    assert len(heads) == 1
    assert "/direct" not in proxy.log()


async def test_the_egress_policy_judges_the_destination_before_the_proxy(
    proxy: TinyProxy,
) -> None:
    proxies = Proxies.from_environ({"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url})
    async with guarded_client(EgressPolicy((), localhost), proxies=proxies) as client:
        with pytest.raises(ForbiddenDestination):
            await client.get("https://localhost:1/blocked-by-name")
        with pytest.raises(ForbiddenDestination):
            await client.get("http://127.0.0.1:1/blocked-literal")
    log = proxy.log()
    assert "blocked-literal" not in log and "localhost:1 " not in log


async def test_a_refused_proxy_credential_is_never_named(proxy: TinyProxy, ca: trustme.CA) -> None:
    wrong = proxy.url.replace(PASSWORD, "wrong-" + PASSWORD)
    proxies = Proxies.from_environ({"HTTPS_PROXY": wrong})
    policy = EgressPolicy(LOOPBACK, localhost)
    async with (
        origin(ca) as (port, heads),
        guarded_client(policy, verify=trusting(ca), proxies=proxies, timeout_s=10) as client,
    ):
        with pytest.raises(ConnectFailed) as refused:
            await client.get(f"https://localhost:{port}/")
    # tinyproxy answers a refused CONNECT credential with 401 (others with 407).
    assert "refused a tunnel" in refused.value.message and "40" in refused.value.message
    assert PASSWORD not in repr(refused.value) and PASSWORD not in repr(proxies)
    assert heads == []


async def test_the_engine_routes_http_request_through_the_proxy_its_environment_names(
    proxy: TinyProxy,
    kafka_bootstrap: str,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "")
    async with origin() as (port, heads):
        url = f"http://127.0.0.1:{port}/from/the/engine"
        body = {"request_id": "proxied-1", "action": "http_request", "project": "p"}
        await create_topic(kafka_bootstrap, topics.requests, partitions=1)
        await produce(
            kafka_bootstrap,
            topics.requests,
            [Outgoing.request({**body, "params": {"url": url}}, key="k")],
        )
        settings = engine_settings(kafka_bootstrap, topics, http_allowed_networks="127.0.0.0/8")
        async with running_engine(settings):
            results = await read_topic(kafka_bootstrap, topics.results, expect=1)
    envelope = envelopes_by_id(results)["proxied-1"][0]
    assert envelope["status"] == "success", envelope
    assert heads and heads[0].startswith(b"GET /from/the/engine HTTP/1.1\r\n")
    assert f"GET {url} HTTP/1.1" in proxy.log()
    assert PASSWORD not in json.dumps(envelope)
