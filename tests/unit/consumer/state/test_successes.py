"""Idempotency records on the fleet's store (consumer/state/remote.py `SharedSuccesses`), and
the store going away: every call falls back to this process's own records at once."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from structlog.testing import capture_logs

from actions.errors import StateUnavailable
from actions.runtime.idempotency import LocalSuccesses
from consumer.secrets.redaction import MASK, SECRETS
from consumer.state.guard import StateGuard
from consumer.state.remote import SharedSuccesses
from tests.unit.consumer.state.support import remote_state
from tests.valkey_server import ValkeyServer


async def test_a_success_is_seen_by_another_engine(state_server: ValkeyServer) -> None:
    a_remote = remote_state(state_server)
    b_remote = remote_state(state_server, a_remote.prefix)
    a = SharedSuccesses(a_remote, LocalSuccesses())
    b = SharedSuccesses(b_remote, LocalSuccesses())
    assert (await a.claim("p/req-1", "owner-a", 5.0)).mine
    busy = await b.claim("p/req-1", "owner-b", 5.0)
    assert not busy.mine and busy.data is None, "running elsewhere: wait for it"
    await a.succeeded("p/req-1", "owner-a", {"slack_message_id": "1.2"}, 60.0)
    done = await b.claim("p/req-1", "owner-b", 5.0)
    assert done.data == {"slack_message_id": "1.2"} and not done.mine
    key = a_remote.key("done", "p/req-1")
    assert 0 < await a_remote.client.pttl(key) <= 60_000, "kept for the TTL"
    await a_remote.aclose()
    await b_remote.aclose()


async def test_a_failure_is_not_remembered(state_server: ValkeyServer) -> None:
    remote = remote_state(state_server)
    a = SharedSuccesses(remote, LocalSuccesses())
    assert (await a.claim("p/req-2", "owner-a", 5.0)).mine
    await a.release("p/req-2", "owner-a")
    assert await remote.client.exists(remote.key("done", "p/req-2")) == 0
    assert (await a.claim("p/req-2", "owner-b", 5.0)).mine, "it may run again"
    # Only the claim's owner gives it back.
    await a.release("p/req-2", "owner-a")
    assert not (await a.claim("p/req-2", "owner-c", 5.0)).mine
    await remote.aclose()


async def test_a_lease_ends_when_its_holder_vanished(state_server: ValkeyServer) -> None:
    remote = remote_state(state_server)
    a = SharedSuccesses(remote, LocalSuccesses())
    b = SharedSuccesses(remote, LocalSuccesses())
    assert (await a.claim("p/req-3", "owner-a", 0.2)).mine
    assert not (await b.claim("p/req-3", "owner-b", 0.2)).mine
    await asyncio.sleep(0.3)
    assert (await b.claim("p/req-3", "owner-b", 0.2)).mine
    await remote.aclose()


async def test_stored_data_is_scrubbed_of_secrets(state_server: ValkeyServer) -> None:
    remote = remote_state(state_server)
    SECRETS.add_engine_secret("sk-live-planted-secret-0042")
    a = SharedSuccesses(remote, LocalSuccesses())
    await a.claim("p/req-4", "o", 5.0)
    await a.succeeded("p/req-4", "o", {"body": "echo sk-live-planted-secret-0042"}, 60.0)
    raw = await remote.client.get(remote.key("done", "p/req-4"))
    assert isinstance(raw, bytes)
    assert b"sk-live-planted-secret-0042" not in raw
    assert MASK.encode() in raw
    await remote.aclose()


async def test_the_store_killed_falls_back_and_recovers(
    restarted_state_server: ValkeyServer,
) -> None:
    server = restarted_state_server
    remote = remote_state(server, timeout_s=0.3)
    successes = SharedSuccesses(remote, LocalSuccesses())
    await successes.claim("p/seen", "o", 5.0)
    await successes.succeeded("p/seen", "o", {"n": 1}, 60.0)
    server.kill()
    loop = asyncio.get_running_loop()
    with capture_logs() as logs:
        started = loop.time()
        # What this process saw is still deduplicated; anything else runs.
        assert (await successes.claim("p/seen", "o2", 5.0)).data == {"n": 1}
        assert (await successes.claim("p/new", "o2", 5.0)).mine
        await successes.succeeded("p/new", "o2", {"n": 2}, 60.0)
        assert loop.time() - started < 1.0, "bounded by the timeout, then answered locally"
        assert not remote.guard.available
        server.start()
        await asyncio.sleep(0.25)  # the guard's retry interval (0.2 s in these tests)
        assert (await successes.claim("p/other", "o3", 5.0)).mine
    events = [e["event"] for e in logs]
    assert events.count("state.unavailable") == 1
    assert events[-1] == "state.recovered"
    assert remote.guard.available
    await remote.aclose()


async def test_the_guard_gives_up_within_its_timeout() -> None:
    calls: list[bool] = []
    guard = StateGuard(0.05, structlog.get_logger(), retry_s=60.0, on_available=calls.append)

    async def hang() -> None:
        await asyncio.sleep(10)

    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(3):
        with pytest.raises(StateUnavailable):
            await guard.run(hang)
    assert loop.time() - started < 0.5, "after the first timeout, calls fail at once"
    assert calls == [False]
