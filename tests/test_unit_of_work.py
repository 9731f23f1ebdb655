"""One unit of work per request (issue 10 item 5): what a request changes is committed
with its audit events when the request ends well, or not at all; a GET never writes
(but for the audit of a refusal, and the documented cache of a signed 電子委任状); and
every refusal an endpoint answers, whoever raised it, is in the audit log.

All through HTTP. Failures are injected after the state change, before the request
ends: in the view's answer, or in an ``after_request`` hook that runs before the unit
of work ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from cryptography import x509
from flask import Flask, Response
from helpers_auth import bearer, login, move_clock, problem
from helpers_mandates import (
    ENTITY,
    new_employee,
    now,
    root_grant,
    scope,
    sub_grant,
    try_root_grant,
)
from sqlalchemy import event, select

from app.audit_trail.log import AuditLog
from app.mandates.models import Mandate
from app.people.models import Corporation


def audit_events(app: Flask) -> list[tuple[str, str | None]]:
    """(tag, code) of every audit event, the chain verified first."""
    with app.extensions["dairi"].session_factory() as session:
        log = AuditLog(session)
        log.verify()
        return [(r.tag, json.loads(r.details).get("code")) for r in log.events()]


def mandates(app: Flask) -> dict[str, Mandate]:
    with app.extensions["dairi"].session_factory() as session:
        return {m.id: m for m in session.scalars(select(Mandate))}


class Injected(RuntimeError):
    """The failure a test injects."""


@contextmanager
def failing_end_of_request(app: Flask, path: str) -> Iterator[list[str]]:
    """Make the first request to ``path`` fail at its end: an ``after_request`` hook
    that runs before the unit of work's (hooks run last-registered first) raises.
    Yields the paths it failed."""
    failed: list[str] = []

    def fail(response: Response) -> Response:
        from flask import request

        if request.path == path and not failed:
            failed.append(request.path)
            raise Injected("the request fails after its work was done")
        return response

    hooks = app.after_request_funcs.setdefault(None, [])
    hooks.append(fail)  # Flask's setup methods are closed once the app has served
    try:
        yield failed
    finally:
        hooks.remove(fail)


# -- a failure before the end of the request leaves nothing -----------------------------


def test_a_grant_whose_answer_fails_leaves_neither_mandate_nor_audit_event(
    client, app, world, monkeypatch
):
    a, yamada = world["a"], world["yamada"]
    before = audit_events(app)

    def broken(*_args: object) -> dict:
        raise Injected("the answer cannot be made")

    # After MandateService.grant has added the row and its audit event.
    monkeypatch.setattr("app.mandates.views.mandate_json", broken)
    response = try_root_grant(client, a, yamada, scope())
    assert response.status_code == 500, response.get_data()[:300]
    assert mandates(app) == {}
    after = audit_events(app)
    assert ("mandate:granted", None) not in after
    # Only the login that made the token was recorded meanwhile.
    assert [t for t, _ in after[len(before) :]] == ["auth:login:succeeded"]


def test_a_revocation_failing_at_the_end_of_its_request_is_not_stored(
    client, app, world, monkeypatch
):
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    token = login(client, a.representative)
    path = f"/api/v1/mandates/{root['id']}/revocation"
    # As served (not TESTING): an error raised after the view is answered 500.
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    with failing_end_of_request(app, path) as failed:
        response = client.post(path, headers=bearer(token), json={})
    assert response.status_code == 500 and response.content_type == "application/problem+json"
    assert failed == [path]
    row = mandates(app)[root["id"]]
    assert row.revoked_at is None and row.status == "active"
    assert "mandate:revoked" not in [t for t, _ in audit_events(app)]
    # The same revocation, not failed, is stored with its event.
    assert client.post(path, headers=bearer(token), json={}).status_code == 200
    assert mandates(app)[root["id"]].revoked_at is not None
    assert [t for t, _ in audit_events(app)].count("mandate:revoked") == 1


def test_a_view_that_wrote_for_itself_is_rolled_back_too(client, app, world, admin_token):
    corp = world["a"]
    path = f"/api/v1/corporations/{corp.corporate_number}/joint-representation"
    # The test client lets an error raised after the view through (TESTING).
    with failing_end_of_request(app, path), pytest.raises(Injected):
        client.put(path, headers=bearer(admin_token), json={"representatives": 2})
    with app.extensions["dairi"].session_factory() as session:
        assert session.get(Corporation, corp.corporate_number).joint_representatives == 1
    assert "corporation:joint-representation:set" not in [t for t, _ in audit_events(app)]


# -- a GET never writes -----------------------------------------------------------------


WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b\s+(?:INTO\s+|FROM\s+)?\"?(\w+)", re.I)


@contextmanager
def writes(app: Flask) -> Iterator[list[str]]:
    """The tables of every INSERT, UPDATE and DELETE the service's engine runs."""
    engine = app.extensions["dairi"].engine
    seen: list[str] = []

    def listen(_conn, _cursor, statement: str, *_args: object) -> None:
        match = WRITE.match(statement)
        if match:
            seen.append(f"{match.group(1).upper()} {match.group(2)}")

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def test_the_statement_counter_sees_writes(client, app, world):
    """The listener the GET tests rely on does see a request's writes."""
    a, yamada = world["a"], world["yamada"]
    token = login(client, a.representative)
    with writes(app) as seen:
        root = root_grant(client, a, yamada, token=token)
    assert root["id"] and "INSERT mandates" in seen and "INSERT audit_events" in seen


