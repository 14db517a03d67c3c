"""request_id idempotency in the runner (actions/runtime/runner.py, idempotency.py): a request
that already succeeded is not executed again; failures are not remembered."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from pydantic import Field
from structlog.testing import capture_logs

from actions import Action, ActionContext, ActionParams, UpstreamError
from actions.registry import ActionRegistry
from actions.runtime.idempotency import IdempotencyRecords, LocalSuccesses
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest
from tests.unit.support import FakeCredentials, FakeHttpClient

LOG = structlog.get_logger()


class Params(ActionParams):
    text: str = Field(min_length=1)


class Counting(Action[Params]):
    name = "counting"
    params_model = Params

    def __init__(self, fail_first: int = 0, delay_s: float = 0.0) -> None:
        self.runs = 0
        self._fail_first = fail_first
        self._delay_s = delay_s

    async def run(self, params: Params, ctx: ActionContext) -> Mapping[str, Any]:
        self.runs += 1
        await asyncio.sleep(self._delay_s)
        if self.runs <= self._fail_first:
            raise UpstreamError("refused")
        return {"run": self.runs, "text": params.text}


def runner(action: Counting, successes: LocalSuccesses | None) -> ActionRunner:
    client = FakeHttpClient()  # the actions here make no HTTP call
    return ActionRunner(
        registry=ActionRegistry([action]),
        credentials=FakeCredentials(),
        http=client,
        egress_http=client,
        idempotency=IdempotencyRecords(successes, lease_s=5.0),
    )


def request(project: str = "proj", text: str = "hi") -> ExecutionRequest:
    return ExecutionRequest(action="counting", project=project, params={"text": text})


async def test_a_request_that_succeeded_is_not_executed_again() -> None:
    action = Counting()
    run = runner(action, LocalSuccesses())
    first = await run.execute(request(), "req-1", LOG)
    with capture_logs() as logs:
        second = await run.execute(request(text="changed"), "req-1", LOG)
    assert action.runs == 1
    assert first.status == second.status == "success"
    assert first.deduplicated is None and '"deduplicated"' not in first.model_dump_json()
    assert second.deduplicated is True
    assert second.attempts == 0
    assert second.data == first.data == {"run": 1, "text": "hi"}, "the first one's data"
    assert logs == []  # nothing ran: the outcome event (`deduplicated`) is the pipeline's


async def test_failures_are_not_remembered() -> None:
    action = Counting(fail_first=1)
    run = runner(action, LocalSuccesses())
    failed = await run.execute(request(), "req-2", LOG)
    assert failed.error is not None and failed.error.code is ErrorCode.UPSTREAM_ERROR
    again = await run.execute(request(), "req-2", LOG)
    assert again.status == "success" and again.deduplicated is None and action.runs == 2


async def test_another_project_with_the_same_id_runs() -> None:
    action = Counting()
    run = runner(action, LocalSuccesses())
    await run.execute(request("proj-a"), "same-id", LOG)
    other = await run.execute(request("proj-b"), "same-id", LOG)
    assert other.deduplicated is None and action.runs == 2


async def test_a_reexecution_on_purpose_bypasses_the_check() -> None:
    action = Counting()
    run = runner(action, LocalSuccesses())
    await run.execute(request(), "req-3", LOG)
    again = await run.execute(request(), "req-3", LOG, deduplicate=False)
    assert again.deduplicated is None and again.attempts == 1 and action.runs == 2


async def test_two_copies_arriving_at_once_run_once() -> None:
    action = Counting(delay_s=0.1)
    run = runner(action, LocalSuccesses())
    envelopes = await asyncio.gather(*(run.execute(request(), "req-4", LOG) for _ in range(3)))
    assert action.runs == 1
    assert sorted(bool(e.deduplicated) for e in envelopes) == [False, True, True]
    assert all(e.data == {"run": 1, "text": "hi"} for e in envelopes)


async def test_a_copy_waiting_on_a_failing_first_runs_itself() -> None:
    action = Counting(fail_first=1, delay_s=0.05)
    run = runner(action, LocalSuccesses())
    first, second = await asyncio.gather(
        run.execute(request(), "req-5", LOG), run.execute(request(), "req-5", LOG)
    )
    assert first.status == "error"
    assert second.status == "success" and second.deduplicated is None
    assert action.runs == 2


async def test_invalid_params_are_judged_before_the_check() -> None:
    action = Counting()
    run = runner(action, LocalSuccesses())
    await run.execute(request(), "req-6", LOG)
    bad = ExecutionRequest(action="counting", project="proj", params={"text": ""})
    envelope = await run.execute(bad, "req-6", LOG)
    assert envelope.error is not None and envelope.error.code is ErrorCode.INVALID_PARAMS


async def test_without_a_store_every_request_runs() -> None:
    action = Counting()
    run = runner(action, None)
    await run.execute(request(), "req-7", LOG)
    await run.execute(request(), "req-7", LOG)
    assert action.runs == 2


def test_local_records_are_bounded_in_entries_and_bytes() -> None:
    local = LocalSuccesses(max_entries=1000)
    for i in range(30_000):
        local.claim_now(f"p/{i}", "o", 5.0)
        local.succeeded_now(f"p/{i}", {"i": i}, 60.0)
    assert len(local) == 1000
    assert local.claim_now("p/29999", "x", 5.0).data == {"i": 29999}
    assert local.claim_now("p/0", "x", 5.0).mine, "the least recently used was forgotten"
    big = LocalSuccesses(max_entries=1000, max_bytes=10_000)
    for i in range(100):
        big.succeeded_now(f"p/{i}", {"blob": "x" * 1000}, 60.0)
    assert big.bytes <= 10_000 and len(big) < 100


def test_local_records_expire() -> None:
    now = [0.0]
    local = LocalSuccesses(clock=lambda: now[0])
    local.succeeded_now("p/r", {"ok": True}, 10.0)
    assert local.claim_now("p/r", "o", 1.0).data == {"ok": True}
    now[0] = 11.0
    assert local.claim_now("p/r", "o", 1.0).mine


def test_claim_owners_are_unique() -> None:
    from actions.runtime.idempotency import new_owner  # noqa: PLC0415

    owners = {new_owner() for _ in range(10_000)}
    assert len(owners) == 10_000
    # A random part per process: two engines never hand out the same owner.
    assert all(len(owner.split("-")[0]) == 32 for owner in owners)


def test_data_orjson_cannot_encode_is_still_counted_and_kept() -> None:
    store = LocalSuccesses(max_bytes=1_000)
    store.succeeded_now("big", {"n": 2**70}, 60.0)  # beyond 64 bits: the json module counts it
    store.succeeded_now("lone", {"s": "\ud800"}, 60.0)
    store.succeeded_now("plain", {"s": "café"}, 60.0)
    assert len(store) == 3
    assert store.bytes == len('{"n":1180591620717411303424}') + len('{"s":"\\ud800"}') + len(
        '{"s":"café"}'.encode()
    )
