"""Third-party loggers go through the same redaction: HTTP libraries at DEBUG may log full URLs
and header-bearing reprs, and none of it may carry a secret the engine knows."""

from __future__ import annotations

import base64
import io
import logging
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from consumer.ops.logging import configure_logging, flush_logs
from consumer.secrets.redaction import SECRETS
from tests.standins import HttpTargetStandIn
from tests.unit.support import plain_client


@pytest.fixture(scope="module")
def target() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as server:
        yield server


async def test_library_debug_logs_never_carry_a_secret(target: HttpTargetStandIn) -> None:
    core = uuid.uuid4().hex
    secret = f"lib-{core}/+=&?#"
    # Library logs inside a record are scrubbed of that record's credentials.
    scope = SECRETS.scope()
    scope.hold(secret)
    activated = scope.active()
    activated.__enter__()
    basic = base64.b64encode(f"user:{secret}".encode()).decode()
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    # As an operator might, for a bug hunt: the libraries' own most talkative level.
    for name in ("aiohttp", "httpx", "httpcore", "aiokafka", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        async with plain_client() as client:
            await client.get(
                f"{target.base_url}/echo",
                params={"token": secret},
                headers={"Authorization": f"Bearer {secret}"},
            )
            await client.get(
                f"http://user:{quote(secret, safe='')}@127.0.0.1:{target.port}/p/{quote(secret)}"
            )
        logging.getLogger("httpx").info("HTTP Request: GET %s", f"https://x/?t={secret}")
        logging.getLogger("some.library").warning("failed with %r", secret.encode())
        logging.getLogger("some.library").debug("header Authorization: Basic %s", basic)
    finally:
        for name in ("aiohttp", "httpx", "httpcore", "aiokafka", "asyncio"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        activated.__exit__(None, None, None)
        scope.close()
    flush_logs()  # inside an event loop, lines are written at the end of the loop iteration
    written = stream.getvalue()
    assert '"logger":"httpx"' in written  # the library line really went through the chain
    assert "HTTP Request: GET" in written
    assert core not in written
    assert quote(secret, safe="") not in written
    assert basic[8:-4] not in written  # the secret's part of the Basic credential
    # The request line and the bytes repr above (the engine's aiohttp client logs no request
    # lines of its own; whatever it logs went through the same chain).
    assert written.count("[REDACTED]") >= 2