@pytest.mark.parametrize(
    "reason", [x509.ReasonFlags.key_compromise, x509.ReasonFlags.cessation_of_operation]
)
def test_reading_a_chain_writes_nothing_even_when_its_representative_was_revoked(
    client, app, pki, world, reason
):
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    url = f"/api/v1/mandates/{root['id']}/chain"
    query = {"action": "bid", "procuring_entity": ENTITY}
    with writes(app) as seen:
        held = client.get(url, query_string=query, headers=bearer(yamada.token))
    assert held.status_code == 200 and held.get_json()["holds"] is True
    assert seen == []
    pki.ca_for_slug("registrar").revoke(
        a.representative.certificate.serial_number, reason, now=now()
    )
    window = app.extensions["dairi"].settings.revocation_cache_seconds
    move_clock(app, timedelta(seconds=window + 1))
    with writes(app) as seen:
        verdict = client.get(url, query_string=query, headers=bearer(yamada.token))
    # The verdict has it (checked now), though nothing recorded it.
    assert verdict.status_code == 200
    assert verdict.get_json()["holds"] is False
    assert [h["reasons"] for h in verdict.get_json()["hops"]] == [["REPRESENTATIVE_CERT_REVOKED"]]
    assert seen == []
    assert mandates(app)[root["id"]].representative_revoked_at is None
    assert "mandate:representative-revoked" not in [t for t, _ in audit_events(app)]


def test_reading_a_document_writes_only_its_signed_copy_once(client, app, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada, scope(max_depth=1))
    child = sub_grant(client, hsm, a, root, yamada, suzuki)
    url = f"/api/v1/mandates/{child['id']}/document"
    with writes(app) as first:
        response = client.get(url, headers=bearer(suzuki.token))
    assert response.status_code == 200 and response.data.startswith(b"%PDF")
    # The documented exception: the signed rendering is kept, in its own transaction.
    assert first == ["INSERT signed_mandate_documents"]
    for getter in (
        url,
        f"/api/v1/mandates/{child['id']}",
        f"/api/v1/mandates/{child['id']}/chain",
        "/api/v1/mandates",
    ):
        with writes(app) as seen:
            assert client.get(getter, headers=bearer(suzuki.token)).status_code == 200
        assert seen == [], getter


# -- every refusal is audited -------------------------------------------------------------


Request = Callable[[], Response]


