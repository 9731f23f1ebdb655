"""A development PKI served by its own process over real HTTP on a loopback port
(``python -m devpki.server``), for tests that run the service as deployed.

    pki, server = served_pki(tmp_dir, hsm)      # the PKI's URLs name the server's port
    with server:
        requests.get(server.url + "/pki/crl/jpki-auth.crl")

The PKI is created with the server's base URL, since the development PKI writes its
CRL, OCSP, caIssuers and TSA URLs into its certificates when it is first made.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

from devpki import DevPki
from hsm import Hsm

PROJECT_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PkiServer:
    """``python -m devpki.server`` in a subprocess; ``url`` is its base URL."""

    def __init__(self, directory: Path, port: int, *, startup_seconds: float = 20.0) -> None:
        self.directory = directory
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.startup_seconds = startup_seconds
        self.log_path = directory.parent / f"pki-server-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PkiServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devpki.server",
                "--data",
                str(self.directory),
                "--port",
                str(self.port),
            ],
            cwd=PROJECT_DIR,
            env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"PKI server exited at start:\n{self.log()}")
            try:
                if (
                    requests.get(self.url + "/pki/ca/service-root.cer", timeout=1).status_code
                    == 200
                ):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"PKI server did not start in {self.startup_seconds} s:\n{self.log()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (the port then refuses connections)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def __enter__(self) -> PkiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def served_pki(directory: Path, hsm: Hsm) -> tuple[DevPki, PkiServer]:
    """A new development PKI in ``directory`` whose URLs name a free loopback port, and a
    (not yet started) server for it on that port. Its roots are exported to
    ``directory / "trust"``."""
    port = free_port()
    pki = DevPki.create(directory, hsm, base_url=f"http://127.0.0.1:{port}")
    pki.export_trust(directory / "trust")
    return pki, PkiServer(directory, port)
