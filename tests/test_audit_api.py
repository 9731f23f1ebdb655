"""The auditor's HTTP API (issue 14 item 2): events with every filter and cursor paging,
verification of the chain as stored, a mandate's history, the authority report as JSON,
CSV (read by the csv module) and a Japanese PDF (read by poppler), and who may read what:
a representative or API client never sees another corporation's events.

Expectations are written by hand: the probe events below are appended at fixed times by
the audit log itself, and the mandates are granted and revoked through the API."""

from __future__ import annotations

import base64
import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from helpers_auth import bearer, enrolled_employee, login, new_corporation, problem
from helpers_mandates import ENTITY, new_employee, root_grant, sub_grant
from sqlalchemy import delete, update
from test_pdf_layout import assert_readable, compact, pages_of, shown_text

from app.audit_trail.log import AuditLog
from app.audit_trail.models import AuditRecord
from app.audit_trail.service import take_checkpoint
from app.people.models import Role, RoleAssignment

# Probe events, appended with these times (UTC): 23:59:59 and 00:00 and 01:00 日本時間.
T_A = datetime(2029, 12, 31, 14, 59, 59, tzinfo=UTC)
T_B = datetime(2029, 12, 31, 15, 0, 0, tzinfo=UTC)
T_C = datetime(2029, 12, 31, 16, 0, 0, tzinfo=UTC)


def basic(created: dict) -> dict[str, str]:
    pair = f"{created['client_id']}:{created['client_secret']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def append(
    app,
    tag: str,
    *,
    actor: str = "service",
    subject: str | None = None,
    principal: str | None = None,
    details: dict | None = None,
    at: datetime | None = None,
) -> int:
    """An event appended by the audit log, as a service would (its own transaction)."""
    with app.extensions["dairi"].session_factory() as session, session.begin():
        return (
            AuditLog(session)
            .append(tag, actor=actor, subject=subject, principal=principal, details=details, at=at)
            .sequence
        )


def give_role(app, person_id: str, role: Role) -> None:
    with app.extensions["dairi"].session_factory() as session, session.begin():
        session.add(RoleAssignment(person_id=person_id, role=role.value, granted_by="test"))


@pytest.fixture
def app_settings(app_settings):
    """Enough login challenges for the many callers of these tests."""
    return app_settings.replace(challenge_rate_per_minute=1000)


@pytest.fixture
def world(client, app, hsm, pki) -> dict:
    """A (山田 granted by the representative, 鈴木 sub-delegated by 山田), B (田中), an
    auditor and an administrator (employees of A with those roles), and three probes."""
    a = new_corporation(pki, name="株式会社大理建設")
    b = new_corporation(pki, name="株式会社ビー")
    yamada = new_employee(client, hsm, pki, a, "山田\u3000太郎")
    suzuki = new_employee(client, hsm, pki, a, "鈴木\u3000花子")
    tanaka = new_employee(client, hsm, pki, b, "田中\u3000三郎")
    auditor_card, auditor_id, _ = enrolled_employee(client, pki, a, "監査\u3000役")
    admin_card, admin_id, _ = enrolled_employee(client, pki, a, "管理\u3000者")
    give_role(app, auditor_id, Role.AUDITOR)
    give_role(app, admin_id, Role.ADMINISTRATOR)
    root = root_grant(client, a, yamada)
    sub = sub_grant(client, hsm, a, root, yamada, suzuki)
    b_root = root_grant(client, b, tanaka)
    A, B = a.corporate_number, b.corporate_number
    probes = {
        "a": append(app, "test:probe:a", actor="person:alice", subject="s1", principal=A, at=T_A),
        "b": append(app, "test:probe:b", actor="person:bob", subject="s2", principal=A, at=T_B),
        "c": append(app, "test:probe:c", actor="person:alice", subject="s1", principal=B, at=T_C),
        "none": append(app, "test:probe:none", actor="person:alice", at=T_B),
    }
    return {
        "A": A,
        "B": B,
        "a": a,
        "b": b,
        "yamada": yamada,
        "suzuki": suzuki,
        "tanaka": tanaka,
        "root": root["id"],
        "sub": sub["id"],
        "b_root": b_root["id"],
        "probes": probes,
        "auditor": bearer(login(client, auditor_card.authentication)),
        "admin": bearer(login(client, admin_card.authentication)),
        "a_rep": bearer(login(client, a.representative)),
        "b_rep": bearer(login(client, b.representative)),
        "a_employee": bearer(yamada.token),
    }


