"""Anticipated failures are one line naming the cause and the setting: exit 2 for configuration,
1 at run time, no traceback (unless --debug). Loopback only: a closed port, a taken port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from consumer.cli import run as run_command
from consumer.cli.main import main
from consumer.localkafka import free_port

COMMAND = [str(Path(sys.executable).parent / "execution-engine")]


def command(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_broker_that_does_not_answer_is_one_line_exit_1() -> None:
    closed = f"127.0.0.1:{free_port()}"
    for args in (["send", "log_message", "--project", "p", "--wait"], ["tail", "results"]):
        done = command(*args, KAFKA_BOOTSTRAP_SERVERS=closed)
        assert done.returncode == 1, done.stderr
        # One line: no traceback, no "Unclosed AIOKafkaConsumer", no client log lines.
        assert done.stderr == (
            f"execution-engine {args[0]}: cannot reach Kafka at {closed}: check "
            "KAFKA_BOOTSTRAP_SERVERS (and KAFKA_SECURITY_PROTOCOL), and that the brokers run\n"
        )


def test_debug_keeps_the_traceback() -> None:
    done = command("--debug", "tail", "results", KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "KafkaConnectionError" in done.stderr


def test_a_port_in_use_names_the_setting_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = command(
            "run",
            "--local-kafka",
            "never",
            KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
            EXECUTION_HTTP_HOST="127.0.0.1",
            EXECUTION_HTTP_PORT=str(port),
        )
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("execution-engine run: the ops endpoints' address is in use")
    assert str(port) in line and "EXECUTION_HTTP_PORT" in line


@pytest.mark.parametrize(
    ("argv", "variable", "value", "expected"),
    [
        (
            ["run"],
            "EXECUTION_MAX_IN_FLIGHT",
            "abc",
            "execution-engine run: invalid setting EXECUTION_MAX_IN_FLIGHT='abc': should be a "
            "valid integer, unable to parse string as an integer (accepted: an integer >= 1)",
        ),
        (
            ["topics", "create"],
            "EXECUTION_TOPIC_PARTITIONS",
            "0",
            "execution-engine topics: invalid setting EXECUTION_TOPIC_PARTITIONS='0': should be "
            "greater than or equal to 1 (accepted: an integer >= 1)",
        ),
        (
            ["send", "log_message", "--project", "p"],
            "KAFKA_SECURITY_PROTOCOL",
            "CARRIER_PIGEON",
            "execution-engine send: invalid setting KAFKA_SECURITY_PROTOCOL='CARRIER_PIGEON': "
            "should be 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'",
        ),
    ],
)
def test_a_bad_value_is_one_line_with_name_value_and_what_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    assert main(argv) == 2
    assert capsys.readouterr().err == expected + "\n"


def test_a_local_kafka_that_cannot_run_is_one_line_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bare machine (no Maven, no Java, nothing cached) and nothing on localhost:9092.
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PURAIFY_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("JAVA_HOME", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(run_command, "_answers", lambda port: False)
    assert main(["run"]) == 1
    [line] = [line for line in capsys.readouterr().err.splitlines() if "cannot run" in line]
    assert line.startswith("execution-engine run: the local Kafka cannot run: Maven ('mvn')")
    assert "KAFKA_BOOTSTRAP_SERVERS" in line
