"""actions/http: the HttpClient every action calls through, over real loopback sockets.

Decompression within the cap (gzip bombs), one content-encoding layer unless allowed, headers
refused before anything is sent, failures that say whether the request went out, connection
reuse, and the guard's checks on IP literals, which aiohttp never hands to a resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ipaddress
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from actions import UpstreamError
from actions.builtin.http_request import ACTION, HttpRequestParams, HttpRequestSettings
from actions.egress import EgressPolicy, IPAddress, guarded_client, parse_networks
from actions.errors import ForbiddenDestination
from actions.http import (
    BadResponse,
    ConnectFailed,
    HttpClient,
    HttpTimeout,
    InvalidRequest,
)
from actions.settings import ActionSettingsSet
from tests.unit.support import (
    FakeCredentials,
    FakeHttpClient,
    action_settings,
    closed_port,
    make_context,
)

LOOPBACK = parse_networks("127.0.0.0/8")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[int, list[int]]]:
    """A loopback server; yields its port and a list that counts accepted connections."""
    accepted: list[int] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        with contextlib.suppress(ConnectionError):
            await handler(reader, writer)
        writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def answer_with(body: bytes, headers: str = "") -> Handler:
    """Answers every request on a connection (keep-alive) with `body` and `headers`."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
            writer.write(head.encode() + body)
            await writer.drain()

    return handler


async def run_action(egress: HttpClient, settings: ActionSettingsSet, url: str) -> dict[str, Any]:
    ctx = make_context(
        http=FakeHttpClient(), egress_http=egress, settings=settings, credentials=FakeCredentials()
    )
    return dict(await ACTION.run(HttpRequestParams.model_validate({"url": url}), ctx))


# ------------------------------------------------------------------- gzip bombs

BOMB_BYTES = 64 * 2**20  # decodes to 64 MiB of zeros
CAP = 100_000


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip.compress(bytes(BOMB_BYTES), compresslevel=9)


async def peak_while(call: Awaitable[Any]) -> tuple[Any, int]:
    """`call`'s result (or exception) and the peak of memory Python allocated during it."""
    tracemalloc.start()
    try:
        try:
            result: Any = await call
        except Exception as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_gzip_bomb_is_decoded_only_up_to_the_cap(bomb: bytes) -> None:
    assert len(bomb) < 100_000  # a small answer...
    async with (
        raw_server(answer_with(bomb, "Content-Encoding: gzip\r\n")) as (port, _),
        guarded_client(EgressPolicy(LOOPBACK)) as egress,
    ):
        data, peak = await peak_while(
            run_action(
                egress,
                action_settings(HttpRequestSettings(http_max_response_bytes=CAP)),
                f"http://127.0.0.1:{port}/",
            )
        )
    assert isinstance(data, dict), data
    assert data["body_truncated"] is True and len(data["body"]) == CAP
    # ...that would inflate to 64 MiB: memory stays about the cap plus a read chunk.
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


async def test_two_content_encoding_layers_are_refused_by_default(bomb: bytes) -> None:
    double = gzip.compress(bomb)
    async with (
        raw_server(answer_with(double, "Content-Encoding: gzip, gzip\r\n")) as (port, _),
        guarded_client(EgressPolicy(LOOPBACK)) as egress,
    ):
        error, peak = await peak_while(
            run_action(egress, action_settings(), f"http://127.0.0.1:{port}/")
        )
    assert isinstance(error, UpstreamError), error
    assert error.code.value == "upstream_error" and "content-encoding layers" in error.message
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


async def test_more_layers_when_allowed_are_decoded_within_the_cap(bomb: bytes) -> None:
    small = gzip.compress(gzip.compress(b'{"ok": true}'))
    async with (
        raw_server(
            answer_with(small, "Content-Encoding: gzip, gzip\r\nContent-Type: application/json\r\n")
        ) as (port, _),
        guarded_client(EgressPolicy(LOOPBACK)) as egress,
    ):
        config = action_settings(
            HttpRequestSettings(http_max_content_encodings=2, http_max_response_bytes=CAP)
        )
        data = await run_action(egress, config, f"http://127.0.0.1:{port}/")
        assert data["body"] == {"ok": True}
    async with (
        raw_server(answer_with(gzip.compress(bomb), "Content-Encoding: gzip, gzip\r\n")) as (
            port,
            _,
        ),
        guarded_client(EgressPolicy(LOOPBACK)) as egress,
    ):
        data, peak = await peak_while(run_action(egress, config, f"http://127.0.0.1:{port}/"))
    assert isinstance(data, dict), data
    assert data["body_truncated"] is True and len(data["body"]) == CAP
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


async def test_bytes_after_the_end_of_the_compressed_stream_are_not_kept() -> None:
    # A tiny gzip member, then 32 MiB more that zlib would pile up as "unused data".
    member, junk, chunks = gzip.compress(b"hello"), b"x" * 65_536, 512

    async def trailing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        length = len(member) + len(junk) * chunks
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Encoding: gzip\r\n\r\n"
        writer.write(head.encode() + member)
        for _ in range(chunks):  # streamed, so the server holds one chunk at a time
            writer.write(junk)
            await writer.drain()

    async with raw_server(trailing) as (port, _), HttpClient() as client:
        response, peak = await peak_while(client.get(f"http://127.0.0.1:{port}/"))
    assert response.body == b"hello" and not response.truncated
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("deflate", zlib.compress(b"hello")),
        ("deflate", zlib.compress(b"hello")[2:-4]),  # raw deflate, as some servers send it
        ("gzip", gzip.compress(b"hello")),
        ("identity", b"hello"),
    ],
)
async def test_the_offered_encodings_are_decoded(encoding: str, body: bytes) -> None:
    async with (
        raw_server(answer_with(body, f"Content-Encoding: {encoding}\r\n")) as (port, _),
        HttpClient() as client,
    ):
        response = await client.get(f"http://127.0.0.1:{port}/")
    assert response.body == b"hello" and not response.truncated


