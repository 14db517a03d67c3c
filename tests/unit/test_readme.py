"""The README stays true: every setting is documented, and the two commands are the real ones."""

from __future__ import annotations

from pathlib import Path

from consumer.localkafka.launcher import KAFKA_VERSION
from consumer.ops.metrics import EngineMetrics
from consumer.settings import EngineSettings, declared_rate_limits

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    for field in EngineSettings.model_fields.values():
        assert isinstance(field.json_schema_extra, dict)
        assert f"| `{field.json_schema_extra['env']}` |" in README
    # The rate limits the built-in actions declare are settings too (contract names).
    declared = declared_rate_limits()
    assert {spec.env for spec in declared} >= {
        "SLACK_RATE_LIMIT_PER_CHANNEL",
        "GOOGLE_SHEETS_RATE_LIMIT_PER_SPREADSHEET",
        "GOOGLE_SHEETS_RATE_LIMIT_PER_PROJECT",
        "GOOGLE_SHEETS_RATE_LIMIT_TOTAL",
        "NOTION_RATE_LIMIT_PER_PROJECT",
    }
    for spec in declared:
        assert f"| `{spec.env}` | `{spec.default}` |" in README


def test_the_kafka_version_named_is_the_one_launched() -> None:
    assert f"Apache Kafka **{KAFKA_VERSION}**" in README


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README and "make run" in README
    assert "exec make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_metric_is_documented() -> None:
    names = set()
    for family in EngineMetrics().registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    assert len(names) >= 12
    for name in names:
        assert f"`{name}`" in README, name


def test_every_command_is_in_the_commands_table() -> None:
    for command in ("run", "send", "replay", "topics create", "tail", "schemas"):
        assert f"| `execution-engine {command}" in README, command