def events(client, headers, **query) -> list[dict]:
    """Every event matching ``query``, page by page."""
    found: list[dict] = []
    cursor = None
    while True:
        args = {**query, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/audit/events", query_string=args, headers=headers)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        found += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return found


def tags(items: list[dict]) -> list[str]:
    return [item["tag"] for item in items]


def register_client(client, world, **body) -> dict:
    body.setdefault("name", "監査システム")
    response = client.post("/api/v1/clients", headers=world["admin"], json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# -- events and their filters -------------------------------------------------------------


def test_each_filter_of_the_events(client, world):
    auditor, A, B = world["auditor"], world["A"], world["B"]
    probes = world["probes"]
    every = events(client, auditor, tag="test:*")
    assert tags(every) == ["test:probe:a", "test:probe:b", "test:probe:c", "test:probe:none"]
    assert [e["sequence"] for e in every] == [probes["a"], probes["b"], probes["c"], probes["none"]]
    first = every[0]
    assert first["actor"] == "person:alice" and first["subject"] == "s1"
    assert first["principal"] == A and first["details"] == {}
    assert first["occurred_at"].startswith("2029-12-31T14:59:59")
    assert len(first["hash"]) == 64 and len(first["previous_hash"]) == 64

    assert tags(events(client, auditor, tag="test:*", principal=A)) == [
        "test:probe:a",
        "test:probe:b",
    ]
    assert tags(events(client, auditor, tag="test:*", principal=B)) == ["test:probe:c"]
    assert tags(events(client, auditor, tag="test:probe:b")) == ["test:probe:b"]
    assert tags(events(client, auditor, actor="person:alice")) == [
        "test:probe:a",
        "test:probe:c",
        "test:probe:none",
    ]
    assert tags(events(client, auditor, subject="s1")) == ["test:probe:a", "test:probe:c"]
    # from is inclusive, to exclusive; 2030-01-01T00:00+09:00 is T_B.
    assert tags(events(client, auditor, tag="test:*", **{"from": "2030-01-01T00:00:00+09:00"})) == [
        "test:probe:b",
        "test:probe:c",
        "test:probe:none",
    ]
    assert tags(events(client, auditor, tag="test:*", to="2030-01-01T01:00:00+09:00")) == [
        "test:probe:a",
        "test:probe:b",
        "test:probe:none",
    ]
    assert tags(
        events(
            client,
            auditor,
            tag="test:*",
            to="2029-12-31T15:00:00Z",
            **{"from": "2029-12-31T14:59:59Z"},
        )
    ) == ["test:probe:a"]
    # The mandates granted through the API, by subject and by tag.
    assert tags(events(client, auditor, subject=world["root"])) == ["mandate:granted"]
    granted = events(client, auditor, tag="mandate:granted")
    assert [(e["subject"], e["principal"]) for e in granted] == [
        (world["root"], A),
        (world["sub"], A),
        (world["b_root"], B),
    ]
    assert granted[1]["details"]["parent"] == world["root"]
    # A range that ends before it starts holds nothing.
    assert (
        events(
            client,
            auditor,
            tag="test:*",
            to="2029-12-31T14:00:00Z",
            **{"from": "2029-12-31T16:00:00Z"},
        )
        == []
    )
    # Filters combine.
    assert events(client, auditor, tag="mandate:*", principal=B, actor="person:alice") == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"from": "2030-01-01T00:00:00"}, "VALIDATION_FAILED"),  # no offset
        ({"tag": "mandate granted"}, "VALIDATION_FAILED"),
        ({"principal": "123"}, "VALIDATION_FAILED"),
        ({"principal": "1234567890123"}, "CORPORATE_NUMBER_INVALID"),  # wrong check digit
        ({"page_size": "201"}, "VALIDATION_FAILED"),
        ({"page_size": "0"}, "VALIDATION_FAILED"),
        ({"cursor": "not-a-cursor"}, "VALIDATION_FAILED"),
        ({"cursor": "c1.-1"}, "VALIDATION_FAILED"),
        ({"cursor": "c1.1" + "0" * 18}, "VALIDATION_FAILED"),
    ],
)
def test_bad_event_queries_are_422_problems(client, world, query, code):
    problem(
        client.get("/api/v1/audit/events", query_string=query, headers=world["auditor"]), 422, code
    )


