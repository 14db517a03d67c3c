"""consumer/schema_export.py: the committed JSON Schemas match the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from consumer.cli.schemas import SCHEMA_DIR, build_schemas, stale_schemas, write_schemas

COMMITTED = sorted(p for p in SCHEMA_DIR.rglob("*.schema.json"))


def test_committed_schemas_are_not_stale() -> None:
    assert stale_schemas() == []


def test_every_generated_schema_is_committed() -> None:
    committed = {path.relative_to(SCHEMA_DIR).as_posix() for path in COMMITTED}
    assert set(build_schemas()) <= committed
    assert {
        "execution-request.schema.json",
        "result-envelope.schema.json",
        "log-event.schema.json",
        "params/send_slack.schema.json",
        "params/create_sheet.schema.json",
        "params/http_request.schema.json",
        "params/log_message.schema.json",
    } <= committed


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_file_is_json_schema(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    assert document["$schema"].startswith("https://json-schema.org/")
    assert isinstance(document["title"], str) and document["title"]
    assert "type" in document or "properties" in document


def test_stale_schemas_detects_a_difference(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    assert stale_schemas(tmp_path) == []
    (tmp_path / "log-event.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "params" / "send_slack.schema.json").unlink()
    assert sorted(stale_schemas(tmp_path)) == [
        "log-event.schema.json",
        "params/send_slack.schema.json",
    ]


def test_request_schema_forbids_unknown_fields() -> None:
    document = build_schemas()["execution-request.schema.json"]
    assert document["additionalProperties"] is False
    assert set(document["required"]) == {"action", "project", "params"}
