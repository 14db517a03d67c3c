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
    max_in_flight_per_project: int | None = _env(
        "EXECUTION_MAX_IN_FLIGHT_PER_PROJECT",
        None,
        "Actions of one project running at once (default: 90 % of EXECUTION_MAX_IN_FLIGHT, "
        "so slots stay free for other projects; equal to it or more: no per-project share, "
        "first come first served). Free slots go to projects with work waiting in turn.",
        ge=1,
    )

    @property
    def project_in_flight_limit(self) -> int:
        """`max_in_flight_per_project`, or its default: 90 % of `max_in_flight` (at least 1)."""
        if self.max_in_flight_per_project is not None:
            return min(self.max_in_flight_per_project, self.max_in_flight)
        return max(1, self.max_in_flight * 9 // 10)
