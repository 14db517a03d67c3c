"""The open-files limit at start-up: `execution-engine run` raises its soft RLIMIT_NOFILE to the
hard limit, and exits 2 at once, naming the limit and the number needed, when even the hard
limit cannot hold the connections it will open (it would otherwise start and leave partitions
silently unopened)."""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Topics
from tests.integration.test_cli import COMMAND, cli_env

pytestmark = pytest.mark.slow


def _limited(soft: int, hard: int) -> list[str]:
    """`execution-engine run` under these open-files limits (set by the shell, as a container
    runtime sets them)."""
    return ["sh", "-c", f'ulimit -Sn {soft} && ulimit -Hn {hard} && exec "$@"', "sh", *COMMAND]


def _open_files_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files line in /proc/<pid>/limits")


def test_a_hard_limit_too_low_exits_2_naming_the_limit_and_the_need(
    kafka_bootstrap: str, topics: Topics
) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [*_limited(200, 200), "run", "--local-kafka", "never"],
        env=cli_env(kafka_bootstrap, topics),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "RLIMIT_NOFILE" in done.stderr and "is 200" in done.stderr, done.stderr
    assert "may need" in done.stderr
    assert time.monotonic() - started < 60, "at once, not after partitions failed to open"


def test_the_soft_limit_is_raised_to_the_hard_one(kafka_bootstrap: str, topics: Topics) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard < 2048:
        pytest.skip(f"needs a finite hard limit of at least 2048 (is {hard})")
    process = subprocess.Popen(
        [*_limited(256, hard), "run", "--local-kafka", "never"],
        env=cli_env(kafka_bootstrap, topics),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if '"partitions.assigned"' in line or '"engine.started"' in line:
                break
        else:
            pytest.fail(f"the engine exited early with {process.wait()}")
        assert _open_files_limit(process.pid) == (hard, hard)
    finally:
        process.kill()
        process.wait()
