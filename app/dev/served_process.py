"""A server in a child process on a free loopback port, for the demo, the benchmarks and
the tests: started in its own process group (so its workers stop with it), ready once
a URL of its answers 200, stopped with SIGTERM and, if it lingers, SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import requests


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedProcess:
    """Subclasses give :meth:`command` and may change :meth:`environment`,
    ``ready_path`` and :meth:`failure`; ``url`` is the base URL once started."""

    ready_path = "/healthz"
    poll_seconds = 0.1
    stop_seconds = 15.0
    log_mode = "ab"  # "wb": each start begins a new log

    def __init__(
        self, port: int, log_path: Path, *, startup_seconds: float, cwd: Path | None = None
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.startup_seconds = startup_seconds
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def failure(self, reason: str) -> Exception:
        """What :meth:`start` raises: by default the reason with the process's log."""
        return RuntimeError(f"{reason}:\n{self.log()}")

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open(self.log_mode) as log:
            self.process = subprocess.Popen(  # noqa: S603 - the subclass's fixed argv
                self.command(),
                cwd=self.cwd,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.failure("the process exited at start")
            try:
                if requests.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(self.poll_seconds)
        self.stop()
        raise self.failure(f"the process was not ready in {self.startup_seconds:.0f} s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it lingers (the port then refuses
        connections)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=self.stop_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
