"""Rate limits that hold across workers, and refusals that cannot flood the audit log
(issue 9, items 8 and 10).

- Repeated identical refusals from one source are one audit event per window, the
  rest counted and folded into the chain as one event carrying ``details.count``.
- The challenge limit and the limit on refused authentication attempts are one
  atomic counter per (key, window) in the database: concurrent requests from
  several client processes to two gunicorn workers get at most ``limit`` grants
  per window.
- The client address comes through ``trusted_proxy_hops`` proxies (werkzeug's
  ProxyFix), and limits count per person (representative certificate, API client)
  as well as per address.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from helpers_auth import (
    b64,
    bearer,
    der,
    enrolled_employee,
    login,
    new_corporation,
    problem,
)
from live_server import LiveServer
from sqlalchemy import func, select

from app.audit_trail.log import AuditLog
from app.factory import create_app
from app.people.models import AuthChallenge

WINDOW = 60  # seconds: the challenge and refused-attempt limits count per minute


def pin_clock(app, at: datetime) -> None:
    app.extensions["dairi"].clock = lambda: at


def window_start(at: datetime) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % WINDOW, UTC)


@pytest.fixture
def make_app(app, app_settings, hsm):  # `app` migrates the database
    made = []

    def build(**changes):
        application = create_app(app_settings.replace(**changes), hsm=hsm)
        application.config["TESTING"] = True
        made.append(application)
        return application

    yield build
    for application in made:
        application.extensions["dairi"].engine.dispose()


def refused_events(application, tag: str = "auth:access:refused") -> list[dict]:
    with application.extensions["dairi"].session_factory() as session:
        log = AuditLog(session)
        log.verify()  # raises on a broken chain
        return [
            {"sequence": r.sequence, "actor": r.actor, **json.loads(r.details)}
            for r in log.events()
            if r.tag == tag
        ]


# -- item 8: refusals cannot flood the audit log ---------------------------------


def test_500_anonymous_refusals_from_one_address_are_a_handful_of_counted_events(make_app):
    limit = 50
    application = make_app(refused_auth_rate_per_minute=limit)
    start = window_start(datetime.now(UTC)) + timedelta(seconds=1)
    pin_clock(application, start)  # one window for the whole burst
    client = application.test_client()
    statuses = Counter()
    for n in range(500):
        # Paths differ: a refusal is "identical" by source, tag and code, not by path.
        response = client.get(
            f"/api/v1/mandates/{n:08d}", environ_base={"REMOTE_ADDR": "192.0.2.7"}
        )
        statuses[response.status_code] += 1
        if response.status_code == 429:
            body = problem(response, 429, "RATE_LIMITED")
            assert body["detail"]
            assert int(response.headers["Retry-After"]) == WINDOW - 1
    assert statuses == {401: limit, 429: 500 - limit}
    before_fold = refused_events(application)
    # The first of each kind is recorded at once; the rest wait for the window's end.
    assert [(e["code"], e.get("count", 1)) for e in before_fold] == [
        ("UNAUTHENTICATED", 1),
        ("RATE_LIMITED", 1),
    ]

    # The window ends; the next refusal (from anyone) folds the counts into the chain.
    pin_clock(application, start + timedelta(seconds=WINDOW))
    problem(
        client.get("/api/v1/me", environ_base={"REMOTE_ADDR": "198.51.100.1"}),
        401,
        "UNAUTHENTICATED",
    )
    events = [e for e in refused_events(application) if e.get("source") == "192.0.2.7"]
    assert len(events) <= 4, events
    by_code = Counter()
    for event in events:
        by_code[event["code"]] += event.get("count", 1)
    assert by_code == {"UNAUTHENTICATED": limit, "RATE_LIMITED": 500 - limit}
    folded = [e for e in events if e.get("count", 1) > 1]
    assert {e["first_sequence"] for e in folded} == {e["sequence"] for e in before_fold}


def test_distinct_refusals_are_still_recorded_each(make_app):
    application = make_app()
    client = application.test_client()
    problem(client.get("/api/v1/me"), 401, "UNAUTHENTICATED")
    problem(client.get("/api/v1/me", headers=bearer("dairi_at_nope")), 401, "TOKEN_INVALID")
    problem(
        client.get("/api/v1/me", environ_base={"REMOTE_ADDR": "203.0.113.9"}),
        401,
        "UNAUTHENTICATED",
    )
    events = refused_events(application)
    assert [(e["code"], e["source"]) for e in events] == [
        ("UNAUTHENTICATED", "127.0.0.1"),
        ("TOKEN_INVALID", "127.0.0.1"),
        ("UNAUTHENTICATED", "203.0.113.9"),
    ]


def test_a_valid_token_still_works_from_an_address_over_its_refusal_limit(make_app, pki):
    application = make_app(refused_auth_rate_per_minute=2)
    client = application.test_client()
    token = login(client, new_corporation(pki).representative)
    for _ in range(2):
        problem(client.get("/api/v1/me"), 401, "UNAUTHENTICATED")
    problem(client.get("/api/v1/me"), 429, "RATE_LIMITED")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    # Another address is not affected.
    problem(
        client.get("/api/v1/me", environ_base={"REMOTE_ADDR": "10.1.1.1"}), 401, "UNAUTHENTICATED"
    )


def test_refused_logins_count_against_the_address_and_the_certificate(make_app, pki):
    application = make_app(refused_auth_rate_per_minute=2, challenge_rate_per_minute=100)
    client = application.test_client()
    stranger = new_corporation(pki).representative

    def bad_login(address: str):
        env = {"REMOTE_ADDR": address}
        challenge = client.post("/api/v1/auth/challenges", json={}, environ_base=env)
        assert challenge.status_code == 201, challenge.get_json()
        body = {"certificate": b64(der(stranger)), "signature": b64(b"\0" * 256)}
        return client.post(
            f"/api/v1/auth/challenges/{challenge.get_json()['id']}/response",
            json=body,
            environ_base=env,
        )

    # One certificate from three addresses: its third refusal is over the limit.
    problem(bad_login("10.2.0.1"), 403, "SIGNATURE_INVALID")
    problem(bad_login("10.2.0.2"), 403, "SIGNATURE_INVALID")
    response = bad_login("10.2.0.3")
    problem(response, 429, "RATE_LIMITED")
    assert 0 < int(response.headers["Retry-After"]) <= WINDOW
    events = refused_events(application, "auth:login:refused")
    assert [e["code"] for e in events] == ["SIGNATURE_INVALID"] * 2 + ["RATE_LIMITED"]


# -- item 10: the limits hold and cannot be side-stepped ---------------------------


def test_forwarded_for_is_ignored_without_trusted_proxies(make_app):
    client = make_app(challenge_rate_per_minute=2).test_client()
    statuses = [
        client.post(
            "/api/v1/auth/challenges", json={}, headers={"X-Forwarded-For": f"10.9.9.{n}"}
        ).status_code
        for n in range(3)
    ]
    assert statuses == [201, 201, 429]


def test_forwarded_for_is_honoured_through_one_trusted_proxy(make_app):
    application = make_app(challenge_rate_per_minute=2, trusted_proxy_hops=1)
    client = application.test_client()

    def post(forwarded: str) -> int:
        return client.post(
            "/api/v1/auth/challenges", json={}, headers={"X-Forwarded-For": forwarded}
        ).status_code

    # Behind the proxy every request comes from its address; the clients differ.
    assert [post(f"10.9.9.{n}") for n in range(3)] == [201, 201, 201]
    assert post("10.9.9.0") == 201
    # A client cannot escape its bucket by prefixing addresses of its own: the
    # proxy appends the address it saw, and only that one is trusted.
    assert post("172.16.0.1, 10.9.9.0") == 429
    with application.extensions["dairi"].session_factory() as session:
        keys = set(session.scalars(select(AuthChallenge.client_key)))
    assert keys == {"address:10.9.9.0", "address:10.9.9.1", "address:10.9.9.2"}


def test_two_tokens_of_one_representative_share_one_bucket(make_app, pki):
    application = make_app(challenge_rate_per_minute=3)
    client = application.test_client()
    card = new_corporation(pki).representative
    client.environ_base["REMOTE_ADDR"] = "10.3.0.1"
    first = login(client, card)
    client.environ_base["REMOTE_ADDR"] = "10.3.0.2"
    second = login(client, card)
    assert first != second

    def post(token: str, address: str):
        return client.post(
            "/api/v1/auth/challenges",
            json={},
            headers=bearer(token),
            environ_base={"REMOTE_ADDR": address},
        )

    # Fresh addresses each time: only the representative's own bucket can refuse.
    assert post(first, "10.3.1.1").status_code == 201
    assert post(second, "10.3.1.2").status_code == 201
    assert post(first, "10.3.1.3").status_code == 201
    problem(post(second, "10.3.1.4"), 429, "RATE_LIMITED")


def test_two_tokens_of_one_employee_share_one_bucket(make_app, pki):
    application = make_app(challenge_rate_per_minute=3)
    client = application.test_client()
    corp = new_corporation(pki)
    client.environ_base["REMOTE_ADDR"] = "10.4.0.1"
    card, _, first = enrolled_employee(client, pki, corp)
    client.environ_base["REMOTE_ADDR"] = "10.4.0.2"
    second = login(client, card.authentication)

    def post(token: str, address: str):
        return client.post(
            "/api/v1/auth/challenges",
            json={},
            headers=bearer(token),
            environ_base={"REMOTE_ADDR": address},
        )

    assert [post(t, f"10.4.1.{n}").status_code for n, t in enumerate((first, second, first))] == [
        201,
        201,
        201,
    ]
    problem(post(second, "10.4.1.9"), 429, "RATE_LIMITED")


def test_retry_after_is_the_rest_of_the_window_and_nothing_is_written(make_app):
    application = make_app(challenge_rate_per_minute=1)
    start = window_start(datetime.now(UTC)) + timedelta(seconds=17)
    pin_clock(application, start)
    client = application.test_client()
    assert client.post("/api/v1/auth/challenges", json={}).status_code == 201
    for _ in range(5):
        response = client.post("/api/v1/auth/challenges", json={})
        problem(response, 429, "RATE_LIMITED")
        assert response.headers["Retry-After"] == str(WINDOW - 17)
    with application.extensions["dairi"].session_factory() as session:
        assert session.scalar(select(func.count()).select_from(AuthChallenge)) == 1
    assert len(refused_events(application, "auth:challenge:refused")) == 1
    pin_clock(application, start + timedelta(seconds=WINDOW - 17))  # the next window
    assert client.post("/api/v1/auth/challenges", json={}).status_code == 201


def test_ended_windows_are_purged(make_app):
    from app.http.ratelimit import RateLimitCounter

    application = make_app()
    start = window_start(datetime.now(UTC))
    pin_clock(application, start)
    client = application.test_client()
    for n in range(20):
        client.post("/api/v1/auth/challenges", json={}, environ_base={"REMOTE_ADDR": f"10.5.0.{n}"})
    context = application.extensions["dairi"]
    with context.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(RateLimitCounter)) == 20
    pin_clock(application, start + timedelta(seconds=3 * WINDOW))
    client.post("/api/v1/auth/challenges", json={}, environ_base={"REMOTE_ADDR": "10.5.1.1"})
    with context.session_factory() as session:
        keys = session.scalars(select(RateLimitCounter.key)).all()
    assert keys == ["challenge:address:10.5.1.1"]


# -- the real server: two workers, several client processes --------------------------

CLIENT = r"""
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import requests

