"""The execution request: the value the Gateway publishes on the requests topic."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

PROJECT_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
# Printable characters only (no C0/C1 controls): the id ends up in Kafka keys, headers and log
# lines, where a newline, NUL or terminal escape would be an injection vector.
REQUEST_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]{1,128}$"


def _not_a_dot_segment(project: str) -> str:
    # The project becomes a path segment of the Vault URL: "." and ".." would walk the path.
    if project in {".", ".."}:
        raise ValueError("must not be '.' or '..'")
    return project


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_text(value: Any) -> Any:
    # pydantic alone would also take Unix seconds (a number or a digit string): not RFC 3339.
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    if isinstance(value, datetime):
        return value
    raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2026-11-26T10:00:00Z")


Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]

ProjectName = Annotated[
    str,
    StringConstraints(pattern=PROJECT_PATTERN),
    AfterValidator(_not_a_dot_segment),
    Field(json_schema_extra={"not": {"enum": [".", ".."]}}),
]
RequestId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=REQUEST_ID_PATTERN)
]
ActionName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Fallback(BaseModel):
    """Another action to run when the main one fails for good (see the README's Fallback)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Fallback")

    action: ActionName = Field(description="Name of a registered action.")
    params: dict[str, Any] = Field(description="Validated against that action's params schema.")


class ExecutionRequest(BaseModel):
    """An execution request. Unknown top-level fields are rejected so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ExecutionRequest")

    request_id: RequestId | None = Field(
        default=None,
        description=(
            "Correlation and idempotency key. If absent: the Kafka header `request-id`, else "
            "`<topic>:<partition>:<offset>` so that a replay keeps the same id."
        ),
    )
    action: ActionName = Field(description="Name of a registered action.")
    project: ProjectName = Field(description="The project whose credentials are used.")
    params: dict[str, Any] = Field(description="Validated against the action's params schema.")
    environment: str | None = Field(default=None, description="Free text, echoed.")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Echoed unchanged in the envelope."
    )
    deadline: Rfc3339 | None = Field(
        default=None,
        description="RFC 3339 time; a request not started by then is not executed.",
    )
    fallback: Fallback | None = Field(
        default=None,
        description=(
            "Run when the action fails for good (after its retries); both outcomes are in the "
            "envelope. Its action and params are validated before anything runs."
        ),
    )
