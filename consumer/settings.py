"""Engine settings, read from the environment. The names are part of the contract."""

from __future__ import annotations

import ssl
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actions import ActionConfig, RetryPolicy, parse_networks


def _env(name: str, default: Any, description: str, **kwargs: Any) -> Any:
    return Field(
        default=default,
        validation_alias=AliasChoices(name),
        description=description,
        json_schema_extra={"env": name},
        **kwargs,
    )


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    # Kafka
    bootstrap_servers: str = _env(
        "KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", "Kafka brokers, comma-separated."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = _env(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = _env(
        "KAFKA_SASL_MECHANISM", None, "SASL mechanism (with SASL_* protocols)."
    )
    sasl_username: str | None = _env("KAFKA_SASL_USERNAME", None, "SASL user name.")
    sasl_password: SecretStr | None = _env("KAFKA_SASL_PASSWORD", None, "SASL password.")
    ssl_cafile: str | None = _env(
        "KAFKA_SSL_CAFILE", None, "CA bundle that signs the brokers' certificates (SSL, SASL_SSL)."
    )
    requests_topic: str = _env(
        "EXECUTION_REQUESTS_TOPIC", "execution.requests", "Topic the engine consumes requests from."
    )
    results_topic: str = _env(
        "EXECUTION_RESULTS_TOPIC", "execution.results", "Topic for result envelopes."
    )
    logs_topic: str = _env("EXECUTION_LOGS_TOPIC", "execution.logs", "Topic for log events.")
    dead_letter_topic: str = _env(
        "EXECUTION_DEAD_LETTER_TOPIC",
        "execution.dead-letter",
        "Topic for records the engine cannot understand (original bytes).",
    )
    group_id: str = _env("EXECUTION_GROUP_ID", "execution-engine", "Kafka consumer group.")
    create_topics: bool = _env(
        "EXECUTION_CREATE_TOPICS", True, "Create the four topics at start-up when missing."
    )
    topic_partitions: int = _env(
        "EXECUTION_TOPIC_PARTITIONS", 6, "Partitions for topics the engine creates.", ge=1
    )
    topic_replication: int = _env(
        "EXECUTION_TOPIC_REPLICATION", 1, "Replication factor for topics it creates.", ge=1
    )

    # Flow control
    max_in_flight: int = _env(
        "EXECUTION_MAX_IN_FLIGHT", 200, "Actions running at once, across all keys.", ge=1
    )
    max_buffered: int = _env(
        "EXECUTION_MAX_BUFFERED",
        2000,
        "Records held (queued or running) before the engine pauses fetching.",
        ge=1,
    )
    max_record_bytes: int = _env(
        "EXECUTION_MAX_RECORD_BYTES",
        1_048_576,
        "Larger request records get `payload_too_large`.",
        ge=64,
    )
    commit_interval_s: float = _env(
        "EXECUTION_COMMIT_INTERVAL_S", 0.5, "How often completed offsets are committed.", gt=0
    )
    drain_timeout_s: float = _env(
        "EXECUTION_DRAIN_TIMEOUT_S",
        20.0,
        "On shutdown or revoke, how long running actions may finish before they are abandoned "
        "(abandoned records are not committed, so they run again).",
        gt=0,
    )
    session_timeout_ms: int = _env(
        "EXECUTION_SESSION_TIMEOUT_MS", 30_000, "Consumer group session timeout.", ge=6000
    )
    rebalance_timeout_ms: int = _env(
        "EXECUTION_REBALANCE_TIMEOUT_MS",
        60_000,
        "How long the group waits for members during a rebalance; keep above the drain timeout.",
        ge=10_000,
    )

    # Actions
    action_timeout_s: float = _env(
        "EXECUTION_ACTION_TIMEOUT_S", 30.0, "Time limit of one action attempt.", gt=0
    )
    retry_max_attempts: int = _env(
        "EXECUTION_RETRY_MAX_ATTEMPTS", 5, "Attempts of a retryable failure, first included.", ge=1
    )
    retry_base_delay_s: float = _env(
        "EXECUTION_RETRY_BASE_DELAY_S", 0.2, "First backoff ceiling (full jitter).", ge=0
    )
    retry_max_delay_s: float = _env(
        "EXECUTION_RETRY_MAX_DELAY_S", 5.0, "Backoff ceiling cap.", ge=0
    )
    retry_budget_s: float = _env(
        "EXECUTION_RETRY_BUDGET_S", 30.0, "No retry starts later than this after the first.", ge=0
    )
    retry_after_max_s: float = _env(
        "EXECUTION_RETRY_AFTER_MAX_S", 30.0, "Longest `Retry-After` honoured.", ge=0
    )
    slack_api_url: str = _env("SLACK_API_URL", "https://slack.com/api", "Slack Web API base URL.")
    google_sheets_api_url: str = _env(
        "GOOGLE_SHEETS_API_URL", "https://sheets.googleapis.com", "Google Sheets API base URL."
    )
    http_allowed_networks: str = _env(
        "EXECUTION_HTTP_ALLOWED_NETWORKS",
        "",
        "CIDRs `http_request` may reach although not global (e.g. 127.0.0.0/8).",
    )
    http_max_response_bytes: int = _env(
        "EXECUTION_HTTP_MAX_RESPONSE_BYTES", 262_144, "`http_request` response body cap.", ge=0
    )

    # Vault Engine
    vault_url: str = _env("VAULT_URL", "http://localhost:8200", "Vault Engine base URL.")
    vault_token: SecretStr | None = _env(
        "VAULT_TOKEN", None, "Sent to the Vault Engine as `Authorization: Bearer`."
    )
    vault_timeout_s: float = _env("VAULT_TIMEOUT_S", 5.0, "Vault request timeout.", gt=0)
    vault_cache_ttl_s: float = _env(
        "VAULT_CACHE_TTL_S", 300.0, "How long a fetched credential is reused.", ge=0
    )
    vault_cache_max_entries: int = _env(
        "VAULT_CACHE_MAX_ENTRIES", 10_000, "Credential cache size (least recently used out).", ge=1
    )

    # Operations
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

    @field_validator("http_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection and security options shared by every aiokafka client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext = create_ssl_context(cafile=self.ssl_cafile)
        return context

    def action_config(self) -> ActionConfig:
        return ActionConfig(
            slack_api_url=self.slack_api_url,
            google_sheets_api_url=self.google_sheets_api_url,
            http_max_response_bytes=self.http_max_response_bytes,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            base_delay_s=self.retry_base_delay_s,
            max_delay_s=self.retry_max_delay_s,
            budget_s=self.retry_budget_s,
            max_retry_after_s=self.retry_after_max_s,
        )


def settings_help() -> str:
    """Every setting, its default and meaning: the `--help` epilog."""
    lines = ["settings (environment variables):"]
    for field in EngineSettings.model_fields.values():
        extra = field.json_schema_extra
        name = extra["env"] if isinstance(extra, dict) else "?"
        default = "(unset)" if field.default is None else repr(field.default)
        lines.append(f"  {name:<34} default {default}\n      {field.description}")
    return "\n".join(lines)
