"""The console command as an operator uses it: run, send --wait, SIGTERM, help, schemas."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumer.settings import EngineSettings
from tests.integration.conftest import Topics

COMMAND = [str(Path(sys.executable).parent / "execution-engine")]


def cli_env(bootstrap: str, topics: Topics) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EXECUTION_REQUESTS_TOPIC": topics.requests,
            "EXECUTION_RESULTS_TOPIC": topics.results,
            "EXECUTION_LOGS_TOPIC": topics.logs,
            "EXECUTION_DEAD_LETTER_TOPIC": topics.dead_letter,
            "EXECUTION_GROUP_ID": topics.group,
            "EXECUTION_DRAIN_TIMEOUT_S": "5",
            "EXECUTION_HTTP_HOST": "127.0.0.1",
            "EXECUTION_HTTP_PORT": "0",
        }
    )
    return env


@pytest.fixture
def engine_process(kafka_bootstrap: str, topics: Topics) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [*COMMAND, "run"],
        env=cli_env(kafka_bootstrap, topics),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            if '"partitions.assigned"' in line:
                break
            assert time.monotonic() < deadline, "the engine did not join its group in 60 s"
        else:
            pytest.fail(f"the engine exited early with {process.wait()}")
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_send_wait_prints_the_envelope_and_sigterm_exits_zero(
    kafka_bootstrap: str, topics: Topics, engine_process: subprocess.Popen[str]
) -> None:
    env = cli_env(kafka_bootstrap, topics)
    sent = subprocess.run(
        [
            *COMMAND,
            "send",
            "log_message",
            "--project",
            "demo",
            "--params",
            '{"message": "hello"}',
            "--wait",
            "--timeout",
            "30",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    envelope = json.loads(sent.stdout)
    assert envelope["status"] == "success"
    assert envelope["data"] == {"logged": True}
    assert envelope["action"] == "log_message" and envelope["project"] == "demo"

    failed = subprocess.run(
        [*COMMAND, "send", "send_fax", "--project", "demo", "--wait", "--timeout", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["error"]["code"] == "unknown_action"

    started = time.monotonic()
    engine_process.send_signal(signal.SIGTERM)
    assert engine_process.wait(timeout=30) == 0
    assert time.monotonic() - started < 10, "drained and exited within the bound"
    assert engine_process.stdout is not None
    tail = engine_process.stdout.read()
    assert '"engine.stopping"' in tail and '"engine.stopped"' in tail


def test_help_documents_every_setting() -> None:
    shown = subprocess.run(
        [*COMMAND, "run", "--help"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    for field in EngineSettings.model_fields.values():
        assert isinstance(field.json_schema_extra, dict)
        assert str(field.json_schema_extra["env"]) in shown


def test_schemas_check_passes_on_the_committed_files() -> None:
    checked = subprocess.run(
        [*COMMAND, "schemas", "--check"], capture_output=True, text=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stderr


def test_invalid_settings_fail_clearly() -> None:
    env = dict(os.environ, EXECUTION_HTTP_ALLOWED_NETWORKS="not-a-network")
    ran = subprocess.run(
        [*COMMAND, "run"], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert ran.returncode == 2
    assert "not-a-network" in ran.stderr


def test_schemas_reads_no_settings() -> None:
    # A variable only `run` reads is bad: the command that reads none is not stopped by it.
    env = dict(os.environ, EXECUTION_HTTP_ALLOWED_NETWORKS="not-a-network", SMTP_PORT="x")
    checked = subprocess.run(
        [*COMMAND, "schemas", "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_sighup_drains_and_exits_zero(engine_process: subprocess.Popen[str]) -> None:
    # A closed terminal: stopped like SIGTERM, so a local broker it started stops with it.
    engine_process.send_signal(signal.SIGHUP)
    assert engine_process.wait(timeout=30) == 0
    assert engine_process.stdout is not None
    assert '"engine.stopped"' in engine_process.stdout.read()
