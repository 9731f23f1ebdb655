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
import sys
from pathlib import Path

from app.dev.served_process import ServedProcess, free_loopback_port
from devpki import DevPki
from hsm import Hsm

PROJECT_DIR = Path(__file__).resolve().parent.parent


class PkiServer(ServedProcess):
    """``python -m devpki.server`` in a subprocess; ``url`` is its base URL."""

    ready_path = "/pki/ca/service-root.cer"
    stop_seconds = 10.0

    def __init__(self, directory: Path, port: int, *, startup_seconds: float = 20.0) -> None:
        super().__init__(
            port,
            directory.parent / f"pki-server-{port}.log",
            startup_seconds=startup_seconds,
            cwd=PROJECT_DIR,
        )
        self.directory = directory

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "devpki.server",
            "--data",
            str(self.directory),
            "--port",
            str(self.port),
        ]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(PROJECT_DIR)}


def served_pki(directory: Path, hsm: Hsm) -> tuple[DevPki, PkiServer]:
    """A new development PKI in ``directory`` whose URLs name a free loopback port, and a
    (not yet started) server for it on that port. Its roots are exported to
    ``directory / "trust"``."""
    port = free_loopback_port()
    pki = DevPki.create(directory, hsm, base_url=f"http://127.0.0.1:{port}")
    pki.export_trust(directory / "trust")
    return pki, PkiServer(directory, port)
