"""Fixtures the built-in actions' tests share: a loopback HTTP target and the guarded client
that may reach it. A module that defines its own fixture of the same name keeps its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from actions import HttpClient
from actions.egress import EgressPolicy, guarded_client, parse_networks
from tests.standins import HttpTargetStandIn


@pytest.fixture(scope="module")
def server() -> Iterator[HttpTargetStandIn]:
    with HttpTargetStandIn() as target:
        yield target


@pytest.fixture
def target(server: HttpTargetStandIn) -> HttpTargetStandIn:
    server.clear()
    return server


@pytest.fixture
async def egress() -> AsyncIterator[HttpClient]:
    async with guarded_client(EgressPolicy(parse_networks("127.0.0.0/8"))) as client:
        yield client
