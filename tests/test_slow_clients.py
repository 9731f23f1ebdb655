"""Slow clients against the real served process (`dairi serve`, issue 9.6).

Ten connections that send part of a request and stall — or trickle it a byte at
a time — must not keep ``/healthz`` from answering, and the server must close
each of them on its own. Timings: ``/healthz`` answers in a few milliseconds on
an idle machine; the 1 s bound is the requirement itself and leaves room for a
loaded 2-core machine. The read time-outs are shortened through the settings so
the test stays short; the code path is the production one.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import pytest
import requests
from gunicorn.config import Config
from gunicorn.workers.workertmp import WorkerTmp
from helpers_auth import new_corporation, proof
from helpers_responders import Responder
from live_server import LiveServer

from app.http.edge import SERIALISE_KEY
from app.serving.gunicorn_conf import AppLock, BoundedThreadWorker
from devpki import DevPki

IDLE_SECONDS = 4
RECEIVE_SECONDS = 6
# Generous: the server must have closed every slow connection by then.
CLOSE_WITHIN = RECEIVE_SECONDS + 15

# Each opening stops short of a complete request.
PARTIAL_REQUESTS = [
    # headers never finished
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    # the report's case: Content-Length 100, one byte sent
    b"POST /api/v1/auth/challenges HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100\r\n\r\n{",
    # a chunked body that stops in the middle of a chunk
    b"POST /pki/tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n10\r\nabc",
]
TRICKLED_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"


def _open(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    return sock


def _trickle(sock: socket.socket, stop: threading.Event) -> None:
    """Send a request one byte every 0.5 s: never idle long enough for an idle time-out."""
    try:
        for byte in TRICKLED_REQUEST:
            if stop.wait(0.5):
                return
            sock.sendall(bytes([byte]))
    except OSError:
        return  # closed by the server: what the test wants


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Read until the server closes the connection (EOF or reset) or ``deadline`` passes."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except OSError:
            return True  # reset
    return False


def test_healthz_answers_while_ten_slow_clients_hold_connections(app, app_settings, pki):
    env = {
        "DAIRI_HTTP_IDLE_TIMEOUT_SECONDS": str(IDLE_SECONDS),
        "DAIRI_HTTP_RECEIVE_TIMEOUT_SECONDS": str(RECEIVE_SECONDS),
    }
    with LiveServer(app_settings, workers=2, env=env) as server:
        stop = threading.Event()
        slow = [_open(server.port, PARTIAL_REQUESTS[i % len(PARTIAL_REQUESTS)]) for i in range(7)]
        trickled = [_open(server.port, b"") for _ in range(3)]
        senders = [threading.Thread(target=_trickle, args=(s, stop), daemon=True) for s in trickled]
        for sender in senders:
            sender.start()
        opened = time.monotonic()
        try:
            time.sleep(0.5)  # let both workers take up the slow connections
            latencies = []
            for _ in range(10):
                started = time.monotonic()
                response = requests.get(server.url + "/healthz", timeout=5)
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200
                time.sleep(0.1)
            # All ten probes ran while every slow client was still connected.
            assert time.monotonic() - opened < IDLE_SECONDS
            assert max(latencies) < 1.0, latencies

            deadline = opened + CLOSE_WITHIN
            still_open = [s for s in slow + trickled if not _closed_by_server(s, deadline)]
            closed_after = time.monotonic() - opened
        finally:
            stop.set()
            for s in slow + trickled:
                s.close()
        assert still_open == [], f"{len(still_open)} slow connections left open"
        # Stalled connections go after the idle time-out, trickling ones after the
        # receive time-out: neither waits for the client.
        assert closed_after < CLOSE_WITHIN
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
        log = server.log()
    assert "WORKER TIMEOUT" not in log
    assert "Traceback" not in log


# -- the application's lock, through the test client ----------------------------------


class _StalledBody(io.RawIOBase):
    """A body that arrives only once ``arrive`` is set: a slow client's upload."""

    def __init__(self, data: bytes, arrive: threading.Event) -> None:
        self.data = io.BytesIO(data)
        self.arrive = arrive

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        self.arrive.wait(30)
        return self.data.readinto(buffer)


def _in_thread(call) -> tuple[threading.Thread, list]:  # type: ignore[no-untyped-def]
    result: list = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


