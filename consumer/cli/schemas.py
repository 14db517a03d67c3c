"""`execution-engine schemas`: the JSON Schema files in `schemas/json/`, generated from the
pydantic models (never by hand), and the AsyncAPI document of the four topics beside them
(`asyncapi.json`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import schemas
from actions.registry import ActionRegistry, default_registry
from consumer.cli.asyncapi import build_asyncapi
from schemas import ExecutionRequest, LogEvent, ResultEnvelope

SCHEMA_DIR = Path(schemas.__file__).parent / "json"
ASYNCAPI_FILE = "asyncapi.json"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _document(model: type[Any], schema_id: str, mode: str = "validation") -> dict[str, Any]:
    schema: dict[str, Any] = {"$schema": _DIALECT, "$id": schema_id}
    schema.update(model.model_json_schema(mode=mode))
    return schema


def build_schemas(registry: ActionRegistry | None = None) -> dict[str, dict[str, Any]]:
    """File name (relative to the schema dir) -> JSON Schema document."""
    documents = {
        "execution-request.schema.json": _document(ExecutionRequest, "execution-request"),
        "result-envelope.schema.json": _document(
            ResultEnvelope, "result-envelope", "serialization"
        ),
        "log-event.schema.json": _document(LogEvent, "log-event"),
    }
    for action in registry or default_registry():
        document = _document(action.params_model, f"params/{action.name}", "validation")
        document["title"] = f"{action.name} params"
        if action.description:
            document["description"] = action.description
        documents[f"params/{action.name}.schema.json"] = document
    return documents


def build_documents(registry: ActionRegistry | None = None) -> dict[str, dict[str, Any]]:
    """Every generated file: the JSON Schemas and the AsyncAPI document."""
    return {**build_schemas(registry), ASYNCAPI_FILE: build_asyncapi(registry)}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(
    directory: Path = SCHEMA_DIR, registry: ActionRegistry | None = None
) -> list[Path]:
    written = []
    for name, document in build_documents(registry).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(
    directory: Path = SCHEMA_DIR, registry: ActionRegistry | None = None
) -> list[str]:
    """Files that are missing or differ from what the models generate now."""
    stale = []
    for name, document in build_documents(registry).items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != render(document):
            stale.append(name)
    return stale


def command(args: argparse.Namespace, settings: None) -> int:
    out = SCHEMA_DIR if args.out is None else Path(args.out)
    if args.check:
        stale = stale_schemas(out)
        for name in stale:
            print(f"stale: {name} (run `execution-engine schemas`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_schemas(out):
        print(path)
    return 0
