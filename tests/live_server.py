"""The real served process for tests: ``dairi serve`` (gunicorn, several workers) on a
free loopback port, pointed at a test's settings through DAIRI_* variables.

    with LiveServer(app_settings, workers=2) as server:
        requests.get(server.url + "/healthz")

The database must be migrated first (the ``app`` fixture does it). Each worker
logs in to the test's SoftHSM token itself, after fork, as in production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests
from helpers_cli import cli_environment

from app.settings import Settings

DAIRI = str(Path(sys.executable).with_name("dairi"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``dairi serve`` in a subprocess; ``url`` is its base URL once started."""

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
        startup_seconds: float = 90.0,
        set_public_base_url: bool = True,
    ) -> None:
        self.settings = settings
        # False: leave DAIRI_PUBLIC_BASE_URL unset, so the served process derives it
        # from the address ``dairi serve`` binds (what a newcomer's ``make run`` does).
        self.set_public_base_url = set_public_base_url
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        self.startup_seconds = startup_seconds
        self.log_path = Path(settings.data_dir) / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAIRI_")}
        env.update(cli_environment(self.settings))
        if self.set_public_base_url:
            env["DAIRI_PUBLIC_BASE_URL"] = self.url
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        """What is run: ``dairi serve`` (set-up, then gunicorn)."""
        return [
            DAIRI,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]

    def start(self) -> LiveServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {self.startup_seconds} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=5)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
