"""consumer/settings.py: settings from the environment, by the contract's names."""

from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from actions.builtin.create_sheet import SheetsSettings
from actions.builtin.http_request import HttpRequestSettings
from actions.builtin.send_slack import SlackSettings
from actions.registry import default_registry
from consumer.secrets.redaction import MASK, SECRETS
from consumer.settings import EngineSettings, settings_help

# The engine's settings, and what its built-in actions declare for themselves.
MODELS: list[type[BaseSettings]] = [EngineSettings, *default_registry().settings_models()]
ENV_NAMES = [
    str(field.json_schema_extra["env"])  # type: ignore[index]
    for model in MODELS
    for field in model.model_fields.values()
]
CONTRACT_NAMES = {
    "EXECUTION_REQUESTS_TOPIC",
    "EXECUTION_RESULTS_TOPIC",
    "EXECUTION_LOGS_TOPIC",
    "EXECUTION_DEAD_LETTER_TOPIC",
    "EXECUTION_GROUP_ID",
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "VAULT_URL",
    "VAULT_TOKEN",
    "SLACK_API_URL",
    "GOOGLE_SHEETS_API_URL",
    "EXECUTION_HTTP_ALLOWED_NETWORKS",
    "EXECUTION_HTTP_PORT",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_contract_names_are_settings() -> None:
    assert set(ENV_NAMES) >= CONTRACT_NAMES
    assert len(ENV_NAMES) == len(set(ENV_NAMES))


def test_defaults_per_the_contract() -> None:
    settings = EngineSettings()
    assert settings.requests_topic == "execution.requests"
    assert settings.results_topic == "execution.results"
    assert settings.logs_topic == "execution.logs"
    assert settings.dead_letter_topic == "execution.dead-letter"
    assert settings.group_id == "execution-engine"
    assert settings.bootstrap_servers == "localhost:9092"
    assert settings.security_protocol == "PLAINTEXT"
    assert SlackSettings().slack_api_url == "https://slack.com/api"
    assert SheetsSettings().google_sheets_api_url == "https://sheets.googleapis.com"
    assert settings.http_allowed_networks == ""
    assert settings.vault_token is None


def test_env_vars_are_read_by_contract_names(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "EXECUTION_REQUESTS_TOPIC": "in.t",
        "EXECUTION_RESULTS_TOPIC": "out.t",
        "EXECUTION_LOGS_TOPIC": "logs.t",
        "EXECUTION_DEAD_LETTER_TOPIC": "dlq.t",
        "EXECUTION_GROUP_ID": "group-x",
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9093,b2:9093",
        "VAULT_URL": "http://vault.test:8200",
        "VAULT_TOKEN": "vault-engine-token",
        "SLACK_API_URL": "http://127.0.0.1:1/api",
        "GOOGLE_SHEETS_API_URL": "http://127.0.0.1:2",
        "EXECUTION_HTTP_ALLOWED_NETWORKS": "127.0.0.0/8, ::1/128",
        "EXECUTION_MAX_IN_FLIGHT": "7",
        "EXECUTION_CREATE_TOPICS": "false",
        "EXECUTION_LOG_LEVEL": "debug",
        "EXECUTION_RETRY_MAX_ATTEMPTS": "2",
        "EXECUTION_HTTP_MAX_RESPONSE_BYTES": "1000",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = EngineSettings()
    assert settings.requests_topic == "in.t"
    assert settings.results_topic == "out.t"
    assert settings.logs_topic == "logs.t"
    assert settings.dead_letter_topic == "dlq.t"
    assert settings.group_id == "group-x"
    assert settings.bootstrap_servers == "b1:9093,b2:9093"
    assert settings.vault_url == "http://vault.test:8200"
    assert settings.vault_token is not None
    assert settings.vault_token.get_secret_value() == "vault-engine-token"
    assert "vault-engine-token" not in repr(settings)
    assert settings.http_allowed_networks == "127.0.0.0/8, ::1/128"
    assert settings.max_in_flight == 7
    assert settings.create_topics is False
    assert settings.log_level == "debug"
    declared = default_registry().read_settings()
    assert declared.get(SlackSettings).slack_api_url == "http://127.0.0.1:1/api"
    assert declared.get(SheetsSettings).google_sheets_api_url == "http://127.0.0.1:2"
    assert declared.get(HttpRequestSettings).http_max_response_bytes == 1000
    assert settings.retry_policy().max_attempts == 2


@pytest.mark.parametrize(
    ("total", "per_project", "limit"),
    [
        ("200", None, 180),  # the default: 90 %, some slots always left to other projects
        ("7", None, 6),
        ("1", None, 1),
        ("200", "50", 50),
        ("200", "200", 200),  # sharing off
        ("200", "500", 200),
    ],
)
def test_the_in_flight_limit_per_project(
    monkeypatch: pytest.MonkeyPatch, total: str, per_project: str | None, limit: int
) -> None:
    monkeypatch.setenv("EXECUTION_MAX_IN_FLIGHT", total)
    if per_project is not None:
        monkeypatch.setenv("EXECUTION_MAX_IN_FLIGHT_PER_PROJECT", per_project)
    assert EngineSettings().project_in_flight_limit == limit


def test_env_names_are_case_sensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("execution_requests_topic", "lower.case")
    assert EngineSettings().requests_topic == "execution.requests"


@pytest.mark.parametrize("bad", ["not-a-cidr", "127.0.0.0/8,10.0.0.0/33", "300.0.0.0/8"])
def test_invalid_allowed_network_is_rejected(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("EXECUTION_HTTP_ALLOWED_NETWORKS", bad)
    with pytest.raises(ValidationError, match="not a CIDR network"):
        EngineSettings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EXECUTION_MAX_IN_FLIGHT", "0"),
        ("EXECUTION_MAX_IN_FLIGHT_PER_PROJECT", "0"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("EXECUTION_LOG_LEVEL", "verbose"),
        ("EXECUTION_MAX_RECORD_BYTES", "10"),
    ],
)
def test_invalid_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        EngineSettings()


def test_settings_help_names_every_env_var() -> None:
    text = settings_help()
    for name in ENV_NAMES:
        assert f"  {name} " in text
    assert "'execution.requests'" in text
    assert "(unset)" in text


def test_plaintext_client_options() -> None:
    assert EngineSettings().kafka_client_options() == {
        "bootstrap_servers": "localhost:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_client_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "engine")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-password")
    options = EngineSettings().kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "engine"
    assert options["sasl_plain_password"] == "kafka-password"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED


def test_sasl_plaintext_defaults_to_plain_without_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "engine")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-password")
    options = EngineSettings().kafka_client_options()
    assert options["sasl_mechanism"] == "PLAIN"
    assert "ssl_context" not in options


@pytest.mark.parametrize("missing", ["KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"])
def test_sasl_without_credentials_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    for name in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"):
        if name != missing:
            monkeypatch.setenv(name, "value-1")
    with pytest.raises(ValidationError, match="needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        EngineSettings()


def test_a_missing_ca_file_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SSL_CAFILE", "/nonexistent/ca.pem")
    with pytest.raises(ValidationError, match="no such file"):
        EngineSettings()


def test_the_sasl_password_is_registered_for_redaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "engine")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "kafka-pw-registered-7")
    settings = EngineSettings()
    assert "kafka-pw-registered-7" not in repr(settings)
    settings.kafka_client_options()
    # The engine's own secret: scrubbed from every output, inside a record or not.
    assert SECRETS.scrub("pw=kafka-pw-registered-7") == f"pw={MASK}"
    assert SECRETS.scope().scrub_text("pw=kafka-pw-registered-7") == f"pw={MASK}"


def test_ssl_client_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    options = EngineSettings().kafka_client_options()
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options


def test_ops_port_defaults_to_the_contracts_8080() -> None:
    assert EngineSettings().http_port == 8080
