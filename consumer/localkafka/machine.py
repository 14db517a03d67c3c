"""What the launcher needs of the machine: its cache directory, free loopback ports, log tails."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40

Logger = Callable[[str], None]


class LocalKafkaError(RuntimeError):
    """The local broker cannot run here: no Java or Maven, its jars not resolved, the broker
    failed to start (the message's first line says which; the rest quotes its log)."""


def print_to_stderr(message: str) -> None:
    print(f"[local_kafka] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    explicit = os.environ.get("PURAIFY_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "puraify-execution-engine"


def free_port() -> int:
    """Return a currently free loopback port.

    There is an unavoidable window between closing this socket and the broker binding
    the port; on a test machine that race is practically never lost.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Match the broker's own SO_REUSEADDR so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file ('' when it cannot be read)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            # Log lines can be long (stack traces); 64 KiB comfortably holds 40 of them.
            fh.seek(max(0, fh.tell() - 65536))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
