"""The AsyncAPI 3.0 document of the engine's four topics, generated from the pydantic models.

One source of truth: the message payloads are the same models the engine validates with (the
JSON Schema files beside it come from them too), the topic names and defaults are the
settings'. Schemas live under components/schemas with references between them, so the
document stands alone.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic.json_schema import models_json_schema

from actions.registry import ActionRegistry, default_registry
from consumer.settings import EngineSettings
from schemas import ExecutionRequest, LogEvent, ResultEnvelope
from schemas.errors import ErrorCode

ASYNCAPI_VERSION = "3.0.0"
_KAFKA_BINDING = "0.5.0"
_REF = "#/components/schemas/{model}"

_TRACEPARENT = {
    "type": "string",
    "description": "W3C trace context; carried onto the envelope and the log events.",
    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
}


def _field(name: str) -> tuple[str, Any]:
    """A setting's env var name and default."""
    info = EngineSettings.model_fields[name]
    extra = info.json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["env"]), info.default


def _package_version() -> str:
    try:
        return version("puraify-execution-engine")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def _schemas(registry: ActionRegistry) -> tuple[dict[str, Any], dict[str, str]]:
    """components/schemas, and the component name of each action's params model."""
    models: list[tuple[Any, Any]] = [
        (ExecutionRequest, "validation"),
        (ResultEnvelope, "serialization"),
        (LogEvent, "validation"),
    ]
    actions = list(registry)
    models += [(action.params_model, "validation") for action in actions]
    refs, top = models_json_schema(models, ref_template=_REF)
    components: dict[str, Any] = top["$defs"]
    params = {}
    for action in actions:
        ref = refs[(action.params_model, "validation")]["$ref"]
        name = ref.rsplit("/", 1)[1]
        components[name].setdefault("description", action.description or "")
        params[action.name] = name
    return components, params


def _channel(setting: str, summary: str, message: str) -> dict[str, Any]:
    env, topic = _field(setting)
    return {
        "address": topic,
        "title": topic,
        "description": f"{summary} Topic name: `{env}` (default `{topic}`).",
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        "bindings": {"kafka": {"topic": topic, "bindingVersion": _KAFKA_BINDING}},
    }


def _message(
    name: str, summary: str, payload: dict[str, Any], key: str, headers: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "headers": {"type": "object", "properties": headers},
        "payload": payload,
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": key},
                "bindingVersion": _KAFKA_BINDING,
            }
        },
    }


def _operation(action: str, channel: str, message: str, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
    }


def build_asyncapi(registry: ActionRegistry | None = None) -> dict[str, Any]:
    registry = registry or default_registry()
    schemas, params = _schemas(registry)
    servers_env, bootstrap = _field("bootstrap_servers")
    group_env, group = _field("group_id")
    actions = ", ".join(f"`{name}` (params: `{params[name]}`)" for name in sorted(params))
    codes = ", ".join(f"`{code.value}`" for code in ErrorCode)
    request_id_header = {"type": "string", "description": "Correlation id (echoed)."}
    dead_letter_headers = {
        "error-code": {
            "type": "string",
            "enum": ["invalid_json", "invalid_request", "payload_too_large"],
        },
        "error-message": {"type": "string"},
        "source-topic": {"type": "string"},
        "source-partition": {"type": "string", "pattern": "^[0-9]+$"},
        "source-offset": {"type": "string", "pattern": "^[0-9]+$"},
        "dropped-headers": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": (
                "Present when the record's own headers were left out to fit the topic: how "
                "many. Otherwise they follow the engine's; one named like an engine header, or "
                "starting with `original-`, has `original-` put in front."
            ),
        },
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "PURAIFY Execution Engine",
            "version": _package_version(),
            "description": (
                "Consumes execution requests, runs the named action with credentials from the "
                "Vault Engine, and publishes exactly one result envelope per consumed request "
                "record (as a read_committed consumer sees it), plus log events. Records it "
                f"cannot understand also go, unchanged, to the dead-letter topic. Actions: "
                f"{actions}. Error codes: {codes}."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": bootstrap,
                "protocol": "kafka",
                "description": f"The Kafka cluster: `{servers_env}` (default `{bootstrap}`).",
            }
        },
        "channels": {
            "requests": _channel("requests_topic", "Execution requests, in.", "ExecutionRequest"),
            "results": _channel(
                "results_topic", "One result envelope per request record.", "ResultEnvelope"
            ),
            "logs": _channel("logs_topic", "Structured log events.", "LogEvent"),
            "deadLetter": _channel(
                "dead_letter_topic",
                "Request records the engine could not understand, byte for byte.",
                "DeadLetter",
            ),
        },
        "operations": {
            "consumeRequests": {
                **_operation(
                    "receive",
                    "requests",
                    "ExecutionRequest",
                    "The engine consumes requests; same Kafka key, offset order.",
                ),
                "description": f"Consumer group `{group_env}` (default `{group}`).",
                "bindings": {
                    "kafka": {
                        "groupId": {"type": "string", "default": group},
                        "bindingVersion": _KAFKA_BINDING,
                    }
                },
            },
            "publishResults": _operation(
                "send", "results", "ResultEnvelope", "One envelope per consumed request record."
            ),
            "publishLogs": _operation("send", "logs", "LogEvent", "Log events."),
            "publishDeadLetters": _operation(
                "send",
                "deadLetter",
                "DeadLetter",
                "invalid_json, invalid_request and payload_too_large records.",
            ),
        },
        "components": {
            "messages": {
                "ExecutionRequest": _message(
                    "ExecutionRequest",
                    "Run one action for one project.",
                    {"$ref": _REF.format(model="ExecutionRequest")},
                    "Ordering key (the producer's choice; may be empty).",
                    {"request-id": request_id_header, "traceparent": _TRACEPARENT},
                ),
                "ResultEnvelope": _message(
                    "ResultEnvelope",
                    "The outcome of one request record.",
                    {"$ref": _REF.format(model="ResultEnvelope")},
                    "The request_id.",
                    {"request-id": request_id_header, "traceparent": _TRACEPARENT},
                ),
                "LogEvent": _message(
                    "LogEvent",
                    "One structured log event.",
                    {"$ref": _REF.format(model="LogEvent")},
                    "The request_id (empty for engine-level events).",
                    {},
                ),
                "DeadLetter": {
                    **_message(
                        "DeadLetter",
                        "The original request record, unchanged.",
                        {"description": "The original bytes, unchanged (any content)."},
                        "The original key.",
                        dead_letter_headers,
                    ),
                    "contentType": "application/octet-stream",
                },
            },
            "schemas": schemas,
        },
    }
