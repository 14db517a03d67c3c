"""The egress guard over real loopback sockets: DNS rebinding, TLS host names, redirect hops,
schemes, a response that never ends, and the connect, read and total timeouts.

A "public" destination is played by 127.0.0.2, opened with EXECUTION_HTTP_ALLOWED_NETWORKS;
127.0.0.1 plays the private address a rebinding answer points at. Names resolve through an
injected resolver only; nothing here leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import pytest
import trustme

from actions import InvalidParams, UpstreamError, UpstreamUnavailable
from actions.builtin.http_request import ACTION, HttpRequestParams, HttpRequestSettings
from actions.egress import EgressPolicy, IPAddress, guarded_client, parse_networks
from actions.errors import ForbiddenDestination
from actions.http import ConnectFailed, HttpClient
from actions.settings import ActionSettingsSet
from tests.standins import HttpTargetStandIn
from tests.unit.support import FakeCredentials, FakeHttpClient, action_settings, make_context

PUBLIC = ipaddress.ip_address("127.0.0.2")  # plays a public address
PRIVATE = ipaddress.ip_address("127.0.0.1")  # plays what a rebinding answer points at
OPEN = parse_networks("127.0.0.2/32")


class ScriptedResolver:
    """Answers each name from a script, one answer per call (the last one repeats)."""

    def __init__(self, script: dict[str, list[list[IPAddress]]]) -> None:
        self.script = script
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.calls.append(host)
        answers = self.script.get(host)
        if not answers:
            raise OSError(f"unknown test host {host!r}")
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def twins() -> Iterator[tuple[HttpTargetStandIn, HttpTargetStandIn]]:
    """Two targets on one port: 127.0.0.2 ("public") and 127.0.0.1 ("private")."""
    for _ in range(20):
        public = HttpTargetStandIn(host=str(PUBLIC)).start()
        try:
            private = HttpTargetStandIn(host=str(PRIVATE), port=public.port).start()
        except OSError:  # that port is taken on 127.0.0.1: try another
            public.stop()
            continue
        try:
            yield public, private
        finally:
            public.stop()
            private.stop()
        return
    pytest.fail("no port free on both 127.0.0.1 and 127.0.0.2")


async def run_action(
    egress: HttpClient, settings: ActionSettingsSet | None = None, **fields: Any
) -> dict[str, Any]:
    never = FakeHttpClient()  # http_request must not use the trusted client
    ctx = make_context(
        http=never, egress_http=egress, settings=settings, credentials=FakeCredentials()
    )
    async with never:
        return dict(await ACTION.run(HttpRequestParams.model_validate(fields), ctx))


async def test_dns_rebinding_cannot_move_a_connection(
    twins: tuple[HttpTargetStandIn, HttpTargetStandIn],
) -> None:
    public, private = twins
    resolver = ScriptedResolver({"rebind.test": [[PUBLIC], [PRIVATE]]})
    policy = EgressPolicy(OPEN, resolver)
    url = f"http://rebind.test:{public.port}/echo"
    async with guarded_client(policy, timeout_s=5.0) as client:
        first = await client.get(url)
    assert first.status == 200
    # One resolution for the connection, and the connection went to what it answered.
    assert resolver.calls == ["rebind.test"]
    assert len(public.requests) == 1 and private.requests == []
    # The next connection asks again, gets the private answer, and is refused.
    async with guarded_client(policy, timeout_s=5.0) as client:
        with pytest.raises(ForbiddenDestination):
            await client.get(url)
    assert resolver.calls == ["rebind.test", "rebind.test"]
    assert private.requests == []


async def test_an_answer_mixing_public_and_private_is_refused_whole(
    twins: tuple[HttpTargetStandIn, HttpTargetStandIn],
) -> None:
    public, private = twins
    for answer in ([PUBLIC, PRIVATE], [PRIVATE, PUBLIC]):
        policy = EgressPolicy(OPEN, ScriptedResolver({"mixed.test": [answer]}))
        async with guarded_client(policy, timeout_s=5.0) as client:
            with pytest.raises(ForbiddenDestination):
                await client.get(f"http://mixed.test:{public.port}/echo")
    assert public.requests == [] and private.requests == []


async def test_every_redirect_hop_is_resolved_and_checked_again(
    twins: tuple[HttpTargetStandIn, HttpTargetStandIn],
) -> None:
    public, private = twins
    port = public.port
    resolver = ScriptedResolver({"a.test": [[PUBLIC]], "b.test": [[PRIVATE]]})
    public.fail_next(1, 302, headers={"Location": f"http://b.test:{port}/echo"})
    async with guarded_client(EgressPolicy(OPEN, resolver), timeout_s=5.0) as egress:
        with pytest.raises(ForbiddenDestination):
            await run_action(egress, url=f"http://a.test:{port}/start")
    assert resolver.calls == ["a.test", "b.test"]
    assert [r.path for r in public.requests] == ["/start"] and private.requests == []


async def test_redirects_are_capped_and_credentials_stay_with_their_origin(
    twins: tuple[HttpTargetStandIn, HttpTargetStandIn],
) -> None:
    public, _ = twins
    port = public.port
    names = [f"hop{i}.test" for i in range(8)]
    resolver = ScriptedResolver({name: [[PUBLIC]] for name in names})
    for name in names[1:]:
        public.fail_next(1, 302, headers={"Location": f"http://{name}:{port}/next"})
    settings = action_settings(HttpRequestSettings(http_max_redirects=4))
    async with guarded_client(EgressPolicy(OPEN, resolver), timeout_s=5.0) as egress:
        with pytest.raises(UpstreamError, match="more than 4 redirects"):
            await run_action(
                egress,
                settings=settings,
                url=f"http://hop0.test:{port}/start",
                headers={"Cookie": "session=1", "X-Trace": "t"},
                credential={"service": "target", "header": "X-Api-Key", "prefix": ""},
            )
    # Each hop is a new origin: a new connection, resolved and checked on its own.
    assert resolver.calls == names[:5]
    first, *later = public.requests
    assert first.headers["x-api-key"] == "token-demo-project-target"
    assert first.headers["cookie"] == "session=1"
    assert len(later) == 4
    for hop in later:
        assert "x-api-key" not in hop.headers and "cookie" not in hop.headers
        assert hop.headers["x-trace"] == "t"  # ordinary headers go on


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.2/",
        "gopher://127.0.0.2:70/_x",
        "ws://127.0.0.2/",
        "wss://127.0.0.2/",
        "dict://127.0.0.2:11211/",
        "ldap://127.0.0.2/",
        "data:text/plain,hello",
        "javascript:alert(1)",
        "unix:///var/run/docker.sock",
        "http+unix://%2Fvar%2Frun%2Fdocker.sock/",
        "//127.0.0.2/",
        "127.0.0.2/",
    ],
)
async def test_only_http_and_https_leave(url: str) -> None:
    resolver = ScriptedResolver({})
    async with guarded_client(EgressPolicy(OPEN, resolver), timeout_s=2.0) as egress:
        with pytest.raises((ForbiddenDestination, InvalidParams)):
            await run_action(egress, url=url)
    assert resolver.calls == []


@pytest.mark.parametrize("scheme", ["HTTP", "Http"])
async def test_scheme_case_does_not_matter(
    scheme: str, twins: tuple[HttpTargetStandIn, HttpTargetStandIn]
) -> None:
    public, _ = twins
    async with guarded_client(EgressPolicy(OPEN), timeout_s=5.0) as egress:
        data = await run_action(egress, url=f"{scheme}://127.0.0.2:{public.port}/echo")
    assert data["status_code"] == 200


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@contextlib.asynccontextmanager
async def tls_server(ca: trustme.CA, name: str) -> AsyncIterator[int]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, str(PUBLIC), 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def test_tls_verifies_the_host_name_not_the_address(ca: trustme.CA) -> None:
    verify = ssl.create_default_context()
    ca.configure_trust(verify)
    resolver = ScriptedResolver({"service.test": [[PUBLIC]], "other.test": [[PUBLIC]]})
    async with (
        tls_server(ca, "service.test") as port,
        guarded_client(EgressPolicy(OPEN, resolver), verify=verify, timeout_s=5.0) as client,
    ):
        response = await client.get(f"https://service.test:{port}/")
        assert response.text() == "ok"
        # Same address, another name: the certificate does not match, the call fails.
        with pytest.raises(ConnectFailed, match="certificate"):
            await client.get(f"https://other.test:{port}/")
        # The bare address is no name on the certificate either.
        with pytest.raises(ConnectFailed, match="certificate"):
            await client.get(f"https://{PUBLIC}:{port}/")


# ---------------------------------------------------------- size and timeouts

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, str(PUBLIC), 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


async def test_a_response_that_never_ends_is_cut_at_the_cap() -> None:
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        chunk = b"a" * 65_536
        with contextlib.suppress(ConnectionError):
            deadline = time.monotonic() + 20  # bounded, as every test loop is
            while time.monotonic() < deadline and sent < 500 * 2**20:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        writer.close()

    cap = 100_000
    async with (
        raw_server(endless) as port,
        guarded_client(EgressPolicy(OPEN), timeout_s=10.0) as egress,
    ):
        started = time.monotonic()
        data = await run_action(
            egress,
            action_settings(HttpRequestSettings(http_max_response_bytes=cap)),
            url=f"http://127.0.0.2:{port}/",
        )
    assert time.monotonic() - started < 5
    assert data["body_truncated"] is True and len(data["body"]) == cap
    assert sent < 20 * 2**20, "the client stopped reading soon after the cap"


async def test_connect_timeout() -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, connect hangs.
    with socket.socket() as listener:
        listener.bind((str(PUBLIC), 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((str(PUBLIC), port))
            fillers.append(filler)
        try:
            await asyncio.sleep(0.1)
            async with guarded_client(EgressPolicy(OPEN)) as egress:
                started = time.monotonic()
                with pytest.raises(UpstreamUnavailable, match=r"timed out|no complete answer"):
                    await run_action(egress, url=f"http://127.0.0.2:{port}/", timeout_s=0.5)
                assert time.monotonic() - started < 3
        finally:
            for filler in fillers:
                filler.close()


async def test_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(10)
        writer.close()

    async with raw_server(silent) as port, guarded_client(EgressPolicy(OPEN)) as egress:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await run_action(egress, url=f"http://127.0.0.2:{port}/", timeout_s=0.5)
        assert time.monotonic() - started < 3


async def test_total_timeout_bounds_a_trickling_answer() -> None:
    """Each byte comes before the read timeout, so only the total bound ends it."""

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(100):  # bounded: 10 s at most
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.1)
        writer.close()

    async with raw_server(trickle) as port, guarded_client(EgressPolicy(OPEN)) as egress:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable, match="no complete answer within 1 s"):
            await run_action(egress, url=f"http://127.0.0.2:{port}/", timeout_s=1.0)
        assert 0.9 < time.monotonic() - started < 3


# ---------------------------------------------------------- happy eyeballs (RFC 8305)


async def test_a_silent_first_address_does_not_cost_the_connect_timeout() -> None:
    """A name with two checked addresses, the first one silent (its listener's backlog is
    full, so its SYNs go unanswered): the second is tried 250 ms later and answers."""
    live = await asyncio.start_server(_answer_ok, str(PUBLIC), 0)
    port = live.sockets[0].getsockname()[1]
    silent = socket.socket()
    silent.bind(("127.0.0.3", port))
    silent.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue: later connects are never answered
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.3", port))
        fillers.append(filler)
    tried: list[str] = []

    def factory(addr_info: tuple[Any, ...]) -> socket.socket:
        tried.append(addr_info[4][0])
        return socket.socket(addr_info[0], addr_info[1], addr_info[2])

    silent_address = ipaddress.ip_address("127.0.0.3")
    resolver = ScriptedResolver({"two.test": [[silent_address, PUBLIC]]})
    policy = EgressPolicy(parse_networks("127.0.0.2/31"), resolver)
    try:
        async with guarded_client(policy, socket_factory=factory, timeout_s=5.0) as client:
            started = time.perf_counter()
            response = await client.get(f"http://two.test:{port}/")
            took = time.perf_counter() - started
    finally:
        live.close()
        silent.close()
        for filler in fillers:
            filler.close()
    assert response.text() == "ok"
    assert tried == ["127.0.0.3", str(PUBLIC)], tried
    assert took < 1.0, f"{took:.2f} s (the connect timeout is 5 s)"


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    writer.close()
