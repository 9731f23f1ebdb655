"""Real loopback OCSP/CRL responders for revocation fault tests (issue 16 item 8).

``Responder`` is an HTTP server in a test thread that answers OCSP and CRL
requests for one development CA, or — while ``hang`` is set — reads each request
and never answers (the connection stays open until the test ends). Every request
it receives is recorded with its arrival time. ``refused_url`` names a loopback
port nothing listens on, so a connection to it is refused at once.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from devpki.ca import DevCA, utcnow


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    at: float  # time.monotonic() when the request had been read


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def _answer(self, body: bytes | None) -> None:
        owner = self.server.owner
        owner.record(Received(self.command, self.path, time.monotonic()))
        if owner.hang:
            # Accepted and read, never answered: the client waits for its own time-out.
            owner.released.wait(120)
            self.close_connection = True
            return
        if self.command == "GET" and self.path.endswith(".crl"):
            status, content_type, content = 200, "application/pkix-crl", owner.ca.crl(now=utcnow())
        elif self.command == "POST" and "/ocsp" in self.path and body is not None:
            status, content_type = 200, "application/ocsp-response"
            content = owner.ca.ocsp_response(body, now=utcnow())
        else:
            status, content_type, content = 404, "text/plain", b"not found"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def do_GET(self) -> None:
        self._answer(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._answer(self.rfile.read(length))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: Responder


class Responder:
    """OCSP and CRL for ``ca`` on a loopback port; ``hang=True`` answers nothing."""

    def __init__(self, ca: DevCA | None = None, *, hang: bool = False) -> None:
        self.ca = ca
        self.hang = hang
        self.released = threading.Event()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def requests_to(self, fragment: str) -> list[Received]:
        """The requests received so far whose path contains ``fragment``."""
        with self._lock:
            return [r for r in self.received if fragment in r.path]

    def close(self) -> None:
        self.released.set()  # let hanging handlers end
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Responder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def refused_url() -> str:
    """A loopback URL whose port has no listener: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