# -- who reads what -------------------------------------------------------------------------


def test_a_representative_reads_only_their_corporations_events(client, app, world):
    A, B = world["A"], world["B"]
    seen_b = events(client, world["b_rep"])
    assert seen_b and {e["principal"] for e in seen_b} == {B}
    assert tags(events(client, world["b_rep"], tag="test:*")) == ["test:probe:c"]
    assert events(client, world["b_rep"], subject=world["root"]) == []
    seen_a = events(client, world["a_rep"], tag="test:*")
    assert tags(seen_a) == ["test:probe:a", "test:probe:b"]  # not c, not the unnamed one

    # Naming A: refused, and the refusal is in the log.
    problem(
        client.get("/api/v1/audit/events", query_string={"principal": A}, headers=world["b_rep"]),
        403,
        "FORBIDDEN",
    )
    refusals = events(client, world["auditor"], tag="audit:access:refused")
    assert [e["details"]["code"] for e in refusals] == ["FORBIDDEN"]
    assert refusals[0]["details"]["path"] == "/api/v1/audit/events"
    assert refusals[0]["actor"].startswith("representative:")
    # B's representative sees no other corporation anywhere else either.
    problem(
        client.get(f"/api/v1/mandates/{world['root']}/history", headers=world["b_rep"]),
        404,
        "MANDATE_NOT_FOUND",
    )
    problem(
        client.get(
            "/api/v1/audit/authority-report", query_string={"principal": A}, headers=world["b_rep"]
        ),
        403,
        "FORBIDDEN",
    )
    # Each refusal is in the log (the second FORBIDDEN of the same kind within the
    # minute is counted on the first, as identical refusals are: app.audit_trail.log).
    refusals = events(client, world["auditor"], tag="audit:access:refused")
    assert [(e["details"]["code"], e["details"]["path"]) for e in refusals] == [
        ("FORBIDDEN", "/api/v1/audit/events"),
        ("MANDATE_NOT_FOUND", f"/api/v1/mandates/{world['root']}/history"),
    ]


def test_employees_and_anonymous_callers_are_refused(client, world):
    for path in (
        "/api/v1/audit/events",
        "/api/v1/audit/checkpoints",
        "/api/v1/audit/verification",
        f"/api/v1/mandates/{world['root']}/history",
        f"/api/v1/audit/authority-report?principal={world['A']}",
    ):
        problem(client.get(path), 401, "UNAUTHENTICATED")
        problem(client.get(path, headers=world["a_employee"]), 403, "FORBIDDEN")
    # The administrator reads everything, as the auditor does.
    assert tags(events(client, world["admin"], tag="test:*")) == [
        "test:probe:a",
        "test:probe:b",
        "test:probe:c",
        "test:probe:none",
    ]


