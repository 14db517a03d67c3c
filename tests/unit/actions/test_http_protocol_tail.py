"""The protocol's long tail (issue 22): trailers bounded like a head, HTTP/1.0 with
Transfer-Encoding closes, status codes below 100 refused, local-use NAT64 blocked."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from actions import ForbiddenDestination
from actions.egress import EgressPolicy, parse_networks
from actions.http import BadResponse, ConnectionLost, HttpClient
from tests.unit.actions.test_http_client import raw_server
from tests.unit.actions.test_http_wire import scripted


async def test_a_trailer_section_larger_than_a_head_is_refused() -> None:
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 1000) for i in range(8192))  # 8 MB
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
    handler, _ = scripted(answer + trailers + b"\r\n")
    async with raw_server(handler) as (port, _), HttpClient(timeout_s=5) as client:
        with pytest.raises(BadResponse, match="trailer"):
            await client.get(f"http://127.0.0.1:{port}/")


async def test_a_small_trailer_section_is_read_past() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"
    handler, _ = scripted(answer, answer)
    async with raw_server(handler) as (port, accepted), HttpClient() as client:
        for _ in range(2):
            assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"ok"
    assert len(accepted) == 1


async def test_an_http_1_0_answer_framed_with_transfer_encoding_ends_its_connection() -> None:
    answer = (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    handler, _ = scripted(answer, answer)
    async with raw_server(handler) as (port, accepted), HttpClient() as client:
        for _ in range(2):
            assert (await client.get(f"http://127.0.0.1:{port}/")).body == b"ok"
    assert len(accepted) == 2, "not used again"


@pytest.mark.parametrize("status", [b"000", b"099", b"042"])
async def test_a_status_code_below_100_is_refused(status: bytes) -> None:
    handler, _ = scripted(b"HTTP/1.1 %s Odd\r\nContent-Length: 0\r\n\r\n" % status)
    async with raw_server(handler) as (port, _), HttpClient() as client:
        with pytest.raises(BadResponse, match="below 100"):
            await client.get(f"http://127.0.0.1:{port}/")


# 169.254.169.254 in 64:ff9b:1::/48 as RFC 6052 places it for a /48 prefix (bits 48-63 and
# 72-95), with 8.8.8.8 in the last 32 bits (where the well-known /96 prefix would put it).
_METADATA_VIA_LOCAL_NAT64 = "64:ff9b:1:a9fe:a9:fe00:808:808"


@pytest.mark.parametrize("address", [_METADATA_VIA_LOCAL_NAT64, "64:ff9b:1::808:808"])
def test_local_use_nat64_is_blocked_unless_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not EgressPolicy().is_allowed(ip)
    with pytest.raises(ForbiddenDestination):
        EgressPolicy().check_host(f"[{address}]")
    assert EgressPolicy(parse_networks("64:ff9b:1::/48")).is_allowed(ip)


async def test_bytes_after_a_complete_answer_leave_the_answer_but_not_the_connection() -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsmuggled!"
    handler, _ = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + smuggled)
    async with raw_server(handler) as (port, accepted), HttpClient() as client:
        url = f"http://127.0.0.1:{port}/"
        assert (await client.get(url)).body == b"ok"
        assert (await client.get(url)).body == b"ok"  # on a new connection: never "smuggled!"
        head = await client.request("HEAD", url)  # its head alone; the rest stays unread
        assert head.status == 200 and head.body == b""
    assert len(accepted) == 3


async def test_a_head_cut_short_on_a_kept_alive_connection_is_not_sent_again() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 O")  # some of an answer, then the end
        await writer.drain()

    async with raw_server(half) as (port, accepted), HttpClient() as client:
        url = f"http://127.0.0.1:{port}/"
        assert (await client.get(url)).body == b"ok"
        with pytest.raises(ConnectionLost):
            await client.get(url)
    assert len(accepted) == 1, "an answer had begun: not sent again"
