"""The public names: `consumer`, `actions` and `schemas` export them (with `__all__`), and a
plugin needs nothing else: the example plugin imports only from `actions` and `schemas`."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "tests" / "plugin_example" / "src"
ENGINE_PACKAGES = ("consumer", "actions", "schemas")


def imports_from(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every `from module import names` and `import module` in a file."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


@pytest.mark.parametrize("package", ENGINE_PACKAGES)
def test_every_exported_name_exists_once(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    assert len(exported) == len(set(exported))
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing


def test_consumer_exports_the_engine_its_settings_and_the_command() -> None:
    import consumer  # noqa: PLC0415

    wanted = {"Application", "Engine", "EngineSettings", "KafkaSettings", "main"}
    assert wanted <= set(consumer.__all__)


def test_the_example_plugin_imports_only_the_top_level_public_names() -> None:
    files = sorted(PLUGIN.rglob("*.py"))
    assert files, "the example plugin has source files"
    used = 0
    for path in files:
        for module, names in imports_from(path):
            top = module.split(".")[0]
            if top not in ENGINE_PACKAGES:
                continue
            assert module in ("actions", "schemas"), f"{path.name} imports {module}"
            public = set(importlib.import_module(module).__all__)
            assert set(names) <= public, f"{path.name}: {set(names) - public} not in __all__"
            used += 1
    assert used, "the example plugin uses the engine's API"


def test_actions_exports_all_a_builtin_action_imports() -> None:
    # A built-in action is what a plugin is: what one imports, a plugin may need.
    import actions  # noqa: PLC0415

    # Except the egress machinery of the actions that call a URL the request names.
    internal = ("actions.builtin", "actions.egress", "actions.limits")
    needed: set[str] = set()
    for path in (ROOT / "actions" / "builtin").glob("*.py"):
        for module, names in imports_from(path):
            if module.startswith("actions.") and not module.startswith(internal):
                needed.update(name for name in names if not name.startswith("_"))
    assert needed, "the built-ins import from actions' modules"
    assert needed <= set(actions.__all__), needed - set(actions.__all__)


def test_the_plugin_sdk_is_small_and_holds_no_runtime_internals() -> None:
    import actions  # noqa: PLC0415

    assert len(actions.__all__) <= 28
    exported = [getattr(actions, name) for name in actions.__all__]
    modules = {getattr(value, "__module__", "actions") for value in exported}
    assert not [module for module in modules if module.startswith("actions.runtime")]
