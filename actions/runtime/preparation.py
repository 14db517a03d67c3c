"""A request's preparation: its action (and fallback) found and their params validated.

One function, used by the runner before it runs anything and by `replay` to leave out records
that could never run: both refuse exactly the same requests, with the same code and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import ValidationError

from actions.base import ActionParams
from actions.registry import ActionRegistry, AnyAction
from schemas import ErrorCode, ExecutionRequest


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """'params.channel: Field required; ...' — names the fields, never echoes their values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        location = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        parts.append(f"{location}: {error['msg']}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


@dataclass(frozen=True)
class PreparedAction:
    action: AnyAction
    params: ActionParams


class PreparedRequest(NamedTuple):
    """A request that can run: its action with validated params, and its fallback if any.
    (One per request, on every record's path: a named tuple, a third of a frozen dataclass's
    cost.)"""

    action: AnyAction
    params: ActionParams
    fallback: PreparedAction | None = None


@dataclass(frozen=True)
class Unrunnable:
    """Why a request cannot run: an unknown action or invalid params (its own, or its
    fallback's: a fallback that could never run makes the request a bad one)."""

    code: ErrorCode
    message: str


def prepare_request(
    registry: ActionRegistry, request: ExecutionRequest
) -> PreparedRequest | Unrunnable:
    main = _validated(registry, request.action, request.params, "params")
    if isinstance(main, Unrunnable):
        return main
    if request.fallback is None:
        return PreparedRequest(*main)
    fallback = _validated(
        registry, request.fallback.action, request.fallback.params, "fallback.params", "fallback: "
    )
    if isinstance(fallback, Unrunnable):
        return fallback
    return PreparedRequest(*main, fallback=PreparedAction(*fallback))


def _validated(
    registry: ActionRegistry, name: str, raw_params: dict[str, Any], where: str, label: str = ""
) -> tuple[AnyAction, ActionParams] | Unrunnable:
    action = registry.get(name)
    if action is None:
        return Unrunnable(ErrorCode.UNKNOWN_ACTION, f"{label}no action named {name!r}")
    try:
        params = action.params_model.model_validate(raw_params)
    except ValidationError as exc:
        return Unrunnable(ErrorCode.INVALID_PARAMS, describe_validation_error(exc, where))
    return action, params
