"""consumer/state/remote.py on a real Valkey server: the GCRA and circuit scripts, shared by two
clients as two engines would share them."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from actions.ratelimit import Rate, RateKey
from tests.unit.consumer.state.support import remote_state
from tests.valkey_server import ValkeyServer

CHANNEL = RateKey("slack.channel", "proj/#general")
ONE_PER_S = Rate(1, 1.0)


async def test_gcra_spaces_one_key_across_two_engines(state_server: ValkeyServer) -> None:
    a = remote_state(state_server)
    b = remote_state(state_server, a.prefix)
    loop = asyncio.get_running_loop()
    slots = []
    for i in range(6):
        engine = a if i % 2 == 0 else b
        asked = loop.time()
        granted, wait = await engine.reserve([(CHANNEL, ONE_PER_S)], None)
        answered = loop.time()
        assert granted
        slots.append(((asked + answered) / 2 + wait, answered - asked))
    # Consecutive slots are one interval apart, whichever engine asks (the server's clock).
    for (slot, rtt), (later, later_rtt) in itertools.pairwise(slots):
        assert later - slot == pytest.approx(1.0, abs=0.02 + rtt + later_rtt), slots
    other = RateKey("slack.channel", "proj/#random")
    assert await a.reserve([(other, ONE_PER_S)], None) == (True, 0.0), "another key goes at once"
    await a.aclose()
    await b.aclose()


async def test_gcra_refuses_past_max_wait_without_reserving(state_server: ValkeyServer) -> None:
    state = remote_state(state_server)
    for _ in range(3):
        await state.reserve([(CHANNEL, ONE_PER_S)], None)
    granted, wait = await state.reserve([(CHANNEL, ONE_PER_S)], 1.5)
    assert not granted and wait == pytest.approx(3.0, abs=0.25)
    granted, wait = await state.reserve([(CHANNEL, ONE_PER_S)], 3.5)
    assert granted and wait == pytest.approx(3.0, abs=0.25), "the refused call took no slot"
    await state.aclose()


async def test_gcra_burst_and_several_keys(state_server: ValkeyServer) -> None:
    state = remote_state(state_server)
    burst = Rate(1, 1.0, burst=3)
    waits = [(await state.reserve([(CHANNEL, burst)], None))[1] for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 1.0, 2.0], abs=0.25)
    sheet, project = RateKey("sheet", "a"), RateKey("project", "p")
    slots = [(sheet, Rate(1, 1.0)), (project, Rate(2, 1.0))]
    assert (await state.reserve(slots, None))[1] == pytest.approx(0.0, abs=0.25)
    assert (await state.reserve(slots, None))[1] == pytest.approx(1.0, abs=0.25)
    await state.aclose()


async def test_rate_keys_expire_and_are_namespaced(state_server: ValkeyServer) -> None:
    state = remote_state(state_server)
    await state.reserve([(CHANNEL, ONE_PER_S)], None)
    keys = [key.decode() async for key in state.client.scan_iter(f"{state.prefix}:*")]
    assert keys == [f"{state.prefix}:rate:slack.channel:proj/#general"]
    ttl_ms = await state.client.pttl(keys[0])
    assert 0 < ttl_ms <= 2100, "a schedule lives until its next slot plus a second"
    await state.aclose()


async def test_shared_circuit_opens_for_every_engine_and_lets_one_probe(
    state_server: ValkeyServer,
) -> None:
    a = remote_state(state_server)
    b = remote_state(state_server, a.prefix)
    upstream = "api.test:443"
    for engine in (a, b):
        view = await engine.record(upstream, probe=False, failed=True, threshold=3, open_s=0.3)
        assert view.state == "closed" and not view.changed
    counted = await b.admit(upstream, 0.3)
    assert (counted.state, counted.failures) == ("closed", 2), "the fleet's failures so far"
    view = await a.record(upstream, probe=False, failed=True, threshold=3, open_s=0.3)
    assert view.state == "open" and view.changed, "the fleet's third failure opened it"
    seen = await b.admit(upstream, 0.3)
    assert seen.state == "open" and 0 < seen.reopens_in_s <= 0.3
    ttl_ms = await a.client.pttl(a.key("circuit", upstream))
    assert ttl_ms > 0, "circuit state expires"
    await asyncio.sleep(0.35)
    first, second = await a.admit(upstream, 0.3), await b.admit(upstream, 0.3)
    assert (first.state, first.probe) == ("half_open", True)
    assert (second.state, second.probe) == ("half_open", False), "one probe for the fleet"
    view = await a.record(upstream, probe=True, failed=False, threshold=3, open_s=0.3)
    assert view.state == "closed" and view.changed
    assert (await b.admit(upstream, 0.3)).state == "closed"
    await a.aclose()
    await b.aclose()


async def test_a_failed_probe_opens_the_circuit_again(state_server: ValkeyServer) -> None:
    state = remote_state(state_server)
    upstream = "down.test:443"
    await state.record(upstream, probe=False, failed=True, threshold=1, open_s=0.2)
    await asyncio.sleep(0.25)
    assert (await state.admit(upstream, 0.2)).probe
    view = await state.record(upstream, probe=True, failed=True, threshold=1, open_s=0.2)
    assert view.state == "open" and view.changed
    assert (await state.admit(upstream, 0.2)).state == "open"
    # A call without a verdict gives the probe back without changing anything.
    await asyncio.sleep(0.25)
    assert (await state.admit(upstream, 0.2)).probe
    view = await state.record(upstream, probe=True, failed=None, threshold=1, open_s=0.2)
    assert view.state == "half_open" and not view.changed
    assert (await state.admit(upstream, 0.2)).probe, "the probe was given back"
    await state.aclose()


async def test_a_pause_holds_back_every_engine_paced_or_not(state_server: ValkeyServer) -> None:
    a = remote_state(state_server)
    b = remote_state(state_server, a.prefix)
    workspace = RateKey("slack.workspace", "proj")
    unpaced = Rate(1.0, 0.0)
    await a.pause([(CHANNEL, ONE_PER_S), (workspace, unpaced)], 2.0)
    granted, wait = await b.reserve([(CHANNEL, ONE_PER_S)], None)
    assert granted and wait == pytest.approx(2.0, abs=0.25), "a paced key starts after it"
    granted, wait = await b.reserve([(workspace, unpaced)], None)
    assert granted and wait == pytest.approx(2.0, abs=0.25), "so does a key of no rate"
    granted, wait = await b.reserve([(workspace, unpaced)], None)
    assert wait == pytest.approx(2.0, abs=0.25), "an unpaced key is only read: no spacing"
    await a.pause([(workspace, unpaced)], 0.5)
    assert (await b.reserve([(workspace, unpaced)], None))[1] == pytest.approx(2.0, abs=0.25)
    await a.aclose()
    await b.aclose()
