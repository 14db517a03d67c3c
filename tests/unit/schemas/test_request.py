"""schemas/request.py: the execution request model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import ExecutionRequest

MINIMAL: dict[str, Any] = {
    "action": "send_slack",
    "project": "demo-project-001",
    "params": {"channel": "#general", "message": "hi"},
}


def request(**fields: Any) -> ExecutionRequest:
    return ExecutionRequest.model_validate({**MINIMAL, **fields})


def error_locations(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in error["loc"]) for error in exc.errors()}


def test_the_seed_minimal_request_is_valid() -> None:
    parsed = ExecutionRequest.model_validate(MINIMAL)
    assert parsed.action == "send_slack"
    assert parsed.project == "demo-project-001"
    assert parsed.params == {"channel": "#general", "message": "hi"}
    assert parsed.request_id is None
    assert parsed.environment is None
    assert parsed.metadata is None
    assert parsed.deadline is None


def test_the_contract_example_is_valid() -> None:
    parsed = request(
        request_id="9f1c2e7a-4c1b-4d3e-9a55-0d2b8f3e6a10",
        environment="production",
        metadata={"flow": "on-register"},
        deadline="2026-11-26T10:00:00Z",
    )
    assert parsed.request_id == "9f1c2e7a-4c1b-4d3e-9a55-0d2b8f3e6a10"
    assert parsed.environment == "production"
    assert parsed.metadata == {"flow": "on-register"}
    assert parsed.deadline == datetime(2026, 11, 26, 10, tzinfo=UTC)


@pytest.mark.parametrize("missing", ["action", "project", "params"])
def test_required_fields(missing: str) -> None:
    body = {k: v for k, v in MINIMAL.items() if k != missing}
    with pytest.raises(ValidationError) as info:
        ExecutionRequest.model_validate(body)
    assert error_locations(info.value) == {missing}


def test_unknown_top_level_field_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        request(paramz={})
    assert error_locations(info.value) == {"paramz"}
    assert info.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("params", [[], "x", None, 1])
def test_params_must_be_an_object(params: Any) -> None:
    with pytest.raises(ValidationError) as info:
        request(params=params)
    assert error_locations(info.value) == {"params"}


def test_metadata_must_be_an_object() -> None:
    with pytest.raises(ValidationError):
        request(metadata=["flow"])


@pytest.mark.parametrize(
    "project", ["a", "A-b_c.9", "...", "a.", ".a", "x" * 128, "demo-project-001"]
)
def test_valid_project_names(project: str) -> None:
    assert request(project=project).project == project


@pytest.mark.parametrize(
    "project",
    [
        "",
        ".",
        "..",
        "x" * 129,
        "a/b",
        "a b",
        "a%2e",
        "é",
        "p\n",
        "\np",
        "a:b",
    ],
)
def test_invalid_project_names(project: str) -> None:
    with pytest.raises(ValidationError) as info:
        request(project=project)
    assert error_locations(info.value) == {"project"}


@pytest.mark.parametrize(
    "request_id", ["r", "9f1c2e7a-4c1b", "x" * 128, "with space", "ünïcödé", "t:0:5", "a/b?c"]
)
def test_valid_request_ids(request_id: str) -> None:
    assert request(request_id=request_id).request_id == request_id


@pytest.mark.parametrize("request_id", ["", "x" * 129])
def test_request_id_length(request_id: str) -> None:
    with pytest.raises(ValidationError) as info:
        request(request_id=request_id)
    assert error_locations(info.value) == {"request_id"}


@pytest.mark.parametrize(
    "control",
    ["\x00", "\x1f", "\n", "\r", "\t", "\x7f", "\x85", "\x9b"],
    ids=["NUL", "US", "LF", "CR", "TAB", "DEL", "C1-NEL", "C1-CSI"],
)
def test_request_id_with_a_control_character_is_rejected(control: str) -> None:
    # The contract says "printable"; C1 controls (U+0080-U+009F) are control characters too,
    # and CSI (U+009B) is a terminal escape introducer in log viewers.
    with pytest.raises(ValidationError) as info:
        request(request_id=f"abc{control}def")
    assert error_locations(info.value) == {"request_id"}


def test_request_id_must_be_a_string() -> None:
    with pytest.raises(ValidationError):
        request(request_id=123)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("2026-11-26T10:00:00.250Z", datetime(2026, 11, 26, 10, 0, 0, 250000, tzinfo=UTC)),
        (
            "2026-11-26T12:00:00+02:00",
            datetime(2026, 11, 26, 12, tzinfo=timezone(timedelta(hours=2))),
        ),
    ],
)
def test_deadline_accepts_rfc3339(text: str, expected: datetime) -> None:
    deadline = request(deadline=text).deadline
    assert deadline == expected
    assert deadline is not None and deadline.tzinfo is not None


@pytest.mark.parametrize("text", ["2026-11-26T10:00:00", "2026-11-26", "tomorrow", "10:00:00Z"])
def test_deadline_must_be_a_timezone_aware_rfc3339_time(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        request(deadline=text)
    assert error_locations(info.value) == {"deadline"}


@pytest.mark.parametrize("value", [1732600000, "1732600000"], ids=["number", "digits"])
def test_deadline_as_unix_seconds_is_not_rfc3339(value: Any) -> None:
    # The published JSON Schema says {"type": "string", "format": "date-time"}.
    with pytest.raises(ValidationError) as info:
        request(deadline=value)
    assert error_locations(info.value) == {"deadline"}


def test_request_is_frozen() -> None:
    parsed = request()
    with pytest.raises(ValidationError):
        parsed.action = "other"  # type: ignore[misc]
