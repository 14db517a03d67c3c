"""docs/ stays true, as the README does: the configuration page is the settings models', every
internal link resolves, and every code name, setting, command, module and file the pages
mention exists."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from pydantic_settings import BaseSettings

from actions.registry import ActionRegistry, builtin_actions
from consumer.cli.main import parser
from consumer.ops.metrics import EngineMetrics
from consumer.settings import EngineSettings

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
CHECKED = [ROOT / "README.md", *PAGES]
EXPECTED_PAGES = {
    "actions.md",
    "architecture.md",
    "configuration.md",
    "operations.md",
    "performance.md",
    "plugins.md",
    "security.md",
    "semantics.md",
}
# Names the pages take from libraries, Kafka, Kubernetes and the providers, not from our code.
FOREIGN = {
    "AIOKafkaConsumer",
    "ClientSession",
    "ConfigMap",
    "Deployment",
    "HEALTHCHECK",
    "InconsistentGroupProtocolError",
    "InitProducerId",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "ProducerFenced",
    "RecordMetadata",
    "ScaledObject",
    "SecretStr",
    "ServiceAccount",
    "TriggerAuthentication",
    "TxnOffsetCommit",
}
# Log events are named `<room>.<what>`; the code logs each by its name.
EVENT_ROOMS = "|".join(
    (
        "action",
        "circuit",
        "commit",
        "dead_letter",
        "engine",
        "fallback",
        "flush",
        "library",
        "partition",
        "partitions",
        "publish",
        "request",
        "state",
        "tracing",
        "transaction",
    )
)
SOURCE_DIRS = ("consumer", "actions", "schemas", "bench", "scripts", "tests", "deploy")
SOURCE_FILES = ("Makefile", "Dockerfile", "compose.yaml", "pyproject.toml")


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (examples and output, not references)."""
    return re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)


def _spans(path: Path) -> list[str]:
    return re.findall(r"`([^`\n]+)`", _prose(path))


@cache
def _repo_files() -> tuple[str, ...]:
    dirs = (*SOURCE_DIRS, "docs", "schemas")
    found = [p.relative_to(ROOT).as_posix() for d in dirs for p in (ROOT / d).rglob("*")]
    found += [p.name for p in ROOT.iterdir()]
    return tuple(f for f in found if "__pycache__" not in f)


@cache
def _source_text() -> str:
    texts = [
        p.read_text(encoding="utf-8", errors="replace")
        for d in SOURCE_DIRS
        for p in (ROOT / d).rglob("*")
        if p.is_file() and p.suffix in {".py", ".yaml", ".json", ".sh", ".toml", ".env", ""}
    ]
    texts += [(ROOT / f).read_text(encoding="utf-8") for f in SOURCE_FILES]
    return "\n".join(texts)


def _mentioned(word: str, *, whole: bool = True) -> bool:
    """Whether the code or its deploy files name `word` (`whole`: as a whole word)."""
    return re.search(rf"\b{word}\b" if whole else rf"\b{word}", _source_text()) is not None


@cache
def _defined_names() -> frozenset[str]:
    """Every class, function, method and module-level name defined in the project's code."""
    pattern = re.compile(r"^\s*(?:class|def|async def)\s+(\w+)|^\s*(\w+)\s*[:=]", re.MULTILINE)
    names: set[str] = set()
    for package in ("consumer", "actions", "schemas", "bench", "tests"):
        for path in (ROOT / package).rglob("*.py"):
            for match in pattern.finditer(path.read_text(encoding="utf-8")):
                names.add(match.group(1) or match.group(2))
    return frozenset(names)


@cache
def _settings() -> frozenset[str]:
    registry = ActionRegistry(builtin_actions())  # the page documents the engine's own
    models: list[type[BaseSettings]] = [EngineSettings, *registry.settings_models()]
    names = {
        str(field.json_schema_extra["env"])
        for model in models
        for field in model.model_fields.values()
        if isinstance(field.json_schema_extra, dict)
    }
    return frozenset(names | {spec.env for spec in registry.rate_limits()})


@cache
def _metric_names() -> frozenset[str]:
    names = set()
    for family in EngineMetrics().registry.collect():
        names.add(family.name + {"counter": "_total", "info": "_info"}.get(family.type, ""))
    return frozenset(names)


def _commands() -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(command: argparse.ArgumentParser, prefix: str) -> None:
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[f"{prefix}{name}"] = sub
                    walk(sub, f"{prefix}{name} ")

    walk(parser(), "")
    return found


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*]", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(path), flags=re.M):
        slug, n = _slug(heading), 1
        while slug in anchors:
            slug = f"{_slug(heading)}-{n}"
            n += 1
        anchors.add(slug)
    return anchors


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def test_the_pages_are_there_and_the_readme_is_short() -> None:
    assert {p.name for p in PAGES} >= EXPECTED_PAGES
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250
    for page in PAGES:
        assert f"](docs/{page.name})" in readme, f"the README does not link {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_each_page_has_a_title_an_intro_and_sections(page: Path) -> None:
    text = re.sub(r"<!--.*?-->", "", page.read_text(encoding="utf-8"), flags=re.S)
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].startswith("# "), "a page starts with its title"
    assert not lines[1].startswith(("#", "|", "-", "```")), "then a short intro paragraph"
    assert len(re.findall(r"^## ", page.read_text(encoding="utf-8"), flags=re.M)) >= 2


def test_the_configuration_page_is_the_settings_models() -> None:
    spec = importlib.util.spec_from_file_location(
        "config_docs", ROOT / "scripts" / "config_docs.py"
    )
    assert spec is not None and spec.loader is not None
    config_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config_docs)
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert page == config_docs.render(page), "run scripts/config_docs.py"
    for name in _settings():
        assert f"| `{name}` |" in page, name


