"""gunicorn's configuration for dairi — what ``dairi serve`` runs:

    gunicorn -c python:app.serving.gunicorn_conf --workers N --bind HOST:PORT \
        app.serving.wsgi:application

Slow clients (issue 9.6). gunicorn's default sync worker reads a request on the
one thread that also runs the application, with no time-out, so two clients that
send half a request hold both workers until gunicorn kills them. Here each worker
is gunicorn's threaded worker (``gthread``): connections are read on a pool of
threads, every read and write of a connection gives up after
``http_idle_timeout_seconds`` of silence, and a request's headers and body must
have arrived ``http_receive_timeout_seconds`` after the server began reading it
(a client trickling a byte at a time is dropped too). The application still runs
one request at a time per process (DESIGN §3: one PKCS#11 session per process,
asn1crypto objects never used by two threads at once): each request's body is
received first (``app.http.edge``), then the request is handled under a process-wide
lock. A slow client therefore holds one thread, never the application. The views
marked ``lock_free`` (the liveness probe, verification) run beside the locked
request: verification keeps its parsed asn1crypto objects per thread
(``signing.verification_asn1``, ``signing.verification_cache``), so they are still
never shared.

This bounds what one slow client costs; it does not make the service immune to
many of them. In production put a buffering reverse proxy in front (nginx with
``proxy_request_buffering on``, the default): it receives whole requests before
passing them on, so slow clients cost the proxy a connection each, not a thread here.

The control socket (gunicorn ≥ 25.1, ``gunicornc``) lives in the data directory,
not in a path shared by every gunicorn of the user (issue 9.15).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import ThreadWorker

from app.http.edge import SERIALISE_KEY
from app.settings import load_settings

_settings = load_settings()
logger = logging.getLogger(__name__)

# The application's log lines in gunicorn's own format, so that they line up with
# gunicorn's: [2026-11-30 09:00:00 +0000] [1234] [WARNING] hsm.session: …
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
# dairi's own packages log from INFO up; the libraries under them from WARNING up.
DAIRI_LOGGERS = ("app", "hsm", "identity", "delegation", "signing", "audit", "devpki", "dairi")


def configure_logging() -> None:
    """Send every log record of this worker to stderr in :data:`LOG_FORMAT` (once)."""
    root = logging.getLogger()
    if any(getattr(h, "dairi", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    handler.dairi = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in DAIRI_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def post_worker_init(worker: Any) -> None:
    """gunicorn hook, in each worker once the application is loaded: logging, then one
    line saying what this worker serves (never a URL with credentials, never a PIN)."""
    configure_logging()
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("dairi")
    except PackageNotFoundError:
        release = "0+unknown"
    backend = _settings.database_url.split(":", 1)[0].split("+", 1)[0]
    logger.info(
        "worker ready: dairi %s, database %s, dev_mode=%s", release, backend, _settings.dev_mode
    )


worker_class = "app.serving.gunicorn_conf.BoundedThreadWorker"
# Threads per worker: each holds one connection while its request is received or its
# answer sent; the application itself runs one request at a time per worker.
threads = 16
control_socket = str(_settings.data_dir / "gunicorn.ctl")
control_socket_mode = 0o600


class ClientTooSlow(NoMoreData, TimeoutError):
    """The client did not send (or take) its request in time. gunicorn treats it as a
    client gone away (no traceback logged); the edge answers 408 if it came mid-body."""

    def __str__(self) -> str:
        return "client too slow"


class ClientSocket(socket.socket):
    """An accepted connection whose blocking reads and writes are bounded: each by
    the idle time-out, and reads also by the request's receive deadline."""

    __slots__ = ("_deadline", "_idle", "too_slow")
    _deadline: float | None
    _idle: float
    too_slow: bool

    @classmethod
    def adopt(cls, sock: socket.socket, idle_seconds: float) -> ClientSocket:
        """Take over ``sock``'s descriptor (``sock`` is left detached)."""
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted._idle = idle_seconds
        adopted._deadline = None
        adopted.too_slow = False
        socket.socket.setblocking(adopted, False)  # as gunicorn left the original
        return adopted

    def start_request(self, receive_seconds: float) -> None:
        """A request begins: its headers and body must arrive within ``receive_seconds``."""
        self._deadline = time.monotonic() + receive_seconds

    def setblocking(self, flag: bool) -> None:
        # gunicorn makes a connection blocking before reading it: blocking, with a limit.
        if flag:
            self.settimeout(self._idle)
        else:
            super().setblocking(False)

    def _bound_read(self) -> None:
        timeout = self.gettimeout()
        if timeout == 0.0 or self._deadline is None:
            return  # non-blocking (the event loop's), or no request yet
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.too_slow = True
            raise ClientTooSlow()
        if timeout is None or timeout > remaining:
            self.settimeout(remaining)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._bound_read()
        try:
            return super().recv(bufsize, flags)
        except TimeoutError as exc:
            self.too_slow = True
            raise ClientTooSlow() from exc

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._bound_read()
        try:
            return super().recv_into(buffer, nbytes, flags)
        except TimeoutError as exc:
            self.too_slow = True
            raise ClientTooSlow() from exc

    def sendall(self, data: Any, flags: int = 0) -> None:
        # socket.sendall's time-out bounds the whole answer; a slow but steady reader
        # of a large answer is served, one silent for the idle time-out is not.
        if self.gettimeout() != 0.0:
            self.settimeout(self._idle)
        view = memoryview(data).cast("B")
        try:
            while view:
                view = view[self.send(view, flags) :]
        except TimeoutError as exc:
            self.too_slow = True
            raise ClientTooSlow() from exc


