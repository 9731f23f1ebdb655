"""A hanging OCSP/CRL responder against the real served process (issue 16 item 8).

``dairi serve`` (gunicorn, two workers) runs in production mode (``dev_mode =
false``: revocation data is fetched over HTTP, as in a deployment) trusting a
test PKI whose certificates name a loopback responder that accepts every
connection, reads the request and never answers. Representatives log in with
registration certificates from that PKI, six at once, while a probe asks
``/healthz`` every 0.1 s.

Before the fix each login took 20 s (10 s OCSP, then 10 s CRL) per check, the
logins queued behind each other (20/40/60 s) and ``/healthz`` went unanswered.
Bounds are measured per request from the client; SLACK absorbs a loaded
two-core machine and is still far below the unfixed figures.
"""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from helpers_auth import Corp, new_corporation, proof
from helpers_responders import Responder
from live_server import LiveServer

from devpki import DevPki

pytestmark = pytest.mark.faults

BUDGET = 2  # revocation_budget_seconds for the server under test
SLACK = 3.0  # seconds beyond the budget a login may take on a loaded machine
FAST = 1.0  # a login refused by an open breaker ends within this


class HealthProbe:
    """GET /healthz every 0.1 s on a thread; records (status, seconds) per request."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status = requests.get(self.url + "/healthz", timeout=10).status_code
            except requests.RequestException:
                status = 0
            self.results.append((status, time.monotonic() - started))
            self._stop.wait(0.1)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def open_challenge(url: str) -> dict:
    response = requests.post(url + "/api/v1/auth/challenges", json={"purpose": "login"}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


def timed_login(url: str, corp: Corp, challenge: dict) -> tuple[float, requests.Response]:
    body = proof(corp.representative, base64.b64decode(challenge["to_sign"]))
    started = time.monotonic()
    response = requests.post(
        f"{url}/api/v1/auth/challenges/{challenge['id']}/response", json=body, timeout=90
    )
    return time.monotonic() - started, response


def assert_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "REVOCATION_STATUS_UNAVAILABLE"
    assert int(response.headers["Retry-After"]) > 0


# Not a database fault: SQLite only, whatever TEST_DATABASE_URL says.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_hanging_responder_neither_stalls_logins_nor_the_service(
    app, app_settings, hsm, tmp_path: Path
):
    with Responder(hang=True) as hanging:
        pki = DevPki.create(tmp_path / "hanging-pki", hsm, base_url=hanging.url)
        pki.export_trust(tmp_path / "trust")
        corporations = [new_corporation(pki) for _ in range(12)]
        env = {
            "DAIRI_DEV_MODE": "false",
            "DAIRI_TRUST_DIR": str(tmp_path / "trust"),
            "DAIRI_REVOCATION_BUDGET_SECONDS": str(BUDGET),
            "DAIRI_REVOCATION_BREAKER_SECONDS": "300",
            "DAIRI_CHALLENGE_RATE_PER_MINUTE": "1000",
            "DAIRI_REFUSED_AUTH_RATE_PER_MINUTE": "1000",
        }
        with (
            LiveServer(app_settings, workers=2, env=env) as server,
            HealthProbe(server.url) as health,
        ):
            challenges = [open_challenge(server.url) for _ in range(6)]
            with ThreadPoolExecutor(max_workers=6) as pool:
                burst = list(
                    pool.map(
                        lambda pair: timed_login(server.url, *pair),
                        zip(corporations[:6], challenges, strict=True),
                    )
                )
            asked_in_burst = len(hanging.received)
            later = [
                timed_login(server.url, corp, open_challenge(server.url))
                for corp in corporations[6:]
            ]
            asked_later = len(hanging.received) - asked_in_burst
            time.sleep(0.5)  # a few more probes after the logins
        log = server.log()

    for elapsed, response in burst + later:
        assert_unavailable(response)  # refused, never taken as good
        assert elapsed <= BUDGET + SLACK, (elapsed, log[-3000:])
    # /healthz answered within a second throughout
    assert len(health.results) >= 10
    assert all(status == 200 for status, _ in health.results), health.results
    assert max(seconds for _, seconds in health.results) < 1.0, health.results
    # The breaker opened in each worker that met the dead responder: later logins are
    # refused at once without asking it. A worker the burst never reached may pay one
    # budget (OCSP and CRL asked once) before its own breaker opens.
    workers = 2
    slow = [elapsed for elapsed, _ in later if elapsed >= FAST]
    assert len(slow) <= workers - 1, [elapsed for elapsed, _ in later]
    assert asked_later <= 2 * (workers - 1), asked_later
    assert 0 < asked_in_burst <= 12  # at most one OCSP and one CRL request per login
