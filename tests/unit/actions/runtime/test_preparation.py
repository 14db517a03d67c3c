"""actions/runtime/preparation.py: one preparation of a request; the runner refuses the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from actions import ActionParams
from actions.registry import default_registry
from actions.runtime.preparation import (
    PreparedRequest,
    Unrunnable,
    describe_validation_error,
    prepare_request,
)
from actions.runtime.runner import ActionRunner
from schemas import ErrorCode, ExecutionRequest
from tests.unit.support import FakeCredentials, plain_client

REGISTRY = default_registry()
GOOD = {"message": "m"}


def request(**fields: Any) -> ExecutionRequest:
    body: dict[str, Any] = {"action": "log_message", "project": "p", "params": GOOD, **fields}
    return ExecutionRequest.model_validate(body)


# (request, the refusal's code and the start of its message; None: it can run)
CASES: list[tuple[ExecutionRequest, tuple[ErrorCode, str] | None]] = [
    (request(), None),
    (request(fallback={"action": "log_message", "params": GOOD}), None),
    (request(action="send_fax"), (ErrorCode.UNKNOWN_ACTION, "no action named 'send_fax'")),
    (request(params={}), (ErrorCode.INVALID_PARAMS, "params.message: Field required")),
    (
        request(fallback={"action": "send_fax", "params": {}}),
        (ErrorCode.UNKNOWN_ACTION, "fallback: no action named 'send_fax'"),
    ),
    (
        request(fallback={"action": "log_message", "params": {"message": "m", "level": "loud"}}),
        (ErrorCode.INVALID_PARAMS, "fallback.params.level: "),
    ),
    # The main action's refusal comes first, whatever the fallback.
    (
        request(action="send_fax", fallback={"action": "nope", "params": {}}),
        (ErrorCode.UNKNOWN_ACTION, "no action named 'send_fax'"),
    ),
]


@pytest.mark.parametrize(("req", "refusal"), CASES)
def test_prepare_request(req: ExecutionRequest, refusal: tuple[ErrorCode, str] | None) -> None:
    prepared = prepare_request(REGISTRY, req)
    if refusal is None:
        assert isinstance(prepared, PreparedRequest)
        assert prepared.action.name == "log_message"
        assert (prepared.fallback is None) == (req.fallback is None)
        return
    assert isinstance(prepared, Unrunnable)
    assert prepared.code is refusal[0]
    assert prepared.message.startswith(refusal[1])


@pytest.fixture
async def runner() -> AsyncIterator[ActionRunner]:
    async with plain_client() as http:
        yield ActionRunner(
            registry=REGISTRY, credentials=FakeCredentials(), http=http, egress_http=http
        )


@pytest.mark.parametrize(("req", "refusal"), CASES)
async def test_the_runner_refuses_exactly_what_preparation_refuses(
    runner: ActionRunner, req: ExecutionRequest, refusal: tuple[ErrorCode, str] | None
) -> None:
    envelope = await runner.execute(req, "r1", structlog.get_logger())
    prepared = prepare_request(REGISTRY, req)
    if refusal is None:
        assert envelope.status == "success"
        return
    assert isinstance(prepared, Unrunnable)
    assert envelope.error is not None
    assert (envelope.error.code, envelope.error.message) == (prepared.code, prepared.message)
    assert envelope.attempts == 0 and envelope.fallback is None


def test_describe_validation_error_caps_the_list() -> None:
    class Many(ActionParams):
        a: int
        b: int
        c: int
        d: int
        e: int
        f: int
        g: int

    with pytest.raises(ValidationError) as info:
        Many.model_validate({})
    text = describe_validation_error(info.value, "params")
    assert text.startswith("params.a: Field required; params.b: Field required")
    assert text.endswith("and 2 more")