def test_api_clients_need_audit_read_and_see_their_corporations_only(client, world):
    A, B = world["A"], world["B"]
    without = basic(register_client(client, world, scopes=["mandates:read"], corporations=[A]))
    for path in (
        "/api/v1/audit/events",
        f"/api/v1/mandates/{world['root']}/history",
        "/api/v1/audit/verification",
        "/api/v1/audit/checkpoints",
        f"/api/v1/audit/authority-report?principal={A}",
    ):
        problem(client.get(path, headers=without), 403, "FORBIDDEN")

    of_a = basic(register_client(client, world, scopes=["audit:read"], corporations=[A]))
    assert tags(events(client, of_a, tag="test:*")) == ["test:probe:a", "test:probe:b"]
    assert {e["principal"] for e in events(client, of_a)} == {A}
    problem(
        client.get("/api/v1/audit/events", query_string={"principal": B}, headers=of_a),
        403,
        "FORBIDDEN",
    )
    problem(
        client.get(f"/api/v1/mandates/{world['b_root']}/history", headers=of_a),
        404,
        "MANDATE_NOT_FOUND",
    )
    assert client.get(f"/api/v1/mandates/{world['root']}/history", headers=of_a).status_code == 200

    every = basic(register_client(client, world, scopes=["audit:read"], all_corporations=True))
    assert tags(events(client, every, tag="test:*")) == [
        "test:probe:a",
        "test:probe:b",
        "test:probe:c",
        "test:probe:none",
    ]


# -- paging -------------------------------------------------------------------------------------