@pytest.mark.parametrize("path", [*CHECKED, ROOT / "CHANGELOG.md"], ids=lambda p: p.name)
def test_every_internal_link_resolves(path: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(path)):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        resolved = (path.parent / file).resolve() if file else path
        assert resolved.is_relative_to(ROOT), f"{path.name}: {target} leaves the repository"
        assert resolved.exists(), f"{path.name}: no such file {target}"
        if anchor:
            assert anchor in _anchors(resolved), f"{path.name}: no heading for {target}"


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: p.name)
def test_every_name_a_page_mentions_exists(path: Path) -> None:
    commands = _commands()
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    defined, files = _defined_names(), _repo_files()
    for span in _spans(path):
        if m := re.fullmatch(r"execution-engine (--[a-z-]+)(?: [A-Z]+)?", span):
            assert m.group(1) in parser()._option_string_actions, f"{path.name}: no {span}"
        elif span.startswith("execution-engine "):
            words = span.split()[1:]
            name = " ".join(w for w in words[:2] if w in commands or f"{words[0]} {w}" in commands)
            assert name in commands, f"{path.name}: no command {span!r}"
            options = commands[name]._option_string_actions
            for option in re.findall(r"(?<![\w-])--[a-z][\w-]*", span):
                assert option in options, f"{path.name}: {name} has no {option}"
        elif m := re.fullmatch(r"make (\w[\w-]*)(?: .*)?", span):
            assert m.group(1) in targets, f"{path.name}: no make target {m.group(1)}"
        elif m := re.search(r"python -m ([\w.]+)", span):
            assert importlib.util.find_spec(m.group(1)), f"{path.name}: no module {m.group(1)}"
        elif span.startswith("../"):
            continue  # beside the repository (the shared contract)
        elif re.fullmatch(r"[\w./-]+(/|\.(py|yaml|json|md|sh|toml))", span) and "/" in span:
            known = any(f == span.rstrip("/") or f.endswith("/" + span.rstrip("/")) for f in files)
            assert known, f"{path.name}: no such file or folder {span}"
        elif re.fullmatch(r"\w+\.py", span):
            assert any(f.split("/")[-1] == span for f in files), f"{path.name}: no file {span}"
        elif m := re.fullmatch(r"([A-Z][A-Z0-9]*_[A-Z0-9_]+)(=.*)?", span):
            # The env backend's variables are made from a project and a service: examples.
            name = re.sub(r"^PURAIFY_CRED_\w+", "PURAIFY_CRED_", m.group(1))
            known = name in _settings() or _mentioned(name, whole=not name.endswith("_"))
            assert known, f"{path.name}: {name} is neither a setting nor in the code"
        elif m := re.fullmatch(r"(?:[a-z_]+\.)*([A-Z]\w*[a-z]\w*)((?:\.\w+)*)(?:\(\))?", span):
            owner, members = m.group(1), m.group(2).split(".")[1:]
            # A class, a header, an alert, a file: named in the code or its deploy files.
            known = owner in defined | FOREIGN or _mentioned(owner)
            assert known, f"{path.name}: no {owner!r} in the code"
            for member in members if owner not in FOREIGN else []:
                assert member in defined, f"{path.name}: no {member!r} for {owner}"
        elif re.fullmatch(r"(consumer|actions|schemas|bench)(\.\w+)+", span):
            module, _, attribute = span.rpartition(".")
            loaded = _module(span) or _module(module)
            assert loaded is not None, f"{path.name}: no module {span}"
            if _module(span) is None:
                assert hasattr(loaded, attribute), f"{path.name}: no {span}"
        elif m := re.fullmatch(rf"(?:{EVENT_ROOMS})\.[a-z_]+", span):
            assert f'"{span}"' in _source_text(), f"{path.name}: no log event {span}"
        elif re.fullmatch(r"execution_[a-z_]+", span):
            assert span in _metric_names(), f"{path.name}: no metric {span}"


def test_every_metric_is_documented() -> None:
    operations = (DOCS / "operations.md").read_text(encoding="utf-8")
    assert len(_metric_names()) >= 12
    for name in _metric_names():
        assert f"`{name}`" in operations, name


def _architecture() -> str:
    return (DOCS / "architecture.md").read_text(encoding="utf-8")


def test_the_architecture_page_names_every_room() -> None:
    rooms = [
        p.relative_to(ROOT).as_posix() + "/"
        for package in ("consumer", "actions")
        for p in (ROOT / package).iterdir()
        if p.is_dir() and (p / "__init__.py").exists()
    ]
    assert len(rooms) >= 10
    for room in [*rooms, "schemas/", "consumer/engine.py", "consumer/app.py"]:
        assert f"| `{room}` |" in _architecture(), f"the rooms table has no row for {room}"


def test_every_name_in_the_record_path_diagram_exists() -> None:
    diagram = _architecture().split("```")[1]
    calls = re.findall(r"\b([A-Z]\w+)\.(\w+)\b", diagram)
    assert len(calls) >= 6, "the diagram names the methods a record passes through"
    for owner, member in calls:
        module = next(
            (m for m in map(_module, _owner_modules(owner)) if m is not None and hasattr(m, owner)),
            None,
        )
        assert module is not None, f"no class {owner}"
        assert hasattr(getattr(module, owner), member), f"{owner} has no {member}"


def _owner_modules(owner: str) -> list[str]:
    pattern = re.compile(rf"^class {owner}\b", re.M)
    return [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for package in ("consumer", "actions")
        for p in (ROOT / package).rglob("*.py")
        if pattern.search(p.read_text(encoding="utf-8"))
    ]
