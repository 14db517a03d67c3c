"""--help and --version answer without loading the engine; the help's settings and actions
come from catalog.json, which matches the models and the registry."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from consumer.cli import catalog
from consumer.cli.main import parser

COMMAND = [str(Path(sys.executable).parent / "execution-engine")]
HEAVY = ("aiokafka", "pydantic", "pydantic_settings", "structlog", "actions", "schemas", "aiohttp")


def test_the_committed_catalog_is_what_the_models_and_registry_give() -> None:
    # Stale: run `python -m consumer.cli.catalog` and commit consumer/cli/catalog.json.
    assert catalog.CATALOG.read_text(encoding="utf-8") == catalog.render(catalog.build())


def test_building_the_parser_imports_nothing_heavy() -> None:
    probe = (
        "import sys\n"
        "from consumer.cli.main import parser\n"
        "parser().format_help()\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )
    assert done.stdout.strip() == "[]"


def test_each_command_lists_the_settings_it_reads_and_send_the_actions() -> None:
    [commands] = [
        action.choices
        for action in parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    send = commands["send"].format_help()
    assert "EXECUTION_TOPIC_PARTITIONS" not in send and "EXECUTION_GROUP_ID" not in send
    assert "KAFKA_BOOTSTRAP_SERVERS" in send and "EXECUTION_REQUESTS_TOPIC" in send
    for action in ("log_message", "send_slack", "http_request"):
        assert f"  {action} " in send
    assert "EXECUTION_TOPIC_PARTITIONS" not in commands["tail"].format_help()
    run = commands["run"].format_help()
    assert "EXECUTION_MAX_IN_FLIGHT" in run and "SLACK_RATE_LIMIT" in run.upper()


def test_version_names_the_version_commit_client_and_python() -> None:
    done = subprocess.run(
        [*COMMAND, "--version"], capture_output=True, text=True, check=True, timeout=30
    )
    line = done.stdout.strip()
    assert line.startswith("execution-engine ") and "(commit " in line
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}" in line
    assert "aiokafka 0." in line
