"""actions/ratelimit.py: rate syntax and the per-key reserve-then-sleep schedule (fake clock)."""

from __future__ import annotations

import asyncio
import time

import pytest

from actions import RateKey
from actions.errors import RateLimitExhausted
from actions.ratelimit import Rate, RateLimiter
from schemas import ErrorCode


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def limiter(clock: FakeClock, **limits: str) -> RateLimiter:
    return RateLimiter(
        {name: Rate.parse(spec) for name, spec in limits.items()},
        clock=clock,
        sleep=clock.sleep,
    )


CHANNEL = RateKey("chan", "proj/#general")
OTHER_CHANNEL = RateKey("chan", "proj/#random")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1/s", Rate(1, 1.0)),
        ("60/min", Rate(60, 60.0)),
        (" 300 / min burst 10 ", Rate(300, 60.0, 10)),
        ("0.5/s", Rate(0.5, 1.0)),
        ("100/h", Rate(100, 3600.0)),
        ("off", None),
        ("", None),
    ],
)
def test_rate_syntax(spec: str, expected: Rate | None) -> None:
    assert Rate.parse(spec) == expected


@pytest.mark.parametrize("spec", ["1", "1/day", "0/s", "-1/s", "fast", "1/s burst 0"])
def test_bad_rate_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"rate|burst"):
        Rate.parse(spec)


def test_interval() -> None:
    assert Rate(1, 1.0).interval_s == 1.0
    assert Rate(60, 60.0).interval_s == 1.0
    assert Rate(300, 60.0).interval_s == pytest.approx(0.2)


def test_one_key_is_spaced_evenly_and_other_keys_are_not_held_back() -> None:
    clock = FakeClock()
    rl = limiter(clock, chan="1/s")
    waits = [rl.reserve([CHANNEL]) for _ in range(10)]
    assert waits == [float(i) for i in range(10)], "a burst is smoothed to one per second"
    assert rl.reserve([OTHER_CHANNEL]) == 0.0, "another channel goes at once"
    assert rl.reserve([RateKey("unconfigured", "x")]) == 0.0, "no rate configured: no limit"


def test_slots_free_up_as_time_passes() -> None:
    clock = FakeClock()
    rl = limiter(clock, chan="1/s")
    assert rl.reserve([CHANNEL]) == 0.0
    clock.now += 0.25
    assert rl.reserve([CHANNEL]) == pytest.approx(0.75)
    clock.now += 5
    assert rl.reserve([CHANNEL]) == 0.0, "an idle key does not bank unlimited credit"
    assert rl.reserve([CHANNEL]) == pytest.approx(1.0)


def test_burst_allows_back_to_back_then_spaces() -> None:
    clock = FakeClock()
    rl = limiter(clock, chan="1/s burst 3")
    waits = [rl.reserve([CHANNEL]) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_several_keys_take_the_latest_slot_and_spend_each() -> None:
    clock = FakeClock()
    rl = limiter(clock, sheet="1/s", project="2/s")
    sheet_a, sheet_b = RateKey("sheet", "a"), RateKey("sheet", "b")
    project = RateKey("project", "p")
    assert rl.reserve([sheet_a, project]) == 0.0
    assert rl.reserve([sheet_a, project]) == 1.0, "the sheet's slot is the later one"
    # The project's budget was spent at 0 and at 1: next project slot at 1.5.
    assert rl.reserve([sheet_b, project]) == 1.5


def test_a_slot_beyond_max_wait_is_refused_and_not_reserved() -> None:
    clock = FakeClock()
    rl = limiter(clock, chan="1/s")
    for _ in range(3):
        rl.reserve([CHANNEL])
    with pytest.raises(RateLimitExhausted) as info:
        rl.reserve([CHANNEL], max_wait_s=2.5)
    assert info.value.code is ErrorCode.RATE_LIMITED
    assert info.value.details == {"limit": "chan", "wait_s": 3.0}
    # Nothing was reserved by the refused call: the next slot is still at +3 s.
    assert rl.reserve([CHANNEL], max_wait_s=3.0) == 3.0


async def test_acquire_sleeps_for_the_wait() -> None:
    clock = FakeClock()
    rl = limiter(clock, chan="2/s")
    assert await rl.acquire([CHANNEL]) == 0.0
    assert await rl.acquire([CHANNEL]) == 0.5
    assert clock.sleeps == [0.5], "no sleep when there is no wait"


async def test_waiters_of_one_key_do_not_block_another_key_in_real_time() -> None:
    rl = RateLimiter({"chan": Rate(10, 1.0)})
    started = time.monotonic()
    finished: dict[str, float] = {}

    async def send(name: str, key: RateKey) -> None:
        await rl.acquire([key])
        finished[name] = time.monotonic() - started

    await asyncio.gather(
        *(send(f"busy-{i}", CHANNEL) for i in range(5)), send("quiet", OTHER_CHANNEL)
    )
    assert finished["quiet"] < 0.05
    assert finished["busy-4"] >= 0.39
    assert sorted(finished, key=finished.__getitem__)[-1] == "busy-4"


def test_schedules_are_an_lru_of_bounded_size() -> None:
    clock = FakeClock()
    rl = RateLimiter({"chan": Rate(1, 3600.0)}, clock=clock, max_keys=10_000)
    # 30,000 destinations whose schedules all lie in the future (1/h): memory stays bounded.
    for i in range(30_000):
        assert rl.reserve([RateKey("chan", f"host-{i}")]) == 0.0
    assert len(rl) == 10_000
    # The most recent keep their schedule; the least recently used were forgotten.
    assert rl.reserve([RateKey("chan", "host-29999")]) == 3600.0
    assert rl.reserve([RateKey("chan", "host-0")]) == 0.0


async def test_a_pause_holds_back_the_keys_named_even_unconfigured_ones() -> None:
    clock = FakeClock()
    limiter = RateLimiter({"chan": Rate(1, 1.0, burst=3)}, clock=clock)
    channel, workspace, other = RateKey("chan", "a"), RateKey("ws", "p"), RateKey("chan", "b")
    assert limiter.reserve([workspace]) == 0.0
    await limiter.pause([channel, workspace], 5.0)
    assert limiter.reserve([channel]) == pytest.approx(5.0), "the burst is spent: 5 s"
    assert limiter.reserve([workspace]) == pytest.approx(5.0), "no rate configured: paused"
    assert limiter.reserve([workspace]) == pytest.approx(5.0), "and only paused, not spaced"
    assert limiter.reserve([other]) == 0.0, "another key is not"
    clock.now += 5.0
    assert limiter.reserve([workspace]) == 0.0
    await limiter.pause([workspace], 1.0)
    await limiter.pause([workspace], 0.5)
    assert limiter.reserve([workspace]) == pytest.approx(1.0), "a shorter pause never shortens"
