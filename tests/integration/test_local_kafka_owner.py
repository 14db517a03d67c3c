"""The local broker never outlives its owner: SIGKILL the process that started it and the broker
stops; a broker left behind anyway (its watchdog killed too) is stopped by the next start on its
data directory, never reused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from consumer.localkafka.ownership import PIDFILE, alive

# An owner: starts a broker on the data dir, prints the broker's and its watchdog's pids, waits.
OWNER = """
import json, sys, time
from pathlib import Path
from consumer.localkafka import LocalKafka
broker = LocalKafka(data_dir=Path(sys.argv[1]))
broker.start()
print(json.dumps({"broker": broker._proc.pid, "watchdog": broker._watchdog.pid}), flush=True)
time.sleep(600)
"""


def start_owner(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, int]]:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, owner.stderr.read() if owner.stderr else ""
    pids: dict[str, int] = json.loads(line)
    return owner, pids


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not alive(pid)


def test_a_broker_stops_with_its_owner_and_a_leftover_is_stopped_not_reused(
    tmp_path: Path,
) -> None:
    first, pids = start_owner(tmp_path)
    try:
        # An owner and its watchdog both killed (as an engine before this guard was): the
        # broker is left running, its pidfile naming it.
        os.kill(pids["watchdog"], signal.SIGKILL)
        first.kill()
        first.wait()
        time.sleep(1.0)
        assert alive(pids["broker"]), "the leftover broker runs on"
        assert json.loads((tmp_path / PIDFILE).read_text())["pid"] == pids["broker"]

        second, again = start_owner(tmp_path)
        try:
            assert not alive(pids["broker"]), "the leftover was stopped"
            assert again["broker"] != pids["broker"], "a new broker, not the leftover"
            assert second.stderr is not None
            # Killed outright: the watchdog stops the broker it started.
            second.kill()
            second.wait()
            assert wait_gone(again["broker"], 45), "the broker outlived its owner"
            assert wait_gone(again["watchdog"], 5)
            assert not (tmp_path / PIDFILE).exists()
            assert "stopping the Kafka broker pid" in second.stderr.read()
        finally:
            if second.poll() is None:
                second.kill()
            for pid in (again["broker"], again["watchdog"]):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
    finally:
        for pid in (pids["broker"], pids["watchdog"]):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
