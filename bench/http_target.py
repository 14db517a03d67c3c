"""A loopback HTTP/1.1 target that answers after a delay: `python -m bench.http_target PORT`.

`GET /d/<ms>/<key>/<seq>` answers `{"ok": true}` after `<ms>` milliseconds and records the
arrival of (key, seq); `GET /arrivals` returns them in arrival order, for the order check;
`GET /connections` says how many TCP connections were accepted (connection reuse).
Raw asyncio (keep-alive, no framework) so that the target costs far less CPU than the engine
it is measuring.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

_OK = b'{"ok":true}'


def _response(body: bytes, status: str = "200 OK") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Target:
    def __init__(self) -> None:
        # (key, seq, wall time of arrival)
        self.arrivals: list[tuple[str, int, float]] = []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if " " in lines[0] else "/"
                length = 0
                for line in lines[1:]:
                    if line[:15].lower() == "content-length:":
                        length = int(line[15:].strip())
                if length:
                    await reader.readexactly(length)
                writer.write(await self._answer(path))
                await writer.drain()
        finally:
            writer.close()

    async def _answer(self, path: str) -> bytes:
        parts = path.split("/")
        if len(parts) == 5 and parts[1] == "d":
            self.arrivals.append((parts[3], int(parts[4]), time.time()))
            await asyncio.sleep(int(parts[2]) / 1000)
            return _response(_OK)
        if path == "/arrivals":
            return _response(json.dumps(self.arrivals).encode())
        if path == "/connections":
            return _response(str(self.connections).encode())
        return _response(b'{"error":"not found"}', "404 Not Found")


async def main(port: int) -> None:
    target = Target()
    server = await asyncio.start_server(target.serve, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
