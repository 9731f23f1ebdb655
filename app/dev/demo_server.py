"""The service ``dairi demo`` talks to when it is given no ``--url``: ``dairi serve``'s
gunicorn, on a free loopback port, for the demo's run only.

The served process reads the demo's settings from ``DAIRI_*`` variables (every
setting, so a configuration given programmatically is served as is). Its
``public_base_url`` stays the configured one: the mandate ACs it issues name the
status services of the service the settings describe (``make run``'s address by
default), not the port that lives only as long as the demo.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

from app.settings import Settings

STARTUP_SECONDS = 180.0  # a loaded machine starts gunicorn slowly


class DemoServerFailed(RuntimeError):
    pass


def settings_environment(settings: Settings) -> dict[str, str]:
    """``DAIRI_*`` variables that make ``load_settings`` give back ``settings``."""
    env: dict[str, str] = {}
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, enum.Enum):
            text = str(value.value)
        elif isinstance(value, tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        env[f"DAIRI_{field.name.upper()}"] = text
    return env


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoServer:
    """gunicorn serving ``app.serving.wsgi`` as ``dairi serve`` does (its configuration,
    one worker), on 127.0.0.1 and a free port; ``url`` once started. Set-up
    (token, database, PKI) is the caller's: the demo has done it before starting this.
    The control socket is left off so a ``make run`` on the same data directory keeps
    its own."""

    def __init__(self, settings: Settings, *, workers: int = 1) -> None:
        self.settings = settings
        self.workers = workers
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(settings.data_dir) / "demo-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
        return [
            gunicorn,
            "--config",
            "python:app.serving.gunicorn_conf",
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--no-control-socket",
            "--access-logfile",
            "-",
            "app.serving.wsgi:application",
        ]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAIRI_")}
        if "DAIRI_CONFIG" in os.environ:
            env["DAIRI_CONFIG"] = os.environ["DAIRI_CONFIG"]
        env.update(settings_environment(self.settings))
        return env

    def start(self) -> DemoServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - fixed argv
                self.command(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DemoServerFailed(f"the service exited at start; see {self.log_path}")
            try:
                # Ready: the database takes a write and the HSM answers in the worker.
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise DemoServerFailed(
            f"the service did not become ready in {STARTUP_SECONDS:.0f} s; see {self.log_path}"
        )

    def stop(self) -> None:
        """SIGTERM to gunicorn's process group (its workers), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
