"""A real forward proxy for the egress-proxy tests: Debian's tinyproxy, run in the foreground on
a free loopback port with its log in a file the test reads.

tinyproxy comes from PATH, else from the Debian package `tinyproxy-bin`, fetched with
`apt-get download` and unpacked into the cache (not installed: no service is set up), the way
`scripts/deploy_check.py` gets promtool. `find_tinyproxy()` is None when neither works.

    python -m tests.tinyproxy     # fetches it if needed and prints its path
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

PACKAGE = "tinyproxy-bin"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "puraify-execution-engine"


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def find_tinyproxy() -> str | None:
    on_path = shutil.which("tinyproxy")
    if on_path:
        return on_path
    unpacked = cache_dir() / "tinyproxy-deb" / "usr" / "bin" / "tinyproxy"
    if unpacked.is_file():
        return str(unpacked)
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None
    with tempfile.TemporaryDirectory() as download:
        fetched = _run(["apt-get", "download", PACKAGE], cwd=download)
        if fetched.returncode != 0 and os.geteuid() == 0:
            _run(["apt-get", "update"])  # a fresh machine may have no package lists yet
            fetched = _run(["apt-get", "download", PACKAGE], cwd=download)
        debs = sorted(Path(download).glob(f"{PACKAGE}_*.deb"))
        if fetched.returncode != 0 or not debs:
            return None
        target = unpacked.parents[2]
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        if _run(["dpkg-deb", "-x", str(debs[-1]), str(target)]).returncode != 0:
            return None
    return str(unpacked) if unpacked.is_file() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TinyProxy:
    """tinyproxy on 127.0.0.1 (loopback clients only), Basic credentials `user`/`password`;
    `log()` is what it has logged so far (each request's line among it)."""

    def __init__(self, binary: str, *, user: str, password: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self.user = user
        self.password = password
        self._dir = tempfile.TemporaryDirectory(prefix="tinyproxy-")
        self._log = Path(self._dir.name) / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}"

    def log(self) -> str:
        return self._log.read_text("utf-8", "replace")

    def __enter__(self) -> TinyProxy:
        config = Path(self._dir.name) / "tinyproxy.conf"
        # No ConnectPort line: CONNECT to any port (the stand-ins listen on free ports).
        config.write_text(
            f"Port {self.port}\nListen 127.0.0.1\nTimeout 30\nLogLevel Info\nMaxClients 50\n"
            f"Allow 127.0.0.1\nBasicAuth {self.user} {self.password}\nDisableViaHeader Yes\n"
        )
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                [self.binary, "-d", "-c", str(config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tinyproxy exited: {self.log()[-2000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"tinyproxy did not listen: {self.log()[-2000:]}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()


if __name__ == "__main__":
    print(find_tinyproxy() or "tinyproxy: not on PATH and Debian's package is not reachable")
