"""consumer/ops_server.py, consumer/health.py: the three routes over a real loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from consumer.ops.health import Readiness, group_readiness
from consumer.ops.server import OpsServer


class Switch:
    def __init__(self) -> None:
        self.readiness = Readiness(False, "not a member of the consumer group (joining)")

    def __call__(self) -> Readiness:
        return self.readiness


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
async def client(switch: Switch) -> AsyncIterator[httpx.AsyncClient]:
    server = OpsServer("127.0.0.1", 0, render_metrics=lambda: b"execution_up 1\n", readiness=switch)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            yield client
    finally:
        await server.stop()


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")


async def test_readyz_follows_the_readiness_function(
    client: httpx.AsyncClient, switch: Switch
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "reason": switch.readiness.reason}
    switch.readiness = Readiness(True, "in group")
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "reason": "in group"}


async def test_metrics_is_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics?name[]=x")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert response.text == "execution_up 1\n"


async def test_head_has_no_body_but_the_length(client: httpx.AsyncClient) -> None:
    response = await client.head("/healthz")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "3"


async def test_unknown_path_and_method(client: httpx.AsyncClient) -> None:
    assert (await client.get("/")).status_code == 404
    assert (await client.post("/healthz")).status_code == 405


async def test_garbage_and_silence_do_not_break_the_server(client: httpx.AsyncClient) -> None:
    port = client.base_url.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NONSENSE\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
    writer.close()
    _, idle = await asyncio.open_connection("127.0.0.1", port)  # says nothing at all
    assert (await client.get("/healthz")).status_code == 200
    idle.close()


def test_a_consumer_not_started_is_not_ready() -> None:
    readiness = group_readiness(None)
    assert readiness == Readiness(False, "the consumer has not started")
