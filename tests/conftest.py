"""Suite-wide fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consumer.ops.logging import reset_logging
from tests.valkey_server import ValkeyServer


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """configure_logging() changes process-wide state; each test starts and ends clean."""
    yield
    reset_logging()


@pytest.fixture(scope="session")
def state_server() -> Iterator[ValkeyServer]:
    """One real Valkey server for the session (fleet-state tests), on a free loopback port.
    Tests that kill it start it again before they end (`restarted_state_server`)."""
    server = ValkeyServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def restarted_state_server(state_server: ValkeyServer) -> Iterator[ValkeyServer]:
    """The session's server, for a test that may kill it: running again (empty) afterwards."""
    yield state_server
    if state_server.process is None or state_server.process.poll() is not None:
        state_server.start()