def test_every_refusal_of_the_mandate_endpoints_is_audited(client, app, pki, world):
    a, b, yamada, tanaka = world["a"], world["b"], world["yamada"], world["tanaka"]
    root = root_grant(client, a, yamada)
    other = bearer(tanaka.token)  # B's employee
    mine = bearer(yamada.token)
    refusals: list[tuple[str, Request, int, str, str]] = [
        # (what, request, status, code, audit tag) — written by hand from the API.
        (
            "another corporation's mandate",
            lambda: client.get(f"/api/v1/mandates/{root['id']}", headers=other),
            404,
            "MANDATE_NOT_FOUND",
            "mandate:read:refused",
        ),
        (
            "another corporation's chain",
            lambda: client.get(f"/api/v1/mandates/{root['id']}/chain", headers=other),
            404,
            "MANDATE_NOT_FOUND",
            "mandate:chain:refused",
        ),
        (
            "another corporation's document",
            lambda: client.get(f"/api/v1/mandates/{root['id']}/document", headers=other),
            404,
            "MANDATE_NOT_FOUND",
            "mandate:document:refused",
        ),
        (
            "revoking another corporation's mandate",
            lambda: client.post(
                f"/api/v1/mandates/{root['id']}/revocation", headers=other, json={}
            ),
            404,
            "MANDATE_NOT_FOUND",
            "mandate:revocation:refused",
        ),
        (
            "a mandate that does not exist",
            lambda: client.get(
                "/api/v1/mandates/00000000-0000-4000-8000-000000000000", headers=mine
            ),
            404,
            "MANDATE_NOT_FOUND",
            "mandate:read:refused",
        ),
        (
            "another corporation's mandates listed",
            lambda: client.get(
                "/api/v1/mandates", query_string={"principal": b.corporate_number}, headers=mine
            ),
            403,
            "FORBIDDEN",
            "mandate:list:refused",
        ),
        (
            "another corporation's authority",
            lambda: client.get(
                "/api/v1/authority",
                query_string={"principal": b.corporate_number, "action": "bid"},
                headers=mine,
            ),
            403,
            "FORBIDDEN",
            "mandate:authority:refused",
        ),
        (
            "a grant without its fields",
            lambda: client.post("/api/v1/mandates", headers=mine, json={}),
            422,
            "VALIDATION_FAILED",
            "mandate:grant:refused",
        ),
        (
            "a list with an unknown status",
            lambda: client.get(
                "/api/v1/mandates", query_string={"status": "sleeping"}, headers=mine
            ),
            422,
            "VALIDATION_FAILED",
            "mandate:list:refused",
        ),
        (
            "an unknown revocation reason",
            lambda: client.post(
                f"/api/v1/mandates/{root['id']}/revocation", headers=mine, json={"reason": "bored"}
            ),
            422,
            "VALIDATION_FAILED",
            "mandate:revocation:refused",
        ),
        (
            "an authority query without an action",
            lambda: client.get(
                "/api/v1/authority", query_string={"principal": a.corporate_number}, headers=mine
            ),
            422,
            "VALIDATION_FAILED",
            "mandate:authority:refused",
        ),
    ]
    for what, send, status, code, tag in refusals:
        before = audit_events(app)
        problem(send(), status, code)
        new = audit_events(app)[len(before) :]
        assert new == [(tag, code)], (what, new)
    # Nothing of a refused request stays, and the mandate is as it was.
    row = mandates(app)[root["id"]]
    assert row.revoked_at is None


def test_refusals_of_the_people_and_sign_in_views_are_audited(client, app, admin_token):
    admin = bearer(admin_token)
    refusals: list[tuple[str, Request, int, str, str]] = [
        (
            "a role for nobody",
            lambda: client.post(
                "/api/v1/role-assignments",
                headers=admin,
                json={"person_id": "00000000-0000-4000-8000-000000000000", "role": "auditor"},
            ),
            404,
            "PERSON_NOT_FOUND",
            "people:request:refused",
        ),
        (
            "an unknown role",
            lambda: client.post(
                "/api/v1/role-assignments", headers=admin, json={"person_id": "x", "role": "king"}
            ),
            422,
            "VALIDATION_FAILED",
            "people:request:refused",
        ),
        (
            "removing a role assignment that does not exist",
            lambda: client.delete("/api/v1/role-assignments/nothing", headers=admin),
            404,
            "ROLE_ASSIGNMENT_NOT_FOUND",
            "people:request:refused",
        ),
        (
            "a challenge answered with no proof",
            lambda: client.post("/api/v1/auth/challenges/nothing/response", json={}),
            422,
            "VALIDATION_FAILED",
            "auth:request:refused",
        ),
    ]
    for what, send, status, code, tag in refusals:
        before = audit_events(app)
        problem(send(), status, code)
        assert audit_events(app)[len(before) :] == [(tag, code)], what


def test_a_refusal_the_service_records_is_audited_once(client, app, world):
    """A refusal the mandate service raised (recorded with its tag by the view) is not
    recorded a second time at the end of the request."""
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    token = login(client, a.representative)
    assert (
        client.post(
            f"/api/v1/mandates/{root['id']}/revocation", headers=bearer(token), json={}
        ).status_code
        == 200
    )
    before = audit_events(app)
    problem(
        client.post(f"/api/v1/mandates/{root['id']}/revocation", headers=bearer(token), json={}),
        409,
        "MANDATE_ALREADY_REVOKED",
    )
    assert audit_events(app)[len(before) :] == [
        ("mandate:revocation:refused", "MANDATE_ALREADY_REVOKED")
    ]


