"""The README stays true: the two commands are the real ones, the commands table lists every
command, and the Kafka version named is the one launched. The rest of the documentation (and the
README's names and links too) is checked by test_docs.py."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from consumer.cli.main import parser
from consumer.localkafka import KAFKA_VERSION
from schemas.envelope import ResultEnvelope

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_kafka_version_named_is_the_one_launched() -> None:
    assert f"Apache Kafka **{KAFKA_VERSION}**" in README


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README and "make run" in README
    assert "exec make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_command_is_in_the_commands_table() -> None:
    commands = [
        name
        for action in parser()._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    ]
    assert {"run", "send", "replay", "topics", "tail", "schemas"} <= set(commands)
    for command in commands:
        assert f"| `execution-engine {command}" in README, command


def test_the_readme_is_short_and_links_the_docs() -> None:
    assert len(README.splitlines()) < 250
    assert "](docs/configuration.md)" in README and "](CHANGELOG.md)" in README


def test_the_first_envelope_is_an_envelope_as_the_engine_writes_it() -> None:
    example = json.loads(re.findall(r"^```json\n(.*?)^```", README, flags=re.M | re.S)[0])
    written = ResultEnvelope.model_validate(example).model_dump(mode="json")
    assert list(example) == list(written)
