"""scripts/audit.py: the verdicts of the dependency audit in `make test`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

CLEAN = {"name": "httpx", "version": "0.28.1", "vulns": []}
VULNERABLE = {
    "name": "oldlib",
    "version": "1.0",
    "vulns": [{"id": "PYSEC-2099-1", "fix_versions": ["1.1"]}],
}
SKIPPED = {"name": "aiokafka", "skip_reason": "Dependency not found on PyPI and could not be"}


@pytest.fixture
def audit() -> ModuleType:
    path = Path(__file__).parents[2] / "scripts" / "audit.py"
    spec = importlib.util.spec_from_file_location("audit_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("report", "strict", "exit_code"),
    [
        ({"dependencies": [CLEAN]}, False, 0),
        ({"dependencies": [CLEAN, VULNERABLE]}, False, 1),
        ({"dependencies": [SKIPPED, VULNERABLE]}, False, 1),
        # The false green this script exists for: nothing audited is not "no vulnerabilities".
        ({"dependencies": [SKIPPED, SKIPPED]}, False, 0),
        ({"dependencies": [SKIPPED, SKIPPED]}, True, 1),
        ({"dependencies": [CLEAN, SKIPPED]}, True, 1),
        (None, False, 0),
        (None, True, 1),
    ],
    ids=[
        "clean",
        "vulnerable",
        "vulnerable-some-skipped",
        "none-audited",
        "none-audited-strict",
        "some-skipped-strict",
        "service-down",
        "service-down-strict",
    ],
)
def test_verdicts(
    audit: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    report: dict[str, Any] | None,
    strict: bool,
    exit_code: int,
) -> None:
    monkeypatch.setattr(audit, "run_pip_audit", lambda: report)
    monkeypatch.setenv("AUDIT_STRICT", "1" if strict else "0")
    assert audit.main() == exit_code
    err = capsys.readouterr().err
    if report is None or all("skip_reason" in d for d in report["dependencies"]):
        assert "NOT audited" in err
    if report and VULNERABLE in report["dependencies"]:
        assert "PYSEC-2099-1" in err and "1.1" in err
