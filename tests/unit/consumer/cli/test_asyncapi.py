"""consumer/asyncapi.py: the committed AsyncAPI 3.0 document is valid, whole and current."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from consumer.cli.asyncapi import build_asyncapi
from consumer.cli.schemas import ASYNCAPI_FILE, SCHEMA_DIR, render
from consumer.settings import EngineSettings
from schemas import ErrorCode

SPEC_SCHEMA = json.loads(
    (Path(__file__).parents[3] / "asyncapi" / "asyncapi-3.0.0.schema.json").read_text("utf-8")
)
COMMITTED = json.loads((SCHEMA_DIR / ASYNCAPI_FILE).read_text("utf-8"))


def spec_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SPEC_SCHEMA)
    return [error.message for error in validator.iter_errors(document)]


def test_the_committed_document_is_valid_asyncapi_3() -> None:
    assert COMMITTED["asyncapi"] == "3.0.0"
    assert spec_errors(COMMITTED) == []


def test_the_committed_document_is_what_the_models_generate() -> None:
    assert (SCHEMA_DIR / ASYNCAPI_FILE).read_text("utf-8") == render(build_asyncapi())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("operations", "publishLogs", "action"), "publish"),  # AsyncAPI 2 wording
        (("components", "schemas", "LogEvent", "type"), 5),
        (("channels", "logs", "bindings", "kafka", "partitions"), "six"),
    ],
)
def test_the_validation_catches_a_broken_document(path: tuple[str, ...], value: Any) -> None:
    broken = copy.deepcopy(COMMITTED)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert spec_errors(broken)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [r for k, v in node.items() for r in ([v] if k == "$ref" else _refs(v))]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def test_every_reference_resolves_inside_the_document() -> None:
    refs = _refs(COMMITTED)
    assert len(refs) > 10
    for ref in refs:
        assert ref.startswith("#/"), ref
        node: Any = COMMITTED
        for part in ref[2:].split("/"):
            node = node[part]
        assert isinstance(node, dict)


def test_the_four_topics_and_their_settings() -> None:
    defaults = EngineSettings.model_fields
    addresses = {name: channel["address"] for name, channel in COMMITTED["channels"].items()}
    assert addresses == {
        "requests": defaults["requests_topic"].default,
        "results": defaults["results_topic"].default,
        "logs": defaults["logs_topic"].default,
        "deadLetter": defaults["dead_letter_topic"].default,
    }
    assert "EXECUTION_RESULTS_TOPIC" in COMMITTED["channels"]["results"]["description"]
    actions = {op["action"] for op in COMMITTED["operations"].values()}
    assert actions == {"receive", "send"}


def test_payloads_are_the_models() -> None:
    schemas = COMMITTED["components"]["schemas"]
    assert schemas["ErrorCode"]["enum"] == [code.value for code in ErrorCode]
    assert schemas["ExecutionRequest"]["additionalProperties"] is False
    assert set(schemas["ExecutionRequest"]["required"]) == {"action", "project", "params"}
    assert {"SendSlackParams", "HttpRequestParams", "CreateSheetParams"} <= set(schemas)
    envelope = schemas["ResultEnvelope"]["properties"]
    assert envelope["error"]["anyOf"][0] == {"$ref": "#/components/schemas/ErrorInfo"}
