"""A local broker never outlives the process that started it, and is never silently reused.

Two guards. A watchdog: a small process, child of the owner in its own session (a Ctrl-C or a
closed terminal does not reach it), that stops the broker once its parent is gone, whatever
killed it (SIGKILL, a crash, a SIGHUP before the engine's handlers were installed). And a
pidfile in the data directory (`broker.pid`: the broker's pid, its owner's, its port): a broker
found still running from a dead owner is stopped before a new one starts there.

Standard library only: the watchdog runs this file as a script (`python ownership.py OWNER
BROKER DATA_DIR`), without importing the engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PIDFILE = "broker.pid"
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.5


@dataclass(frozen=True)
class BrokerRecord:
    pid: int  # the broker's JVM
    owner: int  # the process that started it
    port: int

    def describe(self) -> str:
        return f"Kafka broker pid {self.pid} on port {self.port}, started by pid {self.owner}"


def write_record(data_dir: Path, record: BrokerRecord) -> None:
    body = {"pid": record.pid, "owner": record.owner, "port": record.port}
    (data_dir / PIDFILE).write_text(json.dumps(body) + "\n", encoding="utf-8")


def clear_record(data_dir: Path) -> None:
    (data_dir / PIDFILE).unlink(missing_ok=True)


def read_record(data_dir: Path) -> BrokerRecord | None:
    try:
        body = json.loads((data_dir / PIDFILE).read_text(encoding="utf-8"))
        return BrokerRecord(int(body["pid"]), int(body["owner"]), int(body["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Exited, not yet reaped (an init that reaps slowly, or not at all, in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False  # no /proc (macOS): kill(pid, 0) is the answer
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def runs_config(pid: int, config_path: Path) -> bool:
    """Is `pid` a broker started with this server.properties (not a process that reused the
    pid)?"""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        found = subprocess.run(
            ["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        args = found.stdout
    return str(config_path) in args


def stop_process(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (Kafka shuts down cleanly), SIGKILL after `timeout_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def leftover(data_dir: Path, config_path: Path) -> BrokerRecord | None:
    """The broker the pidfile names when it still runs; a stale pidfile is removed."""
    record = read_record(data_dir)
    if record is None:
        return None
    if alive(record.pid) and runs_config(record.pid, config_path):
        return record
    clear_record(data_dir)
    return None


def stop_orphan(
    data_dir: Path, config_path: Path, log: Callable[[str], None]
) -> BrokerRecord | None:
    """Stop a broker left running here by an owner that is gone. Returns the broker when its
    owner still runs (it is that process's to stop), else None."""
    record = leftover(data_dir, config_path)
    if record is None:
        return None
    if record.owner != os.getpid() and alive(record.owner):
        return record
    log(f"stopping the {record.describe()}, which has exited")
    stop_process(record.pid)
    clear_record(data_dir)
    return None


def start_watchdog(broker_pid: int, data_dir: Path) -> subprocess.Popen[bytes]:
    """A child process that stops the broker once this process is gone."""
    return subprocess.Popen(
        [sys.executable, __file__, str(os.getpid()), str(broker_pid), str(data_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def watch(owner: int, broker: int, data_dir: Path) -> None:
    # Our parent is the owner: once it is gone we are re-parented, whatever pid it had.
    while os.getppid() == owner:
        if not alive(broker):
            return
        time.sleep(_POLL_S)
    stop_process(broker)
    record = read_record(data_dir)
    if record is not None and record.pid == broker:
        clear_record(data_dir)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    watch(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