def test_cursor_paging_neither_skips_nor_repeats_while_events_are_appended(client, app, world):
    auditor = world["auditor"]
    first = [append(app, "test:page:x", principal=world["A"]) for _ in range(3)]
    seen: list[int] = []
    cursor = None
    appended = list(first)
    other: list[int] = []
    stop = threading.Event()

    def writer() -> None:  # a concurrent appender, matching and not matching the filter
        while not stop.is_set() and len(appended) < 40:
            appended.append(append(app, "test:page:x", principal=world["A"]))
            other.append(append(app, "test:other", principal=world["A"]))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(200):
            query = {"tag": "test:page:*", "page_size": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get(
                "/api/v1/audit/events", query_string=query, headers=auditor
            ).get_json()
            assert len(page["items"]) <= 2
            seen += [e["sequence"] for e in page["items"]]
            cursor = page["next_cursor"]
            # Between pages, one more appended here too.
            appended.append(append(app, "test:page:x", principal=world["A"]))
            if not page["has_more"] and not thread.is_alive():
                break
            if len(appended) >= 40:
                stop.set()
    finally:
        stop.set()
        thread.join()
    # Read the rest with the last cursor: the events appended after the last page.
    while True:
        page = client.get(
            "/api/v1/audit/events",
            headers=auditor,
            query_string={"tag": "test:page:*", "page_size": 2, "cursor": cursor},
        ).get_json()
        seen += [e["sequence"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == sorted(appended)  # each once, in sequence order
    assert not set(seen) & set(other)
    assert len(seen) >= 40


def test_an_empty_page_keeps_the_cursor_for_later_events(client, app, world):
    page = client.get(
        "/api/v1/audit/events", query_string={"tag": "later:*"}, headers=world["auditor"]
    ).get_json()
    assert page == {"items": [], "next_cursor": None, "has_more": False, "page_size": 50}
    seq = append(app, "later:one")
    page = client.get(
        "/api/v1/audit/events", query_string={"tag": "later:*"}, headers=world["auditor"]
    ).get_json()
    assert [e["sequence"] for e in page["items"]] == [seq]
    cursor = page["next_cursor"]
    page = client.get(
        "/api/v1/audit/events",
        query_string={"tag": "later:*", "cursor": cursor},
        headers=world["auditor"],
    ).get_json()
    assert page["items"] == [] and page["next_cursor"] == cursor
    seq2 = append(app, "later:two")
    page = client.get(
        "/api/v1/audit/events",
        query_string={"tag": "later:*", "cursor": cursor},
        headers=world["auditor"],
    ).get_json()
    assert [e["sequence"] for e in page["items"]] == [seq2]


# -- verification ---------------------------------------------------------------------------


def verification(client, world, **query) -> dict:
    response = client.get(
        "/api/v1/audit/verification", query_string=query, headers=world["auditor"]
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_verification_names_the_first_break_and_its_kind(client, app, world):
    report = verification(client, world, **{"from": "start"})
    assert report["intact"] is True and report["first_break"] is None
    last = world["probes"]["none"]
    assert report["last_sequence"] >= last and report["first_sequence"] == 1
    assert report["events"] == report["last_sequence"]

    victim = world["probes"]["b"]
    engine = app.extensions["dairi"].engine
    with engine.begin() as connection:
        connection.execute(
            update(AuditRecord)
            .where(AuditRecord.sequence == victim)
            .values(details=json.dumps({"edited": True}))
        )
    report = verification(client, world, **{"from": "start"})
    assert report["intact"] is False
    assert report["first_break"]["sequence"] == victim
    assert report["first_break"]["kind"] == "edited"
    assert report["first_break"]["description"]
    # The default (from the last checkpoint; from the start when there is none) sees it too.
    assert verification(client, world)["first_break"]["sequence"] == victim


def test_verification_finds_a_deleted_event(client, app, world):
    victim = world["probes"]["a"]
    with app.extensions["dairi"].engine.begin() as connection:
        connection.execute(delete(AuditRecord).where(AuditRecord.sequence == victim))
    report = verification(client, world, **{"from": "start"})
    assert report["intact"] is False
    assert (report["first_break"]["sequence"], report["first_break"]["kind"]) == (victim, "deleted")


def test_verification_refuses_an_unknown_starting_point(client, world):
    problem(
        client.get(
            "/api/v1/audit/verification",
            query_string={"from": "yesterday"},
            headers=world["auditor"],
        ),
        422,
        "VALIDATION_FAILED",
    )


# -- a mandate's history ----------------------------------------------------------------------


def history(client, headers, mandate_id: str) -> list[tuple[str, str]]:
    response = client.get(f"/api/v1/mandates/{mandate_id}/history", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["mandate_id"] == mandate_id
    return [(e["tag"], e["relation"]) for e in body["items"]]


def test_a_mandates_history_from_grant_to_revocation_with_its_signatures(client, app, world):
    root, sub, A = world["root"], world["sub"], world["A"]
    assert history(client, world["auditor"], root) == [
        ("mandate:granted", "mandate"),
        ("mandate:granted", "sub-delegation"),
    ]
    # A signature made under the sub-delegation (as the signing service records it).
    append(
        app,
        "signature:pades:created",
        actor=f"person:{world['suzuki'].person_id}",
        subject="signature-1",
        principal=A,
        details={"mandate_id": sub},
    )
    response = client.post(f"/api/v1/mandates/{root}/revocation", json={}, headers=world["a_rep"])
    assert response.status_code == 200, response.get_json()
    assert history(client, world["auditor"], root) == [
        ("mandate:granted", "mandate"),
        ("mandate:granted", "sub-delegation"),
        ("mandate:revoked", "mandate"),
    ]
    assert history(client, world["a_rep"], sub) == [
        ("mandate:granted", "mandate"),
        ("signature:pades:created", "signature"),
        ("mandate:revoked", "cascade"),
    ]
    # B's mandate has its own history only.
    assert history(client, world["b_rep"], world["b_root"]) == [("mandate:granted", "mandate")]
    for unknown in ("00000000-0000-0000-0000-000000000000", "x" * 300):
        problem(
            client.get(f"/api/v1/mandates/{unknown}/history", headers=world["auditor"]),
            404,
            "MANDATE_NOT_FOUND",
        )


# -- the authority report ---------------------------------------------------------------------


def report(client, headers, **query):
    return client.get("/api/v1/audit/authority-report", query_string=query, headers=headers)


def test_the_authority_report_says_who_could_act_through_which_chain(client, app, world):
    A, root, sub = world["A"], world["root"], world["sub"]
    before = datetime.now(UTC)
    response = report(client, world["auditor"], principal=A)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["principal"] == {"corporate_number": A, "name": "株式会社大理建設"}
    both = [
        {"action": "bid", "procuring_entity": ENTITY, "case": None},
        {"action": "quote", "procuring_entity": ENTITY, "case": None},
    ]
    assert [
        (
            a["grantee"]["name"],
            a["mandate_id"],
            [h["mandate_id"] for h in a["chain"]],
            a["purposes"],
        )
        for a in body["authorities"]
    ] == [("山田\u3000太郎", root, [root], both), ("鈴木\u3000花子", sub, [root, sub], both)]
    # The representative as the registration certificate names them (CN=佐藤一郎).
    assert body["authorities"][1]["chain"][0]["grantor"] == "佐藤一郎"
    assert body["authorities"][1]["chain"][1]["grantor"] == "山田\u3000太郎"
    assert body["signatures"] == [] and body["signatures_truncated"] is False

    # One purpose; an action nobody holds; a time before any grant.
    one = report(
        client, world["auditor"], principal=A, action="bid", procuring_entity=ENTITY
    ).get_json()
    assert [a["mandate_id"] for a in one["authorities"]] == [root, sub]
    assert (
        report(
            client, world["auditor"], principal=A, action="contract", procuring_entity=ENTITY
        ).get_json()["authorities"]
        == []
    )
    assert (
        report(client, world["auditor"], principal=A, at="2020-01-01T00:00:00+09:00").get_json()[
            "authorities"
        ]
        == []
    )

    # Revoked now: nobody now, both before.
    assert (
        client.post(
            f"/api/v1/mandates/{root}/revocation", json={}, headers=world["a_rep"]
        ).status_code
        == 200
    )
    assert report(client, world["auditor"], principal=A).get_json()["authorities"] == []
    earlier = report(client, world["auditor"], principal=A, at=before.isoformat()).get_json()
    assert [a["mandate_id"] for a in earlier["authorities"]] == [root, sub]
    # B's representative reads B's report.
    b_report = report(client, world["b_rep"], principal=world["B"]).get_json()
    assert [a["mandate_id"] for a in b_report["authorities"]] == [world["b_root"]]


def _signatures(app, world) -> dict[str, int]:
    A, sub = world["A"], world["sub"]
    actor = f"person:{world['suzuki'].person_id}"
    return {
        "early": append(
            app,
            "signature:pades:created",
            actor=actor,
            subject="sig-early",
            principal=A,
            details={"mandate_id": sub},
            at=datetime(2029, 12, 31, 14, 0, tzinfo=UTC),
        ),
        "inside": append(
            app,
            "signature:pades:created",
            actor=actor,
            subject="sig-inside",
            principal=A,
            details={"mandate_id": sub},
            at=datetime(2029, 12, 31, 15, 30, tzinfo=UTC),
        ),
        "b": append(
            app,
            "signature:pades:created",
            actor="person:x",
            subject="sig-b",
            principal=world["B"],
            details={"mandate_id": world["b_root"]},
            at=datetime(2029, 12, 31, 15, 30, tzinfo=UTC),
        ),
    }


def test_the_report_lists_the_signatures_in_its_range(client, app, world):
    sigs = _signatures(app, world)
    body = report(
        client,
        world["auditor"],
        principal=world["A"],
        **{"from": "2030-01-01T00:00:00+09:00", "to": "2030-01-01T01:00:00+09:00"},
    ).get_json()
    assert [(s["sequence"], s["subject"], s["mandate_id"]) for s in body["signatures"]] == [
        (sigs["inside"], "sig-inside", world["sub"])
    ]
    every = report(client, world["auditor"], principal=world["A"]).get_json()
    assert [s["subject"] for s in every["signatures"]] == ["sig-early", "sig-inside"]


def test_the_report_as_csv(client, app, world):
    sigs = _signatures(app, world)
    at = datetime.now(UTC).isoformat()
    response = report(
        client, {**world["auditor"], "Accept": "text/csv"}, principal=world["A"], at=at
    )
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert [
        (r["record"], r["grantee_name"], r["mandate_id"], r["chain_mandate_ids"], r["purposes"])
        for r in rows
        if r["record"] == "authority"
    ] == [
        (
            "authority",
            "山田\u3000太郎",
            world["root"],
            world["root"],
            f"bid/{ENTITY}/*; quote/{ENTITY}/*",
        ),
        (
            "authority",
            "鈴木\u3000花子",
            world["sub"],
            f"{world['root']} > {world['sub']}",
            f"bid/{ENTITY}/*; quote/{ENTITY}/*",
        ),
    ]
    assert rows[1]["chain"] == "佐藤一郎（代表取締役） → 山田\u3000太郎 → 鈴木\u3000花子"
    assert [
        (r["sequence"], r["mandate_id"], r["tag"]) for r in rows if r["record"] == "signature"
    ] == [
        (str(sigs["early"]), world["sub"], "signature:pades:created"),
        (str(sigs["inside"]), world["sub"], "signature:pades:created"),
    ]
    assert {r["principal"] for r in rows} == {world["A"]}
    # format= wins over Accept.
    forced = report(
        client,
        {**world["auditor"], "Accept": "application/json"},
        principal=world["A"],
        format="csv",
        at=at,
    )
    assert forced.mimetype == "text/csv" and forced.get_data() == response.get_data()


def test_a_csv_cell_that_a_spreadsheet_would_run_is_quoted(client, app, world):
    append(
        app,
        "signature:pades:created",
        actor='=HYPERLINK("x")',
        subject="-1+1",
        principal=world["A"],
        details={"mandate_id": "@SUM(A1)"},
    )
    response = report(client, world["auditor"], principal=world["A"], format="csv")
    [row] = [
        r
        for r in csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig")))
        if r["record"] == "signature"
    ]
    assert (row["actor"], row["subject"], row["mandate_id"]) == (
        '\'=HYPERLINK("x")',
        "'-1+1",
        "'@SUM(A1)",
    )


def test_the_report_as_a_japanese_pdf(client, app, world, tmp_path):
    _signatures(app, world)
    response = report(
        client,
        {**world["auditor"], "Accept": "application/pdf"},
        principal=world["A"],
        **{"from": "2029-12-31T00:00:00Z"},
    )
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    pages = pages_of(response.get_data(), tmp_path)
    assert_readable(pages)
    text = shown_text(pages)
    facts = [
        "代理権限報告書",
        f"法人番号:{world['A']}",
        "法人名:株式会社大理建設",
        "署名の期間:2029年12月31日09:00から指定なしまで（日本時間）",
        "1.山田太郎",
        f"委任状番号{world['root']}",
        "連鎖:佐藤一郎（代表取締役）→山田太郎",
        "委任事項:入札（" + ENTITY + "）、見積（" + ENTITY + "）",
        "2.鈴木花子",
        "連鎖:佐藤一郎（代表取締役）→山田太郎→鈴木花子",
        "【期間内の署名】",
        "2029年12月31日23:00signature:pades:created",
        "2030年01月01日00:30signature:pades:created",
    ]
    position = 0
    for fact in facts:
        found = text.find(compact(fact), position)
        assert found >= 0, (fact, text)
        position = found


def test_a_long_report_runs_over_pages_inside_the_margins(client, app, world, tmp_path):
    for n in range(70):
        append(
            app,
            "signature:pades:created",
            actor=f"person:{world['suzuki'].person_id}",
            subject=f"sig-{n}",
            principal=world["A"],
            details={"mandate_id": world["sub"]},
            at=datetime(2029, 12, 31, tzinfo=UTC) + timedelta(minutes=n),
        )
    response = report(client, world["auditor"], principal=world["A"], format="pdf")
    pages = pages_of(response.get_data(), tmp_path)
    assert len(pages) >= 2
    assert_readable(pages)
    text = shown_text(pages)
    assert text.count("signature:pades:created") == 70
    assert compact(f"（{len(pages)}/{len(pages)}ページ）") in text


def test_the_report_refuses_what_it_cannot_answer(client, world):
    problem(
        report(client, {**world["auditor"], "Accept": "image/png"}, principal=world["A"]),
        406,
        "NOT_ACCEPTABLE",
    )
    problem(report(client, world["auditor"]), 422, "VALIDATION_FAILED")  # no principal
    problem(
        report(client, world["auditor"], principal=world["A"], format="xml"),
        422,
        "VALIDATION_FAILED",
    )
    problem(
        report(client, world["auditor"], principal=world["A"], action="e-application:*"),
        422,
        "SCOPE_INVALID",
    )


# -- checkpoints and the OpenAPI document ---------------------------------------------------------


def checkpoint_page(client, headers, **query) -> dict:
    response = client.get("/api/v1/audit/checkpoints", query_string=query, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_checkpoints_are_listed_page_by_page(client, app, world):
    assert checkpoint_page(client, world["auditor"]) == {
        "items": [],
        "next_cursor": None,
        "has_more": False,
        "page_size": 50,
    }
    context = app.extensions["dairi"]
    first = take_checkpoint(context).sequence
    append(app, "test:between")
    second = take_checkpoint(context).sequence
    assert second == first + 1
    head = events(client, world["auditor"], tag="test:between")[0]

    page = checkpoint_page(client, world["b_rep"], page_size=1)
    assert [c["sequence"] for c in page["items"]] == [first] and page["has_more"] is True
    page = checkpoint_page(client, world["b_rep"], page_size=1, cursor=page["next_cursor"])
    assert [c["sequence"] for c in page["items"]] == [second] and page["has_more"] is False
    [latest] = page["items"]
    assert latest["head_hash"] == head["hash"]
    statement = json.loads(latest["statement"])
    assert (statement["sequence"], statement["head_hash"]) == (second, head["hash"])
    assert base64.b64decode(latest["signature"])[:1] == b"\x30"  # DER SEQUENCE
    assert base64.b64decode(latest["timestamp_token"])[:1] == b"\x30"


def test_verification_from_the_last_checkpoint_or_from_the_start(client, app, world):
    context = app.extensions["dairi"]
    protected = world["probes"]["b"]
    checkpoint = take_checkpoint(context).sequence
    after = [append(app, "test:after"), append(app, "test:after")]
    report = verification(client, world)
    assert (
        report["intact"],
        report["checked_from"],
        report["events"],
        report["first_sequence"],
        report["last_checkpoint"],
    ) == (True, "checkpoint", 2, checkpoint + 1, None)
    assert report["checkpoints_verified"] == 1

    # An edit before the checkpoint: seen from the start.
    with context.engine.begin() as connection:
        connection.execute(
            update(AuditRecord)
            .where(AuditRecord.sequence == protected)
            .values(actor="person:mallory")
        )
    whole = verification(client, world, **{"from": "start"})
    assert whole["intact"] is False and whole["checked_from"] == "start"
    assert (whole["first_break"]["sequence"], whole["first_break"]["kind"]) == (protected, "edited")
    # An edit after it: seen from the checkpoint too.
    with context.engine.begin() as connection:
        connection.execute(
            update(AuditRecord).where(AuditRecord.sequence == after[1]).values(tag="test:forged")
        )
    report = verification(client, world)
    assert (report["first_break"]["sequence"], report["first_break"]["kind"]) == (
        after[1],
        "edited",
    )


def test_the_openapi_document_describes_the_auditor_api(client):
    spec = client.get("/openapi.json").get_json()
    for path in (
        "/api/v1/audit/events",
        "/api/v1/audit/checkpoints",
        "/api/v1/audit/verification",
        "/api/v1/mandates/{mandate_id}/history",
        "/api/v1/audit/authority-report",
    ):
        operation = spec["paths"][path]["get"]
        assert "auditor" in operation["description"], path
        assert "audit:read" in operation["description"], path
        assert {next(iter(s)) for s in operation["security"]} == {"bearerAuth", "basicAuth"}
    content = spec["paths"]["/api/v1/audit/authority-report"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/csv", "application/pdf"} <= set(content)
    names = {p["name"] for p in spec["paths"]["/api/v1/audit/events"]["get"]["parameters"]}
    assert {"principal", "actor", "tag", "subject", "from", "to", "cursor", "page_size"} <= names
