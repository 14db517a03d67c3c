"""What the commands' --help shows of the engine: the settings each command reads, the actions.

`--help` must answer at once, and importing pydantic-settings alone takes ~0.3 s, so the texts
come from `catalog.json`: the output of `settings_help()` (the models' own descriptions) and
of the action registry, committed beside this file, regenerated with `python -m
consumer.cli.catalog` and checked against the models by a unit test. An installed plugin adds
actions and rate-limit settings the file cannot know: then they are computed live.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).with_name("catalog.json")
PLUGIN_GROUP = "puraify.actions"  # actions.registry.PLUGIN_GROUP, unimported
# The settings classes a command reads, by name: the catalog's keys, resolved when run.
SETTINGS = {
    "KafkaClientSettings": "consumer.broker.settings",
    "IntakeSettings": "consumer.settings",
    "EngineSettings": "consumer.settings",
}


def settings_help(name: str) -> str:
    """The --help epilog of a command that reads the settings class `name`."""
    if _plugins():
        return str(_live()["settings"][name])
    return str(_committed()["settings"][name])


def actions_help() -> str:
    actions = _live()["actions"] if _plugins() else _committed()["actions"]
    lines = ["actions (each one's params: `execution-engine schemas`, params/<action>):"]
    lines += [f"  {name:<20} {description}" for name, description in actions]
    return "\n".join(lines)


def build() -> dict[str, Any]:
    """The catalog, from the models and the registry (imports the engine: not for --help)."""
    from actions.registry import default_registry  # noqa: PLC0415 - the engine, when building
    from consumer import settings  # noqa: PLC0415
    from consumer.broker.settings import KafkaClientSettings  # noqa: PLC0415

    classes = {
        "KafkaClientSettings": KafkaClientSettings,
        "IntakeSettings": settings.IntakeSettings,
        "EngineSettings": settings.EngineSettings,
    }
    return {
        "settings": {name: settings.settings_help(cls) for name, cls in classes.items()},
        "actions": [
            [action.name, (action.description or "").split("\n")[0]]
            for action in default_registry()
        ],
    }


def render(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, indent=2, ensure_ascii=False) + "\n"


@cache
def _committed() -> dict[str, Any]:
    catalog: dict[str, Any] = json.loads(CATALOG.read_text(encoding="utf-8"))
    return catalog


@cache
def _live() -> dict[str, Any]:
    return build()


@cache
def _plugins() -> bool:
    return bool(entry_points(group=PLUGIN_GROUP))


if __name__ == "__main__":
    CATALOG.write_text(render(build()), encoding="utf-8")
    print(CATALOG, file=sys.stderr)