url, start, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
def post(_):
    r = requests.post(url + "/api/v1/auth/challenges", json={}, timeout=60)
    try:
        body = r.json()
    except ValueError:  # not JSON (a 5xx page): the status tells
        body = {}
    return [r.status_code, body.get("expires_at"), r.headers.get("Retry-After")]

time.sleep(max(0.0, start - time.time()))
with ThreadPoolExecutor(max_workers=4) as pool:
    print(json.dumps(list(pool.map(post, range(count)))))
"""

PROCESSES, PER_PROCESS, LIMIT = 4, 12, 10


def test_the_challenge_limit_holds_across_workers_and_client_processes(app, app_settings):
    settings = app_settings
    with LiveServer(
        settings, workers=2, env={"DAIRI_CHALLENGE_RATE_PER_MINUTE": str(LIMIT)}
    ) as server:
        start = time.time() + 2.0  # every client process is up and waiting by then
        clients = [
            subprocess.Popen(
                [sys.executable, "-c", CLIENT, server.url, str(start), str(PER_PROCESS)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        results = []
        for process in clients:
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0
            results.extend(json.loads(out))
        log = server.log()
    statuses = Counter(status for status, _, _ in results)
    assert set(statuses) <= {201, 429}, log[-3000:]
    # Granted challenges per window, from each grant's issue time (expiry - lifetime).
    granted = Counter()
    for status, expires_at, _ in results:
        if status == 201:
            issued = datetime.fromisoformat(expires_at) - timedelta(
                seconds=settings.challenge_seconds
            )
            granted[int(issued.timestamp()) // WINDOW] += 1
    assert granted and max(granted.values()) <= LIMIT, granted
    # Not vacuous: the burst (48 requests) filled at least one window to the limit.
    assert max(granted.values()) == LIMIT or len(granted) > 1, granted
    assert all(0 < int(retry) <= WINDOW for status, _, retry in results if status == 429)
    assert statuses[429] >= PROCESSES * PER_PROCESS - LIMIT * len(granted)