@pytest.fixture
def admin_token(client, app, hsm, pki, world) -> str:
    """An administrator's token: an employee of A given the role in the database."""
    from app.people.models import Role, RoleAssignment

    admin = new_employee(client, hsm, pki, world["a"], "管理\u3000者")
    with app.extensions["dairi"].session_factory() as session, session.begin():
        session.add(
            RoleAssignment(
                person_id=admin.person_id, role=Role.ADMINISTRATOR.value, granted_by="test"
            )
        )
    return admin.token


# -- services never commit: the sign-in and enrolment services (issue 10 item 5) ---------


def test_an_enrolment_whose_request_fails_at_its_end_is_not_half_done(
    client, app, pki, world, monkeypatch
):
    """The invitation is not spent, nobody is enrolled and no event says so, so the
    employee can simply enrol again with the same code."""
    from helpers_auth import invite, new_card, try_enrol

    from app.people.models import Invitation, Person

    corp = world["a"]
    code = invite(
        client, login(client, corp.representative), corp.corporate_number, name="途中\u3000失敗"
    )["code"]
    card = new_card(pki, "途中\u3000失敗")
    enrolled = [t for t, _ in audit_events(app)].count("enrolment:person:enrolled")
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)  # as served: a 500
    with failing_end_of_request(app, "/api/v1/enrolments") as failed:
        response = try_enrol(client, code, card)
    assert failed == ["/api/v1/enrolments"]
    assert response.status_code == 500, response.get_data()[:300]
    with app.extensions["dairi"].session_factory() as session:
        assert session.scalars(select(Person).where(Person.name == "途中\u3000失敗")).all() == []
        assert session.scalars(
            select(Invitation.used_at).where(Invitation.name == "途中\u3000失敗")
        ).all() == [None]
    assert [t for t, _ in audit_events(app)].count("enrolment:person:enrolled") == enrolled
    retried = try_enrol(client, code, card)
    assert retried.status_code == 201, retried.get_json()
    assert [t for t, _ in audit_events(app)].count("enrolment:person:enrolled") == enrolled + 1


def test_a_challenge_whose_answer_failed_is_not_left_open(client, app, monkeypatch):
    """The client never received it, so it must not hold one of max_open_challenges."""
    from app.people.models import AuthChallenge

    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    with failing_end_of_request(app, "/api/v1/auth/challenges") as failed:
        response = client.post("/api/v1/auth/challenges", json={"purpose": "login"})
    assert failed == ["/api/v1/auth/challenges"] and response.status_code == 500
    with app.extensions["dairi"].session_factory() as session:
        assert session.scalars(select(AuthChallenge)).all() == []


def test_a_refused_login_still_spends_its_challenge_and_counts(client, app, pki, world):
    """The writes that must stand although the request is refused and rolled back."""
    from helpers_auth import new_card, open_challenge, try_login

    from app.http.ratelimit import RateLimitCounter

    challenge = open_challenge(client)
    stranger = new_card(pki, "未登録\u3000者")  # never enrolled: CERTIFICATE_NOT_ENROLLED
    problem(
        try_login(client, stranger.authentication, challenge=challenge),
        403,
        "CERTIFICATE_NOT_ENROLLED",
    )
    # The right card cannot use the spent challenge.
    problem(
        try_login(client, world["a"].representative, challenge=challenge), 409, "CHALLENGE_REPLAYED"
    )
    with app.extensions["dairi"].session_factory() as session:
        refused = session.scalars(
            select(RateLimitCounter.count).where(
                RateLimitCounter.key.like("auth-refused:address:%")
            )
        ).all()
    assert refused == [2]  # the refused login and the replay


def test_a_separate_transaction_refuses_to_commit_the_request_s_own_writes(app, world):
    """The helper for writes that must stand commits only what it wraps; work the unit
    of work has begun is not committed by it (a programming error, said loudly)."""
    from app.unit_of_work import UnitOfWorkInterleaved, separate_transaction

    corp = world["a"]
    with app.extensions["dairi"].session_factory() as session:
        row = session.get(Corporation, corp.corporate_number)
        row.joint_representatives = 2
        with pytest.raises(UnitOfWorkInterleaved), separate_transaction(session):
            pass
        session.rollback()
        session.execute(Corporation.__table__.update().values(joint_representatives=3))
        with pytest.raises(UnitOfWorkInterleaved), separate_transaction(session):
            pass
        session.rollback()
    with app.extensions["dairi"].session_factory() as session:
        assert session.get(Corporation, corp.corporate_number).joint_representatives == 1
