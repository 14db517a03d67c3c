"""Child processes of a benchmark: the engine (the real CLI), the baselines, the HTTP target."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.kafka_io import RunTopics

ROOT = Path(__file__).resolve().parent.parent
ENGINE_CLI = Path(sys.executable).with_name("execution-engine")
# A checkout (with its own .venv) whose engine the `baseline` kind runs, for A/B figures in one
# run: `BENCH_BASELINE=/tmp/base python -m bench passthrough --kinds engine,baseline,raw`.
BASELINE = os.environ.get("BENCH_BASELINE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def engine_env(bootstrap: str, topics: RunTopics, **settings: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        EXECUTION_REQUESTS_TOPIC=topics.requests,
        EXECUTION_RESULTS_TOPIC=topics.results,
        EXECUTION_LOGS_TOPIC=topics.logs,
        EXECUTION_DEAD_LETTER_TOPIC=topics.dead_letter,
        EXECUTION_GROUP_ID=topics.group,
        # The code under test is this checkout's, whatever the virtualenv points at.
        PYTHONPATH=str(ROOT),
        # Several engines on one host must not fight over the operations port.
        EXECUTION_HTTP_PORT=str(free_port()),
        VAULT_URL="http://127.0.0.1:9",
    )
    env.update(settings)
    return env


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (man 5 proc).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc (Linux)."""
    current = peak = 0.0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    current = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return current, peak


@dataclass
class Child:
    """A child process whose RSS is sampled. stderr always goes to `<log_dir>/<name>.err`;
    stdout (the engine's JSON log lines) to `<name>.log` only when asked: writing it to disk
    would measure the disk."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    keep_stdout: bool = False
    # py-spy attaches and writes collapsed stacks to `<log_dir>/<name>.pyspy.txt`.
    profile: bool = False
    sample_every_s: float = 0.05
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = None
    # (seconds since start, RSS MB)
    rss: list[tuple[float, float]] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0
    # (wall time, CPU seconds so far), one per sample: CPU use between two moments.
    cpu_samples: list[tuple[float, float]] = field(default_factory=list)
    started_at: float = 0.0
    _sampler: threading.Thread | None = None
    _profiler: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        out = (self.log_dir / f"{self.name}.log").open("wb") if self.keep_stdout else None
        with (self.log_dir / f"{self.name}.err").open("wb") as err:
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out or subprocess.DEVNULL,
                stderr=err,
            )
        if out is not None:
            out.close()
        if self.profile:
            self._profiler = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(self.proc.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--nonblocking",
                    "--output",
                    str(self.log_dir / f"{self.name}.pyspy.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=(self.log_dir / f"{self.name}.pyspy.err").open("wb"),
            )
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def cpu_at(self, moment: float) -> float:
        """CPU seconds used by `moment` (wall time), interpolated between the samples around
        it."""
        before = (self.started_at, 0.0)
        for at, cpu in self.cpu_samples:
            if at > moment:
                span = at - before[0]
                share = (moment - before[0]) / span if span > 0 else 0.0
                return before[1] + (cpu - before[1]) * share
            before = (at, cpu)
        return before[1]

    def stderr_tail(self, lines: int = 20) -> str:
        try:
            text = (self.log_dir / f"{self.name}.err").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (the engine drains and exits 0), SIGKILL after `timeout_s`."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._sampler is not None:
            self._sampler.join()
        if self._profiler is not None:
            self._profiler.wait(30)
        return proc.returncode

    def _sample(self) -> None:
        proc = self.proc
        assert proc is not None
        while proc.poll() is None:
            current, peak = rss_mb(proc.pid)
            if current:
                self.rss.append((time.time() - self.started_at, current))
                self.peak_rss_mb = max(self.peak_rss_mb, peak)
                self.cpu_s = max(self.cpu_s, cpu_seconds(proc.pid))
                self.cpu_samples.append((time.time(), self.cpu_s))
            time.sleep(self.sample_every_s)


def engine(
    name: str,
    bootstrap: str,
    topics: RunTopics,
    log_dir: Path,
    *,
    keep_stdout: bool = False,
    profile: bool = False,
    baseline: bool = False,
    **settings: str,
) -> Child:
    """The engine of this checkout, or (`baseline`) the one of `BENCH_BASELINE`."""
    root, cli = ROOT, ENGINE_CLI
    if baseline:
        if not BASELINE:
            raise SystemExit("the baseline kind needs BENCH_BASELINE=<a checkout with .venv>")
        root = Path(BASELINE).resolve()
        cli = root / ".venv" / "bin" / "execution-engine"
    return Child(
        name,
        [str(cli), "run", "--local-kafka", "never"],
        engine_env(bootstrap, topics, **settings),
        log_dir,
        keep_stdout,
        profile,
        cwd=root,
    )


def python_module(name: str, module: str, args: list[str], log_dir: Path) -> Child:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return Child(name, [sys.executable, "-m", module, *args], env, log_dir, True)
