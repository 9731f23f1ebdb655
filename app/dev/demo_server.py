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
import sys
from pathlib import Path

from app.dev.served_process import ServedProcess, free_loopback_port
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


class DemoServer(ServedProcess):
    """gunicorn serving ``app.serving.wsgi`` as ``dairi serve`` does (its configuration,
    one worker), on 127.0.0.1 and a free port; ``url`` once started. Set-up
    (token, database, PKI) is the caller's: the demo has done it before starting this.
    The control socket is left off so a ``make run`` on the same data directory keeps
    its own. Ready when ``/readyz`` answers: the database takes a write and the HSM
    answers in the worker."""

    ready_path = "/readyz"
    poll_seconds = 0.2
    stop_seconds = 20.0
    log_mode = "wb"

    def __init__(self, settings: Settings, *, workers: int = 1) -> None:
        super().__init__(
            free_loopback_port(),
            Path(settings.data_dir) / "demo-server.log",
            startup_seconds=STARTUP_SECONDS,
        )
        self.settings = settings
        self.workers = workers

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

    def failure(self, reason: str) -> Exception:
        return DemoServerFailed(f"{reason}; see {self.log_path}")
