"""The settings the ops room reads: the ops endpoints, tracing, the log level."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer.broker.settings import env_field as _env


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )
    http_enabled: bool = _env(
        "EXECUTION_HTTP_ENABLED", True, "Serve /healthz, /readyz and /metrics."
    )
    http_host: str = _env("EXECUTION_HTTP_HOST", "0.0.0.0", "Address the ops endpoints listen on.")
    http_port: int = _env(
        "EXECUTION_HTTP_PORT",
        8080,
        "Port of /healthz, /readyz and /metrics (0: any free port).",
        ge=0,
        le=65535,
    )
    otlp_endpoint: str | None = _env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        None,
        "OTLP/HTTP base URL: one span per executed action (needs the `otel` extra; unset: off).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = _env(
        "EXECUTION_LOG_LEVEL", "info", "Lowest level logged (stdout and logs topic)."
    )