def test_a_body_still_arriving_does_not_hold_the_process_lock(app):
    lock = threading.Lock()
    arrive = threading.Event()
    stalled = _StalledBody(b'{"purpose": "login"}', arrive)
    upload, uploaded = _in_thread(
        lambda: app.test_client().post(
            "/api/v1/auth/challenges",
            headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={
                "wsgi.input": stalled,
                "CONTENT_LENGTH": "",
                "wsgi.input_terminated": True,
                SERIALISE_KEY: lock,
            },
        )
    )
    try:
        time.sleep(0.2)  # the upload is now waiting for its body
        other, answered = _in_thread(
            lambda: app.test_client().get("/openapi.json", environ_overrides={SERIALISE_KEY: lock})
        )
        other.join(10)
        assert answered and answered[0].status_code == 200
    finally:
        arrive.set()
    upload.join(30)
    assert uploaded[0].status_code == 201, uploaded[0].get_json()


def test_requests_run_one_at_a_time_but_liveness_answers_meanwhile(app):
    lock = threading.Lock()
    with lock:  # a request of this process is running
        waiting, answered = _in_thread(
            lambda: app.test_client().get("/openapi.json", environ_overrides={SERIALISE_KEY: lock})
        )
        probe, liveness = _in_thread(
            lambda: app.test_client().get("/healthz", environ_overrides={SERIALISE_KEY: lock})
        )
        probe.join(10)
        assert liveness and liveness[0].status_code == 200
        waiting.join(0.5)
        assert not answered  # still waiting for the lock
    waiting.join(10)
    assert answered[0].status_code == 200


def test_the_heartbeat_reports_when_the_running_request_started():
    """gunicorn's arbiter replaces a worker whose heartbeat is older than ``timeout``:
    while a request holds the application, the heartbeat stays at its start."""
    worker = object.__new__(BoundedThreadWorker)  # the heartbeat needs only these two
    worker.tmp = WorkerTmp(Config())
    worker.app_lock = AppLock()
    try:
        worker.notify()
        assert abs(worker.tmp.last_update() - time.monotonic()) < 0.5
        with worker.app_lock:
            started = worker.app_lock.held_since
            time.sleep(1.2)
            worker.notify()
            assert worker.tmp.last_update() == pytest.approx(started, abs=0.01)
        worker.notify()
        assert time.monotonic() - worker.tmp.last_update() < 0.5
    finally:
        worker.tmp.close()


def test_new_requests_go_to_an_idle_worker_not_behind_a_slow_request(
    app, app_settings, hsm, tmp_path
):
    """A login held by a hanging revocation responder keeps one worker's application
    busy for the revocation budget; meanwhile new connections are taken by the other
    worker, as sync workers would. (Were they shared out blindly, about half would wait
    for the login.)"""
    budget = 4
    with Responder(hang=True) as hanging:
        pki = DevPki.create(tmp_path / "hanging-pki", hsm, base_url=hanging.url)
        pki.export_trust(tmp_path / "trust")
        corp = new_corporation(pki)
        env = {
            "DAIRI_DEV_MODE": "false",
            "DAIRI_TRUST_DIR": str(tmp_path / "trust"),
            "DAIRI_REVOCATION_BUDGET_SECONDS": str(budget),
            "DAIRI_REVOCATION_BREAKER_FAILURES": "100",
        }
        with LiveServer(app_settings, workers=2, env=env) as server:
            challenge = requests.post(
                server.url + "/api/v1/auth/challenges", json={"purpose": "login"}, timeout=30
            ).json()
            body = proof(corp.representative, base64.b64decode(challenge["to_sign"]))
            login, answer = _in_thread(
                lambda: requests.post(
                    f"{server.url}/api/v1/auth/challenges/{challenge['id']}/response",
                    json=body,
                    timeout=60,
                )
            )
            while not hanging.received:  # the login now waits for the responder
                time.sleep(0.05)
            started = time.monotonic()
            latencies = []
            while time.monotonic() - started < budget - 1.5:
                began = time.monotonic()
                # A new connection each time, as a client without keep-alive makes.
                reply = requests.get(
                    server.url + "/openapi.json", timeout=30, headers={"Connection": "close"}
                )
                latencies.append(time.monotonic() - began)
                assert reply.status_code == 200
            still_waiting = not answer
            login.join(60)
    assert max(latencies) < 1.0, latencies
    assert len(latencies) >= 5
    assert still_waiting  # every request above was sent while the login held its worker
    assert answer[0].status_code == 503  # revocation status unavailable, never "good"