def _nothing() -> None:
    return None


class AppLock:
    """The lock a worker's application runs under; knows since when it is held and
    tells ``started``/``finished`` (called with the lock held) when it is taken and let go."""

    def __init__(
        self, started: Callable[[], None] = _nothing, finished: Callable[[], None] = _nothing
    ) -> None:
        self._lock = threading.Lock()
        self._started = started
        self._finished = finished
        self.held_since: float | None = None

    def __enter__(self) -> AppLock:
        self._lock.acquire()
        self.held_since = time.monotonic()
        self._started()
        return self

    def __exit__(self, *exc: object) -> None:
        self.held_since = None
        try:
            self._finished()
        finally:
            self._lock.release()


# How many workers' applications are running a request right now; made here, in the
# arbiter, and shared by the workers it forks. A worker killed mid-request leaves it
# one too high, which only makes workers keep accepting (see BoundedThreadWorker).
_busy_workers = multiprocessing.Value("i", 0)


class BoundedThreadWorker(ThreadWorker):
    """gunicorn's threaded worker with bounded connections and a serialised application.

    Like a sync worker, a worker whose application is busy takes no new connection
    while another worker is idle: new requests go to the idle one instead of waiting
    behind a slow request. The last worker to become busy keeps accepting, so that
    the liveness probe (``lock_free``) is answered even then.
    """

    wsgi: Callable[..., Iterable[bytes]]  # the application, set by gunicorn's load_wsgi

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._accept_paused = False
        self.app_lock = AppLock(self._application_started, self._application_finished)

    def _application_started(self) -> None:
        with _busy_workers.get_lock():
            _busy_workers.value += 1
            another_is_idle = _busy_workers.value < self.cfg.workers
        if another_is_idle:
            self.method_queue.defer(self._pause_accepting, True)

    def _application_finished(self) -> None:
        with _busy_workers.get_lock():
            _busy_workers.value -= 1
        self.method_queue.defer(self._pause_accepting, False)

    def _pause_accepting(self, paused: bool) -> None:
        """On the event loop: (stop) taking new connections."""
        self._accept_paused = paused
        self.set_accept_enabled(self.nr_conns < self.worker_connections)

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.alive and not self._accept_paused)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        application = self.wsgi
        lock = self.app_lock

        def serialised(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            environ[SERIALISE_KEY] = lock  # app.http.edge takes it once the body is in
            return application(environ, start_response)

        self.wsgi = serialised

    def notify(self) -> None:
        """The heartbeat the arbiter watches. While a request runs it reports when
        that request started, so one stuck past gunicorn's ``timeout`` gets this worker
        replaced, as a sync worker would be (the event loop itself never stalls)."""
        since = self.app_lock.held_since
        if since is None:
            super().notify()
        else:
            os.utime(self.tmp.fileno(), (since, since))

    def enqueue_req(self, conn: Any) -> None:
        if not isinstance(conn.sock, ClientSocket):  # a new connection
            conn.sock = ClientSocket.adopt(conn.sock, _settings.http_idle_timeout_seconds)
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        if isinstance(conn.sock, ClientSocket):
            conn.sock.start_request(_settings.http_receive_timeout_seconds)
        return super().handle(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        sock = conn.sock
        if (
            isinstance(sock, ClientSocket)
            and sock.too_slow
            and not fs.cancelled()
            and fs.exception() is None
            and fs.result() is False
        ):
            # gunicorn would linger (on this event-loop thread, up to 2 s) for the
            # client's end of the connection; a client this slow is not waited for.
            self.log.info(
                "dropped a slow client %s: request not received or answer not taken in time",
                conn.client[0] if conn.client else "?",
            )
            self.nr_conns -= 1
            conn.close()
            return
        super().finish_request(conn, fs)
