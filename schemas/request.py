"""The execution request: the value the Gateway publishes on the requests topic."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

PROJECT_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
# Printable ASCII and printable Unicode, no control characters: the id ends up in Kafka keys,
# headers and log lines, where a newline or NUL would be an injection vector.
REQUEST_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"


def _not_a_dot_segment(project: str) -> str:
    # The project becomes a path segment of the Vault URL: "." and ".." would walk the path.
    if project in {".", ".."}:
        raise ValueError("must not be '.' or '..'")
    return project


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
    deadline: AwareDatetime | None = Field(
        default=None,
        description="RFC 3339 time; a request not started by then is not executed.",
    )
