"""consumer/cli/main.py: every command reads only the settings it uses."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from consumer.broker.settings import KafkaClientSettings
from consumer.cli.catalog import SETTINGS
from consumer.cli.main import load, main, parser
from consumer.settings import EngineSettings, IntakeSettings

# Unrelated to every command but `run`: each one makes EngineSettings() fail.
ENGINE_ONLY = {"SMTP_PORT": "not-a-port", "EXECUTION_HTTP_ALLOWED_NETWORKS": "not-a-network"}


@pytest.mark.parametrize(
    ("argv", "settings"),
    [
        (["run"], EngineSettings),
        (["replay", "--all"], IntakeSettings),
        (["send", "log_message", "--project", "p"], KafkaClientSettings),
        (["tail", "results"], KafkaClientSettings),
        (["topics", "create"], IntakeSettings),
        (["schemas"], None),
    ],
)
def test_each_command_names_the_settings_it_reads(
    argv: list[str], settings: type[BaseSettings] | None
) -> None:
    name = parser().parse_args(argv).settings
    assert (None if name is None else load(SETTINGS[name], name)) is settings


def test_schemas_runs_whatever_the_environment_holds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**ENGINE_ONLY, "KAFKA_SECURITY_PROTOCOL": "CARRIER_PIGEON"}.items():
        monkeypatch.setenv(name, value)
    assert main(["schemas", "--check"]) == 0
    assert "invalid settings" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "reached"),
    [
        (["replay"], "choose a range"),
        (["send", "log_message", "--project", "p", "--params", "{"], "is not JSON"),
        (["topics", "create", "--config", "retention"], "is not KEY=VALUE"),
    ],
)
def test_an_unrelated_bad_variable_does_not_stop_a_command(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    reached: str,
) -> None:
    for name, value in ENGINE_ONLY.items():
        monkeypatch.setenv(name, value)
    # Each argv fails in the command itself, before any connection: that message shows the
    # settings were read and accepted.
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert reached in err and "invalid settings" not in err


@pytest.mark.parametrize(
    ("argv", "variable", "value"),
    [
        (["tail", "results"], "KAFKA_SECURITY_PROTOCOL", "CARRIER_PIGEON"),
        (["send", "log_message", "--project", "p"], "KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        (["replay", "--all"], "EXECUTION_MAX_JSON_DEPTH", "1"),
        (["run"], "SMTP_PORT", "not-a-port"),
    ],
)
def test_a_bad_variable_a_command_reads_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"execution-engine {argv[0]}: invalid setting")
    assert variable in err or value in err
