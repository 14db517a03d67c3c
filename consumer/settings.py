"""Engine settings, read from the environment. The names are part of the contract.

Three layers, each what some command reads, so a bad variable stops only the commands that use
it: `KafkaSettings` (consumer/broker/settings.py: where the topics are, how to reach them; `send`,
`tail`, `topics`), `IntakeSettings` (plus the limits a record is judged by; `replay`, which must
judge records as the engine does) and `EngineSettings` (everything; `run`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

from pydantic import PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actions import (
    ActionConfig,
    ActionRegistry,
    CircuitBreakers,
    Rate,
    RateLimiter,
    RetryPolicy,
    default_registry,
    parse_networks,
)
from actions.circuit import CircuitStore
from actions.ratelimit import RateLimitSpec, RateStore
from consumer.broker.settings import KafkaSettings, describe_settings, env_field
from consumer.credentials.hashicorp import check_mount, check_path_template
from consumer.state.settings import StateSettings

_env = env_field


class IntakeSettings(KafkaSettings):
    """The Kafka settings and the limits intake judges a record by (`IntakeLimits`)."""

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


class EngineSettings(StateSettings, IntakeSettings):
    # An invalid value is named, never echoed: it may be a password or a URL holding one.
    model_config = SettingsConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        case_sensitive=True,
        hide_input_in_errors=True,
    )
    # The rate limits the actions declare (`Action.rate_limits`), by setting name, as read
    # from the environment when these settings were (see `_read_rate_limits`).
    _rate_limits: dict[str, str] = PrivateAttr(default_factory=dict)

    # Flow control
    max_in_flight: int = _env(
        "EXECUTION_MAX_IN_FLIGHT", 200, "Actions running at once, across all keys.", ge=1
    )
    max_buffered: int = _env(
        "EXECUTION_MAX_BUFFERED",
        # Finished records wait here for their partition's transaction: at 2,000 the intake
        # paused every few hundred records per partition until a commit freed room
        # (pass-through 5-8k/s; 10,000: 9-11k/s and less CPU, +15 MB peak RSS; bench/).
        10_000,
        "Records held (queued, running, or finished and waiting for their transaction) before "
        "the engine pauses fetching.",
        ge=1,
    )
    exactly_once: bool = _env(
        "EXECUTION_EXACTLY_ONCE",
        True,
        "Publish envelopes and commit offsets in one Kafka transaction per block of input "
        "partitions (false: at-least-once, a crash can repeat an envelope).",
    )
    commit_interval_s: float = _env(
        "EXECUTION_COMMIT_INTERVAL_S",
        0.1,
        "How long a block of partitions gathers finished envelopes, from the first, before it "
        "publishes them and commits (one transaction); the latency floor of an envelope.",
        gt=0,
    )
    transaction_max_records: int = _env(
        "EXECUTION_TRANSACTION_MAX_RECORDS",
        1000,
        "A block of partitions commits early once this many finished records wait.",
        ge=1,
    )
    transaction_timeout_ms: int = _env(
        "EXECUTION_TRANSACTION_TIMEOUT_MS",
        60_000,
        "The broker aborts a transaction open longer than this (a hung engine holds back "
        "read_committed readers of the results topic at most this long).",
        ge=1000,
    )
    max_uncommitted_span: int = _env(
        "EXECUTION_MAX_UNCOMMITTED_SPAN",
        100_000,
        "Records of one partition fetched past its oldest unfinished one before fetching that "
        "partition pauses (a stuck record bounds memory and commit metadata).",
        ge=1,
    )
    drain_timeout_s: float = _env(
        "EXECUTION_DRAIN_TIMEOUT_S",
        20.0,
        "On shutdown or revoke, how long running actions may finish before they are abandoned "
        "(abandoned records are not committed, so they run again).",
        gt=0,
    )
    partition_blocks: int = _env(
        "EXECUTION_PARTITION_BLOCKS",
        32,
        "Input partition p belongs to block p mod this; a block moves between engines whole "
        "and has one transactional producer, so producers and connections do not grow with "
        "partitions. At most this many engines share one topic's work. Every engine of a group "
        "must use the same value (an engine with another cannot join the group).",
        ge=1,
        le=4096,
    )
    session_timeout_ms: int = _env(
        "EXECUTION_SESSION_TIMEOUT_MS",
        30_000,
        "Consumer group session timeout: how long a crashed engine's partitions wait before "
        "another engine takes them, and (with EXECUTION_INSTANCE_ID) how long a restarting "
        "engine may be away and take its partitions back without a rebalance.",
        ge=6000,
    )
    instance_id: str = _env(
        "EXECUTION_INSTANCE_ID",
        "",
        "Static group membership (KIP-345): a name unique in the group and stable across "
        "restarts (the Kubernetes pod name of a StatefulSet). A restarted engine takes its "
        "partitions back within the session timeout without a rebalance. Empty: dynamic "
        "membership.",
        max_length=249,
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
    sheets_quota_wait_s: float = _env(
        "GOOGLE_SHEETS_QUOTA_WAIT_S",
        65.0,
        "How long one `create_sheet` may wait out Google's per-minute quota (429) in all; the "
        "request's deadline bounds it too.",
        ge=0,
    )
    circuit_failure_threshold: int = _env(
        "EXECUTION_CIRCUIT_FAILURE_THRESHOLD",
        5,
        "Consecutive upstream failures (5xx, timeouts, connection errors) that open an "
        "upstream's circuit; 0 turns circuit breakers off.",
        ge=0,
    )
    circuit_open_s: float = _env(
        "EXECUTION_CIRCUIT_OPEN_S",
        30.0,
        "How long an open circuit stays open before one probe call is let through.",
        gt=0,
    )
    circuit_when_open: Literal["fail_fast", "wait"] = _env(
        "EXECUTION_CIRCUIT_WHEN_OPEN",
        "fail_fast",
        "`fail_fast`: calls to an open circuit end `upstream_unavailable` at once; `wait`: they "
        "wait (within retry budget and deadline) for it to close.",
    )
    notion_api_url: str = _env("NOTION_API_URL", "https://api.notion.com", "Notion API base URL.")
    notion_version: str = _env(
        "NOTION_VERSION", "2025-09-03", "Sent as `Notion-Version` (the API version we speak)."
    )
    notion_retry_after_max_s: float = _env(
        "NOTION_RETRY_AFTER_MAX_S",
        120.0,
        "Longest Notion `Retry-After` honoured for a request without a deadline (with one, "
        "up to the deadline).",
        ge=0,
    )
    smtp_host: str = _env("SMTP_HOST", "localhost", "SMTP server `send_email` submits to.")
    smtp_port: int = _env("SMTP_PORT", 587, "SMTP server port.", ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = _env(
        "SMTP_SECURITY",
        "starttls",
        "`starttls` (required upgrade), `tls` (implicit TLS, usually port 465) or `none`.",
    )
    smtp_from: str | None = _env(
        "SMTP_FROM", None, "Default sender of `send_email` when the request names none."
    )
    smtp_timeout_s: float = _env("SMTP_TIMEOUT_S", 30.0, "SMTP connection and reply timeout.", gt=0)
    http_allowed_networks: str = _env(
        "EXECUTION_HTTP_ALLOWED_NETWORKS",
        "",
        "CIDRs `http_request` may reach although not global (e.g. 127.0.0.0/8).",
    )
    http_max_response_bytes: int = _env(
        "EXECUTION_HTTP_MAX_RESPONSE_BYTES", 262_144, "`http_request` body cap (decoded).", ge=0
    )
    http_max_content_encodings: int = _env(
        "EXECUTION_HTTP_MAX_CONTENT_ENCODINGS", 1, "Content-encoding layers decoded.", ge=0, le=4
    )

    # Credentials (the Vault Engine, HashiCorp Vault / OpenBao, or the environment)
    vault_backend: Literal["engine", "hashicorp", "env"] = _env(
        "VAULT_BACKEND",
        "engine",
        "Credential store: `engine` (the PURAIFY Vault Engine), `hashicorp` (HashiCorp Vault or "
        "OpenBao KV v2), `env` (`PURAIFY_CRED_<PROJECT>__<SERVICE>` variables, local use).",
    )
    vault_url: str = _env(
        "VAULT_URL", "http://localhost:8200", "Vault Engine (or HashiCorp Vault) base URL."
    )
    vault_token: SecretStr | None = _env(
        "VAULT_TOKEN",
        None,
        "The engine's own Vault token: `Authorization: Bearer` to the Vault Engine, "
        "`X-Vault-Token` to HashiCorp Vault.",
    )
    vault_token_file: str | None = _env(
        "VAULT_TOKEN_FILE",
        None,
        "hashicorp: file holding the token (read at each fetch, e.g. a Vault Agent sink), "
        "when `VAULT_TOKEN` is unset.",
    )
    vault_kv_mount: str = _env(
        "VAULT_KV_MOUNT", "secret", "hashicorp: mount path of the KV v2 secrets engine."
    )
    vault_kv_path_template: str = _env(
        "VAULT_KV_PATH_TEMPLATE",
        "puraify/{project}/{service}",
        "hashicorp: secret path per (project, service) under the mount.",
    )
    vault_kv_field: str = _env(
        "VAULT_KV_FIELD",
        "token",
        "hashicorp: the field of the secret's `data.data` that holds the credential.",
        min_length=1,
    )
    vault_namespace: str | None = _env(
        "VAULT_NAMESPACE",
        None,
        "hashicorp: sent as `X-Vault-Namespace` (Vault Enterprise / OpenBao namespaces).",
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

    @model_validator(mode="after")
    def _read_rate_limits(self) -> EngineSettings:
        """Every rate limit an installed action declares is a setting of its own name."""
        self._rate_limits = {
            spec.env: _rate_setting(spec) for spec in default_registry().rate_limits()
        }
        return self

    @field_validator("vault_kv_mount")
    @classmethod
    def _valid_mount(cls, value: str) -> str:
        return check_mount(value)

    @field_validator("vault_kv_path_template")
    @classmethod
    def _valid_template(cls, value: str) -> str:
        return check_path_template(value)

    @model_validator(mode="after")
    def _hashicorp_needs_a_token(self) -> EngineSettings:
        if self.vault_backend == "hashicorp" and not (self.vault_token or self.vault_token_file):
            raise ValueError("VAULT_BACKEND=hashicorp needs VAULT_TOKEN or VAULT_TOKEN_FILE")
        return self

    @field_validator("http_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    def action_config(self) -> ActionConfig:
        return ActionConfig(
            slack_api_url=self.slack_api_url,
            google_sheets_api_url=self.google_sheets_api_url,
            http_max_response_bytes=self.http_max_response_bytes,
            http_max_content_encodings=self.http_max_content_encodings,
            notion_api_url=self.notion_api_url,
            notion_version=self.notion_version,
            notion_retry_after_max_s=self.notion_retry_after_max_s,
            sheets_quota_wait_s=self.sheets_quota_wait_s,
            smtp_host=self.smtp_host,
            smtp_port=self.smtp_port,
            smtp_security=self.smtp_security,
            smtp_from=self.smtp_from,
            smtp_timeout_s=self.smtp_timeout_s,
        )

    def rate_limit(self, spec: RateLimitSpec) -> str:
        """The configured text of a declared rate limit (its setting, else its default)."""
        return self._rate_limits.get(spec.env) or _rate_setting(spec)

    def rate_limiter(
        self, registry: ActionRegistry | None = None, store: RateStore | None = None
    ) -> RateLimiter:
        specs = (registry or default_registry()).rate_limits()
        return RateLimiter(
            {spec.name: Rate.parse(self.rate_limit(spec)) for spec in specs}, store=store
        )

    def circuit_breakers(self, store: CircuitStore | None = None) -> CircuitBreakers:
        return CircuitBreakers(
            self.circuit_failure_threshold,
            self.circuit_open_s,
            self.circuit_when_open,
            store=store,
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.retry_max_attempts,
            base_delay_s=self.retry_base_delay_s,
            max_delay_s=self.retry_max_delay_s,
            budget_s=self.retry_budget_s,
            max_retry_after_s=self.retry_after_max_s,
        )


def _rate_setting(spec: RateLimitSpec) -> str:
    value = os.environ.get(spec.env, spec.default)
    try:
        Rate.parse(value)
    except ValueError as exc:
        raise ValueError(f"{spec.env}: {exc}") from None
    return value


def declared_rate_limits(registry: ActionRegistry | None = None) -> Sequence[RateLimitSpec]:
    return (registry or default_registry()).rate_limits()


def settings_help(settings: type[BaseSettings] = EngineSettings) -> str:
    """Every setting, its default and meaning: the `--help` epilog (the engine's includes the
    rate limits its actions declare)."""
    text = describe_settings(settings)
    if not issubclass(settings, EngineSettings):
        return text
    limits = [
        f"  {spec.env:<34} default {spec.default!r}\n      {spec.description}"
        for spec in declared_rate_limits()
    ]
    return "\n".join([text, *limits])
