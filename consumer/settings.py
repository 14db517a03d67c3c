"""Engine settings, read from the environment. The names are part of the contract.

Three layers, each what some command reads, so a bad variable stops only the commands that use
it: `KafkaSettings` (consumer/broker/settings.py: where the topics are, how to reach them; `send`,
`tail`, `topics`), `IntakeSettings` (plus the limits a record is judged by; `replay`, which must
judge records as the engine does) and `EngineSettings` (everything; `run`).
"""

from __future__ import annotations

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actions.egress import parse_networks
from actions.registry import ActionRegistry, default_registry
from actions.runtime.settings import RunnerSettings
from consumer.broker.settings import KafkaSettings, describe_settings, env_field
from consumer.credentials.settings import CredentialSettings
from consumer.ops.settings import OpsSettings
from consumer.partitions.settings import PartitionSettings
from consumer.pipeline.settings import IntakeLimitSettings, SchedulerSettings
from consumer.state.settings import StateSettings

_env = env_field


class IntakeSettings(IntakeLimitSettings, KafkaSettings):
    """The Kafka settings and the limits intake judges a record by (`replay`, `topics`)."""


class EngineSettings(
    RunnerSettings,
    OpsSettings,
    CredentialSettings,
    StateSettings,
    PartitionSettings,
    SchedulerSettings,
    IntakeSettings,
):
    """Everything `run` reads of the engine: each room's settings, and the consume loop's own
    below. The actions' own settings (`Action.settings_model`, rate limits) are read by the
    registry (`ActionRegistry.read_settings`, `read_rates`)."""

    # An invalid value is named, never echoed: it may be a password or a URL holding one.
    model_config = SettingsConfigDict(
        extra="ignore",
        populate_by_name=True,
        frozen=True,
        case_sensitive=True,
        hide_input_in_errors=True,
    )

    # Flow control
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
    drain_timeout_s: float = _env(
        "EXECUTION_DRAIN_TIMEOUT_S",
        20.0,
        "On shutdown or revoke, how long running actions may finish before they are abandoned "
        "(abandoned records are not committed, so they run again).",
        gt=0,
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

    http_allowed_networks: str = _env(
        "EXECUTION_HTTP_ALLOWED_NETWORKS",
        "",
        "CIDRs `http_request` may reach although not global (e.g. 127.0.0.0/8).",
    )

    @field_validator("http_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)
        return value


def settings_help(
    settings: type[BaseSettings] = EngineSettings, registry: ActionRegistry | None = None
) -> str:
    """Every setting, its default and meaning: the `--help` epilog (the engine's includes what
    its actions declare: their settings and rate limits)."""
    text = describe_settings(settings)
    if not issubclass(settings, EngineSettings):
        return text
    registry = registry or default_registry()
    declared = [describe_settings(model, header=False) for model in registry.settings_models()]
    limits = [
        f"  {spec.env:<34} default {spec.default!r}\n      {spec.description}"
        for spec in registry.rate_limits()
    ]
    return "\n".join([text, *declared, *limits])
