"""What this engine is: its version, the commit it was built from, Python's and aiokafka's
versions. `--version` prints it; /metrics carries it as `execution_build_info`.

The commit: `ENGINE_REVISION` (the image sets it from its build argument `REVISION`), else
the source checkout's git HEAD, else "unknown". Standard library only, and no import of the
client library: `--version` answers at once.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "puraify-execution-engine"


@dataclass(frozen=True)
class BuildInfo:
    version: str
    commit: str
    python: str
    aiokafka: str

    def line(self) -> str:
        return (
            f"execution-engine {self.version} (commit {self.commit}), aiokafka {self.aiokafka}, "
            f"Python {self.python}"
        )


@cache
def build_info() -> BuildInfo:
    return BuildInfo(
        version=_version(DISTRIBUTION),
        commit=_commit(),
        python=platform.python_version(),
        aiokafka=_version("aiokafka"),
    )


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def _commit() -> str:
    revision = os.environ.get("ENGINE_REVISION", "").strip()
    if revision and revision != "unknown":
        return revision
    source = Path(__file__).resolve().parents[2]
    if not (source / ".git").exists():
        return "unknown"
    try:
        found = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else "unknown"
