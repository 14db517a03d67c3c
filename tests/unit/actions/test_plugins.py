"""Plugins: a separate package adds an action through the `puraify.actions` entry-point group.

The example package in tests/plugin_example is made visible the way an installed distribution
is: its source directory on sys.path and a `.dist-info` (METADATA + entry_points.txt, written
from the package's own pyproject.toml) beside it. That is what `pip install` leaves behind,
without the minutes a real install into a fresh venv would take.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from actions.ratelimit import Rate, RateLimiter
from actions.registry import (
    PLUGIN_GROUP,
    ActionRegistry,
    builtin_actions,
    default_registry,
    plugin_actions,
)
from actions.runtime.runner import ActionRunner
from consumer.cli.schemas import build_schemas
from consumer.settings import settings_help
from schemas import ExecutionRequest
from tests.unit.support import FakeCredentials, plain_client

PLUGIN = Path(__file__).resolve().parents[2] / "plugin_example"


def install_example(site: Path) -> list[str]:
    """Write the example plugin's dist-info into `site`; returns the sys.path entries to add."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8",
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{name} = {target}" for name, target in entries.items())]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [str(site), str(PLUGIN / "src")]


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    paths = install_example(tmp_path / "site")
    for path in reversed(paths):
        monkeypatch.syspath_prepend(path)
    yield paths
    sys.modules.pop("puraify_example_plugin", None)


def test_the_plugin_declares_the_engines_group() -> None:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert PLUGIN_GROUP == "puraify.actions"
    assert project["entry-points"][PLUGIN_GROUP] == {
        "example_greet": "puraify_example_plugin:ACTION"
    }


def test_without_the_plugin_there_is_no_such_action() -> None:
    assert "example_greet" not in default_registry().names()


def test_an_installed_plugin_adds_its_action(installed: list[str]) -> None:
    assert [a.name for a in plugin_actions()] == ["example_greet"]
    registry = default_registry()
    assert "example_greet" in registry.names()
    assert set(registry.names()) >= {a.name for a in builtin_actions()}
    action = registry.get("example_greet")
    assert action is not None
    assert action.params_model.model_json_schema()["required"] == ["name"]


def test_schemas_include_the_plugins_params(installed: list[str]) -> None:
    documents = build_schemas()
    schema = documents["params/example_greet.schema.json"]
    assert schema["title"] == "example_greet params"
    assert schema["description"] == "Greets someone (an example plugin action)."
    assert set(schema["properties"]) == {"name", "excited"}
    assert schema["additionalProperties"] is False


async def test_the_runner_runs_the_plugin_action(installed: list[str]) -> None:
    registry = default_registry()
    async with plain_client() as http:
        runner = ActionRunner(registry, FakeCredentials(), http, http)
        ok = await runner.execute(
            ExecutionRequest.model_validate(
                {"action": "example_greet", "project": "p", "params": {"name": "Ada"}}
            ),
            "r1",
            structlog.get_logger(),
        )
        bad = await runner.execute(
            ExecutionRequest.model_validate(
                {"action": "example_greet", "project": "p", "params": {"name": ""}}
            ),
            "r2",
            structlog.get_logger(),
        )
    assert ok.status == "success" and ok.data == {"greeting": "Hello, Ada.", "project": "p"}
    assert bad.error is not None and bad.error.code.value == "invalid_params"
    assert "params.name" in bad.error.message


async def test_a_plugin_declares_its_own_rate_limit_and_the_engine_reads_it(
    installed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: adding a rate-limited action is one file; no engine setting is edited."""
    monkeypatch.delenv("EXAMPLE_GREET_RATE_LIMIT", raising=False)
    assert "EXAMPLE_GREET_RATE_LIMIT" in settings_help()
    assert default_registry().read_rates()["example_greet.name"] == Rate(2, 1.0)
    monkeypatch.setenv("EXAMPLE_GREET_RATE_LIMIT", "1/min")
    rates = default_registry().read_rates()
    assert rates["example_greet.name"] == Rate(1, 60.0)
    # The built-ins' contract settings are read the same way, unchanged.
    assert rates["slack.channel"] == Rate(1, 1.0)
    monkeypatch.setenv("EXAMPLE_GREET_RATE_LIMIT", "fast please")
    with pytest.raises(ValueError, match="EXAMPLE_GREET_RATE_LIMIT"):
        default_registry().read_rates()
    monkeypatch.setenv("EXAMPLE_GREET_RATE_LIMIT", "1/s")
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with plain_client() as http:
        runner = ActionRunner(
            default_registry(),
            FakeCredentials(),
            http,
            http,
            limiter=RateLimiter(default_registry().read_rates(), sleep=sleep),
        )
        for request_id in ("g1", "g2"):
            greeted = await runner.execute(
                ExecutionRequest.model_validate(
                    {"action": "example_greet", "project": "p", "params": {"name": "Ada"}}
                ),
                request_id,
                structlog.get_logger(),
            )
            assert greeted.status == "success"
    assert len(sleeps) == 1 and 0.9 < sleeps[0] <= 1.0, "the second greeting of Ada waited"


async def test_a_plugin_declares_its_own_setting_and_the_engine_reads_it(
    installed: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXAMPLE_GREETING", "Ahoy")
    assert "EXAMPLE_GREETING" in settings_help()
    async with plain_client() as http:
        # The runner reads every declared settings model from the environment, as the engine's
        # composition root does (`registry.read_settings()`).
        runner = ActionRunner(default_registry(), FakeCredentials(), http, http)
        greeted = await runner.execute(
            ExecutionRequest.model_validate(
                {"action": "example_greet", "project": "p", "params": {"name": "Ada"}}
            ),
            "g-1",
            structlog.get_logger(),
        )
    assert greeted.data == {"greeting": "Ahoy, Ada.", "project": "p"}
    monkeypatch.setenv("EXAMPLE_GREETING", "")
    with pytest.raises(ValueError, match="example_greet: EXAMPLE_GREETING: String should"):
        default_registry().read_settings()


def test_a_plugin_cannot_take_a_builtin_name() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        ActionRegistry([*builtin_actions(), builtin_actions()[0]])


def test_the_schemas_command_writes_plugin_schemas(tmp_path: Path) -> None:
    paths = install_example(tmp_path / "site")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    command = Path(sys.executable).with_name("execution-engine")
    done = subprocess.run(
        [str(command), "schemas", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "params" / "example_greet.schema.json").is_file()
    assert (out / "params" / "send_slack.schema.json").is_file()
