"""A loopback HTTP/1.1 target that answers after a delay: `python -m bench.http_target PORT`.

`GET /d/<ms>/<key>/<seq>` answers `{"ok": true}` after `<ms>` milliseconds and records the
arrival of (key, seq); `GET /arrivals` returns them in arrival order, for the order check;
`GET /connections` says how many TCP connections were accepted (connection reuse).

An asyncio `Protocol` (keep-alive, no framework, no stream reader, one timer per delayed
answer): it shares the machine's cores with the engine it measures, so it must cost far less
CPU per call than the engine (about 40 us here, against ~110 us for the stream-based target it
replaced). Answers on one connection go out in the order their requests came (HTTP/1.1).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque

_OK = b'{"ok":true}'
_HEAD_END = b"\r\n\r\n"


def _response(body: bytes, status: str = "200 OK") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_OK_RESPONSE = _response(_OK)
_NOT_FOUND = _response(b'{"error":"not found"}', "404 Not Found")


class Target:
    def __init__(self) -> None:
        # (key, seq, wall time of arrival)
        self.arrivals: list[tuple[str, int, float]] = []
        self.connections = 0

    def answer_now(self, path: str) -> bytes | None:
        """The answer of a request served at once; None for a delayed one (`/d/...`)."""
        if path == "/arrivals":
            return _response(json.dumps(self.arrivals).encode())
        if path == "/connections":
            return _response(str(self.connections).encode())
        return _NOT_FOUND


class _Connection(asyncio.Protocol):
    def __init__(self, target: Target) -> None:
        self._target = target
        self._buffer = b""
        self._body_left = 0
        # Answers in request order: [bytes or None while its delay runs].
        self._pending: deque[list[bytes | None]] = deque()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # any loop's transport
        self._target.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        while buffer:
            if self._body_left:
                taken = min(self._body_left, len(buffer))
                self._body_left -= taken
                buffer = buffer[taken:]
                continue
            end = buffer.find(_HEAD_END)
            if end < 0:
                break
            head, buffer = buffer[:end], buffer[end + 4 :]
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            path = parts[1] if len(parts) > 1 else "/"
            for line in lines[1:]:
                if line[:15].lower() == "content-length:":
                    self._body_left = int(line[15:].strip())
            self._request(path)
        self._buffer = buffer

    def _request(self, path: str) -> None:
        parts = path.split("/")
        slot: list[bytes | None] = [None]
        self._pending.append(slot)
        if len(parts) == 5 and parts[1] == "d":
            self._target.arrivals.append((parts[3], int(parts[4]), time.time()))
            loop = asyncio.get_running_loop()
            loop.call_later(int(parts[2]) / 1000, self._ready, slot, _OK_RESPONSE)
        else:
            self._ready(slot, self._target.answer_now(path) or _NOT_FOUND)

    def _ready(self, slot: list[bytes | None], answer: bytes) -> None:
        slot[0] = answer
        pending = self._pending
        while pending and pending[0][0] is not None:
            ready = pending.popleft()[0]
            if self._transport is not None and ready is not None:
                self._transport.write(ready)


async def main(port: int) -> None:
    target = Target()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(target), "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
