"""actions/http/wire.py through HttpClient: framing, strict heads, stale connections.

Each test speaks raw HTTP/1.1 from a loopback server, so what the client sends and how it
reads every kind of answer is seen byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc

import pytest

from actions.http import BadResponse, ConnectionLost, HttpClient, InvalidRequest, wire
from tests.unit.actions.test_http_client import Handler, raw_server


def scripted(*answers: bytes, then_close: bool = False) -> tuple[Handler, list[bytes]]:
    """Answers the n-th request on each connection with `answers[n]`; records request heads."""
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            heads.append(head)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line[15:])
            if length:
                heads.append(await reader.readexactly(length))
            writer.write(answer)
            await writer.drain()
        if then_close:
            writer.close()
            return
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")

    return handler, heads


async def test_a_chunked_answer_is_decoded_with_extensions_and_trailers() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    handler, _ = scripted(answer, answer)
    async with raw_server(handler) as (port, accepted), HttpClient() as client:
        for _ in range(2):
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.body == b"hello world" and not response.truncated
    assert accepted == [1], "a chunked answer read to its end leaves the connection reusable"


async def test_transfer_encoding_beside_a_length_frames_the_answer_and_ends_the_connection() -> (
    None
):
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    handler, _ = scripted(answer, answer)
    async with raw_server(handler) as (port, accepted), HttpClient() as client:
        for _ in range(2):
            assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"hello"
    assert accepted == [1, 1], "an answer that may be split is not followed on its connection"


async def test_an_answer_without_a_length_is_read_to_the_close_and_not_reused() -> None:
    handler, _ = scripted(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", then_close=True)
    async with raw_server(handler) as (port, accepted), HttpClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"until the end"
        assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"until the end"
    assert accepted == [1, 1]


async def test_connection_close_and_http_1_0_are_not_kept_alive() -> None:
    for answer in (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ):
        handler, _ = scripted(answer, answer)
        async with raw_server(handler) as (port, accepted), HttpClient() as client:
            for _ in range(2):
                assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"ok"
        assert accepted == [1, 1]


async def test_interim_answers_are_skipped_and_head_and_204_have_no_body() -> None:
    handler, _ = scripted(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",  # HEAD: the length of a GET
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast",
    )
    async with raw_server(handler) as (port, accepted), HttpClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"ok"
        head = await client.request("HEAD", f"http://127.0.0.1:{port}/")
        assert head.status == 200 and head.body == b""
        assert (await client.get(f"http://127.0.0.1:{port}/")).status == 204
        assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"last"
    assert accepted == [1]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (wire.MAX_HEAD_BYTES + 10) + b"\r\n\r\n",
    ],
)
async def test_what_is_not_a_sound_http_1_answer_is_a_bad_response(answer: bytes) -> None:
    handler, _ = scripted(answer)
    async with raw_server(handler) as (port, _), HttpClient() as client:
        with pytest.raises(BadResponse) as info:
            await client.get(f"http://127.0.0.1:{port}/")
    assert info.value.sent is True


async def test_an_answer_cut_short_is_a_lost_connection() -> None:
    handler, _ = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", then_close=True)
    async with raw_server(handler) as (port, _), HttpClient() as client:
        with pytest.raises(ConnectionLost) as info:
            await client.get(f"http://127.0.0.1:{port}/")
    assert info.value.sent is True


async def test_a_stale_kept_alive_connection_resends_only_an_idempotent_request() -> None:
    # Each connection answers one request, then reads the next and drops the connection
    # without a word: what a server does whose keep-alive time ran out as the request came.
    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")

    async with raw_server(one_answer) as (port, accepted), HttpClient() as client:
        url = f"http://127.0.0.1:{port}/"
        assert (await client.get(url)).body == b"ok"
        assert accepted == [1]
        # Reuses the kept-alive connection, which is dropped: sent once more, on a new one.
        assert (await client.get(url)).body == b"ok"
        assert accepted == [1, 1]
        # A POST on a connection dropped so is not sent again: its effect may have happened.
        with pytest.raises(ConnectionLost) as info:
            await client.post(url, content=b"x")
        assert info.value.sent is True
        assert accepted == [1, 1]


async def test_a_body_over_the_cap_closes_the_connection_and_memory_stays_bounded() -> None:
    chunk = b"x" * 65536

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            for _ in range(16384):
                writer.write(chunk)
                await writer.drain()

    async with raw_server(endless) as (port, _), HttpClient() as client:
        tracemalloc.start()
        try:
            response = await client.get(f"http://127.0.0.1:{port}/", max_body_bytes=4096)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert response.truncated and len(response.body) == 4096
        assert peak < 8 * 1024 * 1024, peak
        assert client._pool.open == 0  # not put back: the rest of the body is unread


async def test_the_request_head_as_sent() -> None:
    handler, heads = scripted(*[b"HTTP/1.1 204 No Content\r\n\r\n"] * 4)
    async with raw_server(handler) as (port, _), HttpClient() as client:
        await client.post(f"http://127.0.0.1:{port}/p?q=1#frag")
        await client.get(
            f"http://user:pa%20ss@127.0.0.1:{port}/x",
            headers={"Content-Length": "99", "X-Name": "José"},
        )
        await client.request("PUT", f"http://127.0.0.1:{port}/", content=b"body")
    post, get, put, put_body = heads[:4]
    assert post.startswith(b"POST /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
    assert b"\r\nContent-Length: 0\r\n" in post  # a POST without a body says so
    assert b"#frag" not in post
    assert b"\r\nAuthorization: Basic dXNlcjpwYSBzcw==\r\n" in get  # user:pa ss
    assert b"user" not in get.split(b"\r\n")[0]
    assert b"Content-Length" not in get  # the caller's wrong length is not sent
    assert "X-Name: José".encode() in get  # non-ASCII values as their UTF-8 bytes
    assert b"\r\nContent-Length: 4\r\n" in put and put_body == b"body"


async def test_a_request_line_that_could_split_is_never_sent() -> None:
    from yarl import URL  # noqa: PLC0415

    handler, heads = scripted(b"HTTP/1.1 204 No Content\r\n\r\n")
    async with raw_server(handler) as (port, accepted), HttpClient() as client:
        for url in (
            URL(f"http://127.0.0.1:{port}/a\r\nX-Injected: 1", encoded=True),
            URL(f"http://127.0.0.1:{port}/a b", encoded=True),
        ):
            with pytest.raises(InvalidRequest) as info:
                await client.get(url)
            assert info.value.sent is False
        with pytest.raises(InvalidRequest):
            await client.request("GET /x HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET", url)
    assert accepted == [] and heads == []
