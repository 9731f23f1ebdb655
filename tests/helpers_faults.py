"""Breaking what the served process depends on, from inside a test (issue 16).

Each fault is real and undone by the test: a file system made read-only with
``chattr +i`` (root ignores permission bits, not the immutable flag), a small tmpfs
filled to the last byte, a loopback socket that accepts connections and never
answers (or relays to a real PostgreSQL until told to stall), and a time-stamping
authority that answers, hangs or is not listening.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from sqlalchemy import select as sql_select

from app.audit_trail.log import AuditLog
from app.audit_trail.models import AuditRecord
from app.database import make_engine, make_session_factory

# A refused request writes its audit event: the cheapest write a client can cause.
UNKNOWN_TOKEN = {"Authorization": "Bearer dairi_at_unknown-fault-probe"}
# The tests send many refused requests from one address on purpose: not rate limited.
SERVER_ENV = {"DAIRI_REFUSED_AUTH_RATE_PER_MINUTE": "1000000"}


def refused(url: str, timeout: float = 60) -> requests.Response:
    """GET /api/v1/me with an unknown token: 401 once its refusal is audited."""
    return requests.get(url + "/api/v1/me", headers=UNKNOWN_TOKEN, timeout=timeout)


def code_of(response: requests.Response) -> str | None:
    if response.headers.get("Content-Type", "").startswith("application/problem+json"):
        return response.json().get("code")  # type: ignore[no-any-return]
    return None


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
    """Seconds until ``predicate()`` held; fails the test after ``timeout`` seconds."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


def audit_chain_intact(database_url: str) -> int:
    """Verify the audit chain (raises if broken); the number of events, numbered 1..n."""
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            AuditLog(session).verify()
            sequences = list(
                session.scalars(sql_select(AuditRecord.sequence).order_by(AuditRecord.sequence))
            )
    finally:
        engine.dispose()
    assert sequences == list(range(1, len(sequences) + 1))
    return len(sequences)


def tracebacks(log: str) -> int:
    return log.count("Traceback (most recent call last)")


# --- file system faults ------------------------------------------------------------


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i`` on each existing path (a file or a directory) for the block.

    Not the SQLite ``-shm`` file: it is memory-mapped, and writing a mapped page of
    an immutable file kills the process with SIGBUS, which no real outage does.
    """
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    present = [str(p) for p in paths if p.exists()]
    result = subprocess.run(["chattr", "+i", *present], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"chattr +i is not permitted here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *present], check=True)


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` MiB mounted on ``path`` (skips the test if not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        # The server may still hold files open for a moment after it stopped.
        for _ in range(50):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Write zeros into ``directory/filler`` until the file system is full."""
    filler = directory / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError:
            pass
        # The last bytes: whatever is left below one chunk.
        try:
            while True:
                out.write(b"\0" * 512)
        except OSError:
            pass
    return filler


# --- network faults -----------------------------------------------------------------


class SilentDatabase:
    """A loopback TCP server for ``postgresql://`` URLs.

    With no upstream it accepts every connection and never answers (a PostgreSQL
    that hangs even before the start-up packet is answered). With an ``upstream``
    (host, port) it relays bytes both ways until :meth:`stall` is called: then
    relayed connections stop moving (what the client sent is swallowed) and new
    connections are accepted but never answered, until :meth:`resume`.
    """

    def __init__(self, upstream: tuple[str, int] | None = None) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, query: str = "") -> str:
        return f"postgresql://dairi@127.0.0.1:{self.port}/dairi" + (f"?{query}" if query else "")

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        """Relay again; connections that stalled are closed (their state is unknown)."""
        with self._lock:
            stalled, self._sockets = self._sockets, []
        self._stalled.clear()
        for sock in stalled:
            with contextlib.suppress(OSError):
                sock.close()

    def _keep(self, *socks: socket.socket) -> None:
        with self._lock:
            self._sockets.extend(socks)

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.upstream is None or self._stalled.is_set():
                self._keep(client)  # accepted, never answered
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            self._keep(client, server)
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        peers = {client: server, server: client}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if not self._stalled.is_set():
                        peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in peers:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> SilentDatabase:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        self.resume()


class FakeTsa:
    """An RFC 3161 time-stamping authority over HTTP on a loopback port, backed by the
    development TSA, that can be told to ``answer``, ``hang`` (read the request, never
    reply) or be ``closed`` (nothing listens: connections are refused)."""

    def __init__(self, respond: Callable[[bytes], bytes]) -> None:
        self.respond = respond
        self.mode = "answer"
        self.requests = 0
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/tsa"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                tsa.requests += 1
                if tsa.mode == "hang":
                    tsa._released.wait(60)
                    return
                answer = tsa.respond(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def _listen(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def _unlisten(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self) -> None:
        self._released.set()
        self.mode = "answer"
        if self._server is None:
            self._listen()

    def hang(self) -> None:
        self._released.clear()
        self.mode = "hang"
        if self._server is None:
            self._listen()

    def close(self) -> None:
        """Stop listening: a connection to the port is refused."""
        self._released.set()
        self._unlisten()

    def __enter__(self) -> FakeTsa:
        self.answer()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chattr_targets(database: Path) -> tuple[Path, ...]:
    """What to make immutable for a read-only SQLite database: the file, its WAL and
    its directory (not the memory-mapped -shm, see :func:`immutable`)."""
    return (database, database.with_name(database.name + "-wal"), database.parent)


def file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
