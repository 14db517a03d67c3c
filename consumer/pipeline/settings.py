"""The settings the pipeline reads: the limits intake judges a record by (the reply topics a
request may name among them), the scheduler's."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer.broker.settings import env_field as _env


class IntakeLimitSettings(BaseSettings):
    """The limits intake judges a record by (`IntakeLimits`): the engine's and `replay`'s."""

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    max_record_bytes: int = _env(
        "EXECUTION_MAX_RECORD_BYTES",
        1_048_576,
        "Larger request records get `payload_too_large`.",
        ge=64,
    )
    max_json_depth: int = _env(
        "EXECUTION_MAX_JSON_DEPTH",
        64,
        "Request records nested deeper (objects/arrays) get `invalid_request`.",
        ge=2,
        le=200,
    )
    max_params_bytes: int = _env(
        "EXECUTION_MAX_PARAMS_BYTES",
        262_144,
        "Requests whose `params` (as compact JSON) are larger get `payload_too_large`.",
        ge=2,
    )
    reply_topics: str = _env(
        "EXECUTION_REPLY_TOPICS",
        "",
        "Topics a request may name as its reply topic (`reply-topic`, `kafka_replyTopic`): "
        "comma-separated names, or prefixes ending in `*`. Empty: none; a request naming one "
        "gets `invalid_request`.",
    )


class SchedulerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    max_in_flight: int = _env(
        "EXECUTION_MAX_IN_FLIGHT", 200, "Actions running at once, across all keys.", ge=1
    )
