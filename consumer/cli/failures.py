"""A command's anticipated failures, each as one line naming the cause and the setting to change.

Exit 2 for configuration (a setting's bad value, refused credentials, a missing topic), 1 for
the machine's state at run time (a broker that does not answer, a port in use). Anything else is
a bug and keeps its traceback; `--debug` keeps it for these too.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import annotated_types
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from consumer.broker.metadata import MissingTopic
from consumer.broker.preflight import KafkaSettingsRefused, check_kafka_settings
from consumer.broker.settings import KafkaClientSettings
from consumer.localkafka.machine import LocalKafkaError

CONFIGURATION = 2
RUNTIME = 1

# Errors whose input is a number, a flag or a choice: safe to echo. Free text (a URL, a token
# pasted in the wrong variable) is named, never echoed.
_ECHOED = {
    "int_parsing",
    "int_from_float",
    "float_parsing",
    "bool_parsing",
    "literal_error",
    "enum",
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "finite_number",
}
_TOPICS = {
    "requests_topic": "EXECUTION_REQUESTS_TOPIC",
    "results_topic": "EXECUTION_RESULTS_TOPIC",
    "logs_topic": "EXECUTION_LOGS_TOPIC",
    "dead_letter_topic": "EXECUTION_DEAD_LETTER_TOPIC",
}


@dataclass(frozen=True)
class Failure:
    lines: list[str]
    exit_code: int


def explain(exc: BaseException, settings: Any, schema: type[BaseSettings] | None) -> Failure | None:
    """One line per cause for an anticipated failure; None for anything else."""
    if isinstance(exc, ValidationError) and schema is not None:
        return Failure(invalid_settings(exc, schema), CONFIGURATION)
    if isinstance(exc, KafkaSettingsRefused):
        return Failure([str(exc)], CONFIGURATION)
    if isinstance(exc, MissingTopic):
        return Failure([missing_topic(exc.topic, settings)], CONFIGURATION)
    if isinstance(exc, KafkaConnectionError) and isinstance(settings, KafkaClientSettings):
        return _unreachable(settings)
    if isinstance(exc, LocalKafkaError):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Failure(
            [
                f"the local Kafka cannot run: {first} (set KAFKA_BOOTSTRAP_SERVERS to use "
                "another broker; --debug shows the broker's log)"
            ],
            RUNTIME,
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return Failure(
            [
                f"the ops endpoints' address is in use ({exc.strerror or exc}): set "
                "EXECUTION_HTTP_PORT (or EXECUTION_HTTP_HOST) to a free one"
            ],
            RUNTIME,
        )
    return None


def invalid_settings(exc: ValidationError, schema: type[BaseSettings]) -> list[str]:
    by_env = {_env_name(info): info for info in schema.model_fields.values()}
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message.replace("Input should be", "should be")
        if not error["loc"]:
            lines.append(f"invalid settings: {message}")
            continue
        name = str(error["loc"][0])
        shown = f"={error['input']!r}" if error["type"] in _ECHOED else ""
        accepted = _accepted(by_env[name]) if name in by_env else ""
        hint = f" (accepted: {accepted})" if accepted and error["type"] != "literal_error" else ""
        lines.append(f"invalid setting {name}{shown}: {message}{hint}")
    return lines


def missing_topic(topic: str, settings: Any) -> str:
    names = [env for field, env in _TOPICS.items() if getattr(settings, field, None) == topic]
    setting = f" ({', '.join(names)})" if names else ""
    return (
        f"topic {topic!r}{setting} does not exist: create the engine's topics with "
        "`execution-engine topics create`, or set the variable to an existing one"
    )


def _unreachable(settings: KafkaClientSettings) -> Failure:
    """ "Unable to bootstrap" is aiokafka's words for a refused password too: the preflight
    check tells the two apart."""
    try:
        asyncio.run(check_kafka_settings(settings, timeout_s=5.0))
    except KafkaSettingsRefused as refused:
        return Failure([str(refused)], CONFIGURATION)
    return Failure(
        [
            f"cannot reach Kafka at {settings.bootstrap_servers}: check "
            "KAFKA_BOOTSTRAP_SERVERS (and KAFKA_SECURITY_PROTOCOL), and that the brokers run"
        ],
        RUNTIME,
    )


def _env_name(info: FieldInfo) -> str:
    extra = info.json_schema_extra
    return str(extra["env"]) if isinstance(extra, dict) else ""


def _accepted(info: FieldInfo) -> str:
    """What a setting takes, from its type and bounds."""
    kind = info.annotation
    if get_origin(kind) is Literal:
        return ", ".join(repr(choice) for choice in get_args(kind))
    names = {int: "an integer", float: "a number", bool: "true or false"}
    if kind not in names:
        return ""
    bounds = []
    for item in info.metadata:
        for attribute, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(item, attribute, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                bounds.append(f"{sign} {value}")
    return " ".join([names[kind], *bounds]) if bounds else names[kind]
