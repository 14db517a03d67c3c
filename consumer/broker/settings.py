"""Where the engine's topics are and how to reach them: the settings every Kafka command reads.

`EngineSettings` extends these; `send` and `tail` read only `KafkaClientSettings` (the
connection and the topics' names), so an unrelated bad variable (an SMTP port, a Vault template,
a partition count) does not stop them.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actions.settings import setting
from consumer.secrets.redaction import SECRETS

# A setting read from an environment variable (and named so in --help): the one helper the
# engine's rooms and the actions' settings share.
env_field = setting


class KafkaClientSettings(BaseSettings):
    """How to reach Kafka and where the engine's topics are: what `send` and `tail` read."""

    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, frozen=True, case_sensitive=True
    )

    bootstrap_servers: str = env_field(
        "KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", "Kafka brokers, comma-separated."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = env_field(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = env_field(
        "KAFKA_SASL_MECHANISM", None, "SASL mechanism (with SASL_* protocols)."
    )
    sasl_username: str | None = env_field("KAFKA_SASL_USERNAME", None, "SASL user name.")
    sasl_password: SecretStr | None = env_field("KAFKA_SASL_PASSWORD", None, "SASL password.")
    ssl_cafile: str | None = env_field(
        "KAFKA_SSL_CAFILE", None, "CA bundle that signs the brokers' certificates (SSL, SASL_SSL)."
    )
    requests_topic: str = env_field(
        "EXECUTION_REQUESTS_TOPIC", "execution.requests", "Topic the engine consumes requests from."
    )
    results_topic: str = env_field(
        "EXECUTION_RESULTS_TOPIC", "execution.results", "Topic for result envelopes."
    )
    logs_topic: str = env_field("EXECUTION_LOGS_TOPIC", "execution.logs", "Topic for log events.")
    dead_letter_topic: str = env_field(
        "EXECUTION_DEAD_LETTER_TOPIC",
        "execution.dead-letter",
        "Topic for records the engine cannot understand (original bytes).",
    )

    @field_validator("ssl_cafile")
    @classmethod
    def _readable_cafile(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value!r}")
        return value

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaClientSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        return self

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection and security options shared by every aiokafka client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            options["sasl_plain_username"] = self.sasl_username
            password = self.sasl_password.get_secret_value() if self.sasl_password else None
            if password:
                # The one place the password leaves its SecretStr: nothing may ever print it.
                SECRETS.add_engine_secret(password)
            options["sasl_plain_password"] = password
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = self.ssl_context()
        return options

    def ssl_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext = create_ssl_context(cafile=self.ssl_cafile)
        return context


class KafkaSettings(KafkaClientSettings):
    """Plus the engine's consumer group and the topics it creates."""

    group_id: str = env_field("EXECUTION_GROUP_ID", "execution-engine", "Kafka consumer group.")
    create_topics: bool = env_field(
        "EXECUTION_CREATE_TOPICS", True, "Create the four topics at start-up when missing."
    )
    topic_partitions: int = env_field(
        "EXECUTION_TOPIC_PARTITIONS", 6, "Partitions for topics the engine creates.", ge=1
    )
    topic_replication: int = env_field(
        "EXECUTION_TOPIC_REPLICATION", 1, "Replication factor for topics it creates.", ge=1
    )


def describe_settings(settings: type[BaseSettings], *, header: bool = True) -> str:
    """Every setting of `settings`, its default and meaning: a command's `--help` epilog."""
    lines = ["settings (environment variables):"] if header else []
    for field in settings.model_fields.values():
        extra = field.json_schema_extra
        name = extra["env"] if isinstance(extra, dict) else "?"
        default = "(unset)" if field.default is None else repr(field.default)
        lines.append(f"  {name:<34} default {default}\n      {field.description}")
    return "\n".join(lines)
