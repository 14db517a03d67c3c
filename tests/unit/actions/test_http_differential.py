"""Differential test of `actions.http.wire`: every well-formed answer (any status, fields, body,
framing, split into reads anywhere) reads the same as h11 (a second maintained HTTP/1.1
implementation) reads it: the same status, the same fields, the same body, the same verdict on
keeping the connection."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actions.http import wire

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_RESERVED = {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}

names = st.text(_TCHAR, min_size=1, max_size=12).filter(lambda n: n.lower() not in _RESERVED)
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20).map(
    lambda v: v.strip()
)


@st.composite
def answers(draw: Any) -> tuple[bytes, int, list[tuple[str, str]], bytes, bool, str]:
    status = draw(st.sampled_from([200, 201, 202, 204, 301, 304, 400, 404, 500, 503]))
    fields = draw(st.lists(st.tuples(names, values), max_size=8))
    body = b"" if status in (204, 304) else draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    close = draw(st.booleans()) or framing == "close"
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    head = [f"HTTP/1.1 {status} Whatever"]
    head += [f"{n}: {v}" for n, v in fields]
    if close:
        head.append("Connection: close")
    payload = body
    if status not in (204, 304) and method != "HEAD":
        if framing == "length":
            head.append(f"Content-Length: {len(body)}")
        elif framing == "chunked":
            head.append("Transfer-Encoding: chunked")
            cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
            pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    elif method == "HEAD" and framing == "length":
        head.append(f"Content-Length: {len(body)}")
        payload = b""
    else:
        payload = b""
    if method == "HEAD":
        body = b""
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    return raw, status, fields, body, close, method


def _h11_reads(raw: bytes, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("Host", "h")]))
    client.send(h11.EndOfMessage())
    client.receive_data(raw)
    client.receive_data(b"")  # the connection's end (frames a body read to the close)
    status, fields, body = 0, [], b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            fields = [(n.decode(), v.decode()) for n, v in event.headers.raw_items()]
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return status, fields, body


class _Transport:
    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


async def _wire_reads(
    raw: bytes, cuts: list[int], method: str
) -> tuple[int, list[tuple[str, str]], bytes, bool]:
    connection = wire.Connection(("http", "h", 80))
    connection.connection_made(_Transport())  # type: ignore[arg-type]
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]

    async def deliver() -> None:
        for piece in pieces:
            await asyncio.sleep(0)
            if piece:
                connection.data_received(piece)
        await asyncio.sleep(0)
        connection.eof_received()

    feeding = asyncio.create_task(deliver())
    answer = await wire.read_answer(connection, method)
    body = b""
    while chunk := await answer.readany():
        body += chunk
    await feeding
    fields = [(n, v) for n, v in answer.headers.items()]
    return answer.status, fields, body, answer.reusable


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers(), st.data())
def test_wire_reads_what_h11_reads(answer: Any, data: st.DataObject) -> None:
    raw, status, fields, body, close, method = answer
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
    ours = asyncio.run(_wire_reads(raw, cuts, method))
    theirs = _h11_reads(raw, method)
    assert ours[0] == theirs[0] == status
    assert [(n.lower(), v) for n, v in ours[1]] == [(n.lower(), v) for n, v in theirs[1]]
    assert [(n, v) for n, v in ours[1] if n.lower() not in _RESERVED] == fields
    assert ours[2] == theirs[2] == body
    if close:  # h11 sees every connection end here; ours must not keep one told to close
        assert not ours[3]