@pytest.mark.parametrize(
    ("encoding", "body"), [("br", b"\x0b\x02\x80hello\x03"), ("gzip", b"not gzip at all")]
)
async def test_an_encoding_it_cannot_decode_is_a_bad_response(encoding: str, body: bytes) -> None:
    async with (
        raw_server(answer_with(body, f"Content-Encoding: {encoding}\r\n")) as (port, _),
        HttpClient() as client,
    ):
        with pytest.raises(BadResponse) as info:
            await client.get(f"http://127.0.0.1:{port}/")
    assert info.value.sent is True


async def test_only_gzip_and_deflate_are_offered() -> None:
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    async with raw_server(record) as (port, _), HttpClient() as client:
        await client.get(f"http://127.0.0.1:{port}/")
    assert b"\r\nAccept-Encoding: gzip, deflate\r\n" in heads[0]


async def test_no_content_type_is_invented_with_or_without_a_body() -> None:
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            heads.append(head)
            length = next(
                (
                    int(line[15:])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with raw_server(record) as (port, _), HttpClient() as client:
        await client.get(f"http://127.0.0.1:{port}/")
        await client.post(f"http://127.0.0.1:{port}/", content=b"raw bytes")
        await client.post(
            f"http://127.0.0.1:{port}/", content="a", headers={"Content-Type": "text/x-mine"}
        )
    assert len(heads) == 3
    assert b"content-type" not in heads[0].lower()
    assert b"content-type" not in heads[1].lower()
    assert b"\r\nContent-Type: text/x-mine\r\n" in heads[2]


# ------------------------------------------------- what is sent, and when it is not


async def test_a_header_with_a_line_break_is_never_sent() -> None:
    async with raw_server(answer_with(b"ok")) as (port, accepted), HttpClient() as client:
        for headers in ({"X-A": "1\r\nX-Injected: 1"}, {"X-A\r\nX-Injected": "1"}):
            with pytest.raises(InvalidRequest) as info:
                await client.get(f"http://127.0.0.1:{port}/", headers=headers)
            assert info.value.sent is False and "X-Injected" not in info.value.message
    assert accepted == [], "no connection was even opened"


async def test_a_refused_connection_was_not_sent() -> None:
    async with HttpClient() as client:
        with pytest.raises(ConnectFailed) as info:
            await client.get(f"http://127.0.0.1:{closed_port()}/")
    assert info.value.sent is False


async def test_a_read_timeout_after_sending_was_sent() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    async with raw_server(silent) as (port, _), HttpClient() as client:
        started = time.monotonic()
        with pytest.raises(HttpTimeout) as info:
            await client.post(f"http://127.0.0.1:{port}/", json={"a": 1}, timeout_s=0.3)
    assert info.value.sent is True
    assert time.monotonic() - started < 2


async def test_a_connect_timeout_was_not_sent() -> None:
    # A listener whose accept queue is full: the kernel drops further SYNs, connect hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        try:
            await asyncio.sleep(0.1)
            async with HttpClient(connect_timeout_s=0.3) as client:
                with pytest.raises(HttpTimeout) as info:
                    await client.get(f"http://127.0.0.1:{port}/", timeout_s=2)
            assert info.value.sent is False
        finally:
            for filler in fillers:
                filler.close()


async def test_connections_are_reused() -> None:
    async with raw_server(answer_with(b"ok")) as (port, accepted), HttpClient() as client:
        for _ in range(20):
            assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"ok"
        assert accepted == [1] and client.connections_opened == 1
        # 30 at once open at most 30; the next 30 at once open none.
        await asyncio.gather(*(client.get(f"http://127.0.0.1:{port}/") for _ in range(30)))
        opened = client.connections_opened
        assert opened <= 30
        await asyncio.gather(*(client.get(f"http://127.0.0.1:{port}/") for _ in range(30)))
        assert client.connections_opened == opened == len(accepted)


# ------------------------------------------------------------ the guard's literals


class RecordingResolver:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.calls.append(host)
        return [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize(
    "host",
    [
        "169.254.169.254",
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "2852039166",
        "0xa9.0xfe.0xa9.0xfe",
        "169.254.169.254.",
        "[fd00:ec2::254]",
        "10.0.0.1",
    ],
)
async def test_an_ip_literal_is_checked_before_any_connection(host: str) -> None:
    resolver = RecordingResolver()
    attempts: list[Any] = []

    def no_socket(addr_info: tuple[Any, ...]) -> socket.socket:
        attempts.append(addr_info)
        raise ConnectionRefusedError("never")

    policy = EgressPolicy(LOOPBACK, resolver)
    async with guarded_client(policy, socket_factory=no_socket) as client:
        with pytest.raises(ForbiddenDestination):
            await client.get(f"http://{host}:8080/latest/meta-data/")
    assert resolver.calls == [] and attempts == []


async def test_an_allowed_literal_is_connected_at_its_canonical_address() -> None:
    async with raw_server(answer_with(b"ok")) as (port, accepted):
        policy = EgressPolicy(LOOPBACK, RecordingResolver())
        async with guarded_client(policy) as client:
            response = await client.get(f"http://127.1:{port}/")
    assert response.body == b"ok" and accepted == [1]
    assert response.url.startswith("http://127.0.0.1:")
