"""The settings the partitions read: how envelopes are published and offsets committed."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from consumer.broker.settings import env_field as _env


class PartitionSettings(BaseSettings):
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    exactly_once: bool = _env(
        "EXECUTION_EXACTLY_ONCE",
        True,
        "Publish envelopes and commit offsets in one Kafka transaction per input partition "
        "(false: at-least-once, a crash can repeat an envelope).",
    )
    commit_interval_s: float = _env(
        "EXECUTION_COMMIT_INTERVAL_S",
        0.1,
        "How often each partition publishes its finished envelopes and commits (one "
        "transaction); the latency floor of an envelope.",
        gt=0,
    )
    transaction_max_records: int = _env(
        "EXECUTION_TRANSACTION_MAX_RECORDS",
        1000,
        "A partition commits early once this many finished records wait.",
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
