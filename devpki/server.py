"""The development PKI's CRLs, OCSP responders, CA certificates and RFC 3161 TSA over
real HTTP, from its state directory, in a process of its own:

    python -m devpki.server --data var/pki --port 8090

It answers the URLs the development PKI wrote into its certificates (AIA caIssuers
and OCSP, CRL distribution points: ``<base_url>/pki/...``), so a service run with
``dev_mode = false`` reaches it exactly as it would reach a real CA's responders:
with pyhanko-certvalidator's requests fetchers and pyHanko's ``HTTPTimeStamper``.
Create the PKI with the base URL this server will listen on (``DevPki.create(...,
base_url="http://127.0.0.1:8090")``): the URLs are fixed when the PKI is made.

Revocations made by another process (the CLI, a test) are seen at the next request:
each CA re-reads its state file when it changed. Requests are answered on threads,
one at a time (the CA and TSA objects are not shared between threads concurrently).
Development and tests only: no TLS, no access control.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from devpki.pki import DevPki

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024  # an OCSP or time-stamp request is a few hundred bytes

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
}

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class PkiWsgiApp:
    """A WSGI application answering ``/pki/...`` from one :class:`DevPki`."""

    def __init__(self, pki: DevPki) -> None:
        self.pki = pki
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = str(environ.get("PATH_INFO", "/"))
        body: bytes | None = None
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or "")
            except ValueError:
                return _answer(start_response, 411, "text/plain", b"length required")
            if length < 0 or length > MAX_REQUEST_BYTES:
                return _answer(start_response, 413, "text/plain", b"request too large")
            body = environ["wsgi.input"].read(length)
        elif method not in {"GET", "HEAD"}:
            return _answer(start_response, 405, "text/plain", b"method not allowed")
        try:
            with self._lock:
                status, content_type, content = self.pki.serve(
                    "GET" if method == "HEAD" else method, path, body
                )
        except Exception:  # one bad request must not stop the responder
            logger.exception("development PKI: %s %s failed", method, path)
            return _answer(start_response, 500, "text/plain", b"internal error")
        return _answer(start_response, status, content_type, b"" if method == "HEAD" else content)


def _answer(
    start_response: StartResponse, status: int, content_type: str, content: bytes
) -> list[bytes]:
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(content))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [content]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def make_pki_server(pki: DevPki, host: str, port: int) -> WSGIServer:
    """A threaded WSGI server for ``pki`` bound to ``host:port`` (0: any free port)."""
    return make_server(
        host, port, PkiWsgiApp(pki), server_class=_ThreadingServer, handler_class=_QuietHandler
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devpki.server",
        description="Serve the development PKI's CRLs, OCSP, CA certificates and TSA over HTTP.",
    )
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help="the development PKI's directory (as made by `dairi dev pki`)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if not DevPki.exists(args.data):
        print(f"error DEV_PKI_ERROR: no development PKI in {args.data}", file=sys.stderr)
        return 2
    pki = DevPki(args.data)
    server = make_pki_server(pki, args.host, args.port)
    host, port = server.server_address[:2]
    if not pki.base_url.endswith(f":{port}"):
        logger.warning(
            "the PKI's certificates name %s, this server listens on port %s", pki.base_url, port
        )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    logger.info("development PKI served on http://%s:%s (base URL %s)", host, port, pki.base_url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
