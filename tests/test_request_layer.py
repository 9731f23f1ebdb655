"""The request layer: reads that do not take SQLite's write lock, and what checking a
bearer token costs (issue 11: HTTP ≤ 1.3× the service layer; no 503 under
concurrent reads).

- Concurrent read-only requests against the served default (gunicorn, two workers,
  SQLite) are all answered, never ``503 DATABASE_UNAVAILABLE``, and leave the write
  lock free: the credentials check is a deferred reader and ends before the view
  (a verification held ``BEGIN IMMEDIATE``'s lock through its whole view, ~85% of
  the time under 8 clients, queueing every writer up to the busy time-out).
- A bearer token check is two statements (token with its person; roles with
  employments) and no cache: a revoked token, an ended employment and a removed
  role are refused on the very next request.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
from datetime import UTC, datetime

import requests
from helpers_auth import bearer, enrolled_employee, new_corporation
from live_server import LiveServer
from sqlalchemy import delete, event, update

from app.people.models import AccessToken, Employment, Role, RoleAssignment
from app.people.sign_in import AuthService, sha256_hex
from signing import PadesLevel, PadesSpec

CLIENTS = 8
POSTS = 6


def _client_headers(app, scopes: tuple[str, ...]) -> dict[str, str]:
    context = app.extensions["dairi"]
    with context.session_factory() as session, session.begin():
        auth = AuthService(session, context.settings, context.certificate_validator, context.clock)
        issued = auth.create_client("調達システム", scopes, "test", all_corporations=True)
        pair = f"{issued.row.client_id}:{issued.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


class WriteLockProbe:
    """Tries SQLite's write lock (``BEGIN IMMEDIATE`` without waiting) every 10 ms
    while it runs: how often another connection held it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.locked = self.free = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        db = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            while not self._stop.is_set():
                try:
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("ROLLBACK")
                    self.free += 1
                except sqlite3.OperationalError:  # database is locked
                    self.locked += 1
                time.sleep(0.01)
        finally:
            db.close()

    def __enter__(self) -> WriteLockProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_concurrent_verifications_leave_the_write_lock_free_and_get_no_503(
    app, app_settings, pades_signer, employee, bid
):
    if not app_settings.database_url.startswith("sqlite:///"):
        return  # the write lock is SQLite's; PostgreSQL readers never take one
    pdf = pades_signer.sign(bid, employee, PadesSpec(level=PadesLevel.B_LTA)).pdf
    headers = _client_headers(app, ("signatures:verify",))
    statuses: list[int] = []
    answers: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)
    # A one-second busy time-out: a request holding the lock through a verification
    # would soon make the others wait longer than that.
    served = app_settings.replace(sqlite_busy_timeout_seconds=1)

    with LiveServer(served, workers=2) as server:

        def client() -> None:
            with requests.Session() as http:
                start.wait()
                for _ in range(POSTS):
                    response = http.post(
                        server.url + "/api/v1/verifications",
                        headers=headers,
                        files={"document": ("bid.pdf", pdf, "application/pdf")},
                        timeout=120,
                    )
                    with lock:
                        statuses.append(response.status_code)
                        if response.status_code != 200:
                            answers.append(response.text[:200])

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        with WriteLockProbe(app_settings.database_url.removeprefix("sqlite:///")) as probe:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        log = server.log()
    assert len(statuses) == CLIENTS * POSTS
    assert set(statuses) == {200}, (answers[:3], log[-3000:])
    # Before: locked ~85% of the probes. Now only refusals would write.
    assert probe.locked * 10 <= probe.free, (probe.locked, probe.free)


def test_a_token_check_is_two_reads_without_the_write_lock(app, client, pki):
    corp = new_corporation(pki)
    _card, _person_id, token = enrolled_employee(client, pki, corp)
    engine = app.extensions["dairi"].engine
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(" ".join(statement.split()[:2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get("/api/v1/me", headers=bearer(token))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert response.status_code == 200
    assert response.get_json()["caller"]["employee_of"] == [corp.corporate_number]
    selects = [s for s in seen if s.startswith("SELECT")]
    assert len(selects) == 2, seen
    if app.extensions["dairi"].settings.database_url.startswith("sqlite:///"):
        assert "BEGIN IMMEDIATE" not in seen, seen


def test_revoked_tokens_ended_employments_and_removed_roles_count_at_once(app, client, pki):
    corp = new_corporation(pki)
    _card, person_id, token = enrolled_employee(client, pki, corp)
    factory = app.extensions["dairi"].session_factory

    def me() -> dict:
        response = client.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 200, response.get_json()
        return response.get_json()["caller"]

    def change(statement) -> None:
        with factory() as session, session.begin():
            session.execute(statement)

    assert me()["roles"] == ["employee"]
    # A role granted: seen by the next request.
    with factory() as session, session.begin():
        session.add(RoleAssignment(person_id=person_id, role=Role.AUDITOR.value, granted_by="t"))
    assert me()["roles"] == ["auditor", "employee"]
    # The employment ended: no longer an employee of the corporation.
    change(
        update(Employment)
        .where(Employment.person_id == person_id)
        .values(ended_at=datetime.now(UTC))
    )
    assert (me()["roles"], me()["employee_of"]) == (["auditor"], [])
    # The role removed: nothing left that /me admits.
    change(delete(RoleAssignment).where(RoleAssignment.person_id == person_id))
    forbidden = client.get("/api/v1/me", headers=bearer(token))
    assert (forbidden.status_code, forbidden.get_json()["code"]) == (403, "FORBIDDEN")
    # The token revoked (as by logout in another worker): refused on the next request.
    change(
        update(AccessToken)
        .where(AccessToken.token_sha256 == sha256_hex(token))
        .values(revoked_at=datetime.now(UTC))
    )
    refused = client.get("/api/v1/me", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.get_json()["code"] == "TOKEN_INVALID"
