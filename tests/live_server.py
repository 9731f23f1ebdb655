"""The real served process for tests: ``dairi serve`` (gunicorn, several workers) on a
free loopback port, pointed at a test's settings through DAIRI_* variables.

    with LiveServer(app_settings, workers=2) as server:
        requests.get(server.url + "/healthz")

The database must be migrated first (the ``app`` fixture does it). Each worker
logs in to the test's SoftHSM token itself, after fork, as in production.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from helpers_cli import cli_environment

from app.dev.served_process import ServedProcess, free_loopback_port
from app.settings import Settings

DAIRI = str(Path(sys.executable).with_name("dairi"))


class LiveServer(ServedProcess):
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
        port = free_loopback_port()
        super().__init__(
            port,
            Path(settings.data_dir) / f"server-{port}.log",
            startup_seconds=startup_seconds,
        )
        self.settings = settings
        # False: leave DAIRI_PUBLIC_BASE_URL unset, so the served process derives it
        # from the address ``dairi serve`` binds (what a newcomer's ``make run`` does).
        self.set_public_base_url = set_public_base_url
        self.workers = workers
        self.extra_env = dict(env or {})

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
