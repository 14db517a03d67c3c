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
