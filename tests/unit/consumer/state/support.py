"""Helpers of the fleet-state tests: a RemoteState on the session's real Valkey server."""

from __future__ import annotations

import uuid

import structlog
from valkey.exceptions import ValkeyError

from consumer.state.guard import StateGuard
from consumer.state.remote import RemoteState, connect
from tests.valkey_server import ValkeyServer


def remote_state(
    server: ValkeyServer, prefix: str | None = None, *, timeout_s: float = 1.0
) -> RemoteState:
    """A client of its own (so two of them are two engines), keys under a fresh prefix."""
    client = connect(server.url, username=None, password=None, ca_file=None)
    guard = StateGuard(timeout_s, structlog.get_logger(), retry_s=0.2, errors=(ValkeyError,))
    return RemoteState(client, guard, prefix or f"t-{uuid.uuid4().hex[:8]}")
