"""The engine's shared HTTP clients keep no cookies: one request's Set-Cookie never rides on
the next (which may be another project's)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from actions.egress import EgressPolicy, guarded_client, parse_networks, service_client


class CookieSetter(BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self) -> None:
        CookieSetter.seen.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Set-Cookie", "session=project-a-session; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def cookie_setter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CookieSetter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    CookieSetter.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_a_set_cookie_is_not_sent_with_the_next_request(cookie_setter: str) -> None:
    async with guarded_client(EgressPolicy(parse_networks("127.0.0.0/8"))) as client:
        first = await client.get(f"{cookie_setter}/login")
        assert "project-a-session" in first.headers["set-cookie"]  # the server did set one
        await client.get(f"{cookie_setter}/other-project")
    assert CookieSetter.seen == [None, None]


async def test_a_cookie_header_the_request_sets_itself_is_sent(cookie_setter: str) -> None:
    async with guarded_client(EgressPolicy(parse_networks("127.0.0.0/8"))) as client:
        await client.get(cookie_setter, headers={"Cookie": "chosen=by-the-request"})
    assert CookieSetter.seen == ["chosen=by-the-request"]


async def test_the_service_client_keeps_no_cookies_either(cookie_setter: str) -> None:
    async with service_client(5.0) as client:
        await client.get(f"{cookie_setter}/login")
        await client.get(f"{cookie_setter}/other-project")
    assert CookieSetter.seen == [None, None]
