"""The README stays true: every setting is documented, and the two commands are the real ones."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic_settings import BaseSettings

from actions.registry import default_registry
from consumer.localkafka import KAFKA_VERSION
from consumer.ops.metrics import EngineMetrics
from consumer.settings import EngineSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_configuration_table() -> None:
    models: list[type[BaseSettings]] = [EngineSettings, *default_registry().settings_models()]
    for model in models:
        for field in model.model_fields.values():
            assert isinstance(field.json_schema_extra, dict)
            assert f"| `{field.json_schema_extra['env']}` |" in README
    # The rate limits the built-in actions declare are settings too (contract names).
    declared = default_registry().rate_limits()
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
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    assert len(names) >= 12
    for name in names:
        assert f"`{name}`" in README, name


def test_every_command_is_in_the_commands_table() -> None:
    for command in ("run", "send", "replay", "topics create", "tail", "schemas"):
        assert f"| `execution-engine {command}" in README, command


def _architecture_section() -> str:
    start = README.index("## Architecture\n")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def _defined_names() -> set[str]:
    """Every class, function and module-level name defined in the project's packages."""
    pattern = re.compile(r"^\s*(?:class|def|async def)\s+(\w+)|^(\w+)\s*[:=]", re.MULTILINE)
    names: set[str] = set()
    for package in ("consumer", "actions", "schemas"):
        for path in (ROOT / package).rglob("*.py"):
            for match in pattern.finditer(path.read_text(encoding="utf-8")):
                names.add(match.group(1) or match.group(2))
    return names


def test_every_name_the_architecture_section_mentions_exists() -> None:
    section = _architecture_section()
    defined = _defined_names()
    mentioned = re.findall(r"`([^`\n]+)`", section)
    assert len(mentioned) > 30, "the section names the parts it describes"
    for name in mentioned:
        if name.endswith("/") or name.endswith(".py"):
            candidates = [ROOT / name, ROOT / "consumer" / name, ROOT / "tests" / name]
            candidates += [ROOT / "consumer" / sub / name for sub in ("pipeline", "partitions")]
            candidates += [
                ROOT / "consumer" / sub / name
                for sub in (
                    "credentials",
                    "ops",
                    "cli",
                    "cli/replay",
                    "broker",
                    "localkafka",
                    "state",
                    "secrets",
                )
            ]
            assert any(c.exists() for c in candidates), f"no such file or folder: {name}"
        elif re.fullmatch(r"[A-Z][A-Z0-9_]+", name):
            documented = f"| `{name}` |" in README
            assert documented or name in defined, f"{name}: neither a setting nor in the code"
        elif re.fullmatch(r"[A-Z]\w+(\.\w+)?", name):
            owner, _, member = name.partition(".")
            assert owner in defined, f"the README names {owner!r}, which the code does not define"
            if member:
                assert member in defined, f"the README names {name!r}: no {member!r} in the code"


def test_every_name_in_the_record_path_diagram_exists() -> None:
    diagram = _architecture_section().split("```")[1]
    defined = _defined_names()
    for owner, member in re.findall(r"\b([A-Z]\w+)\.(\w+)\b", diagram):
        assert owner in defined and member in defined, f"{owner}.{member}"


def test_every_relative_link_points_inside_the_repository() -> None:
    root = Path(__file__).resolve().parents[2]
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README):
        if "://" in target or target.startswith("mailto:"):
            continue
        resolved = (root / target).resolve()
        assert resolved.is_relative_to(root), f"{target} points outside the repository"
        assert resolved.exists(), f"{target} does not exist"
