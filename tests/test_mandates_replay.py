"""A signed grant is accepted once and only while fresh, and its holder certificate is
the grantee's own credential (issue 9, items 3 and 4), through the HTTP API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers_auth import bearer, login, new_corporation, problem
from helpers_delegation import sign_instruction
from helpers_mandates import instruction, new_employee, now, post_grant, root_grant, scope
from sqlalchemy import func, select

from app.audit_trail.log import AuditLog
from app.credentials.models import Credential, CredentialStatus
from app.credentials.service import CredentialService
from app.mandates.models import Mandate


def mandate_count(app) -> int:
    with app.extensions["dairi"].session_factory() as session:
        return session.scalar(select(func.count()).select_from(Mandate))


def refusals(app) -> set[str]:
    """The codes of the audited grant refusals; the chain must be intact. (Identical
    refusals within a minute are one event with a count, issue 9.8.)"""
    with app.extensions["dairi"].session_factory() as session:
        log = AuditLog(session)
        log.verify()
        return {
            json.loads(r.details)["code"] for r in log.events() if r.tag == "mandate:grant:refused"
        }


# -- 9.3: replayed and stale instructions -------------------------------------------------


def test_the_same_signed_grant_is_accepted_once(client, app, world):
    a, yamada = world["a"], world["yamada"]
    data = instruction(a, yamada, scope())
    signatures = sign_instruction(a.representative, data)
    token = login(client, a.representative)
    assert post_grant(client, token, data, signatures, yamada).status_code == 201
    problem(post_grant(client, token, data, signatures, yamada), 409, "INSTRUCTION_REPLAYED")
    # Signed afresh (another CMS over the same bytes) it is still the same instruction.
    problem(
        post_grant(client, token, data, sign_instruction(a.representative, data), yamada),
        409,
        "INSTRUCTION_REPLAYED",
    )
    assert mandate_count(app) == 1
    assert refusals(app) == {"INSTRUCTION_REPLAYED"}


def test_a_revoked_grant_cannot_be_granted_again(client, app, world):
    a, yamada = world["a"], world["yamada"]
    data = instruction(a, yamada, scope())
    signatures = sign_instruction(a.representative, data)
    token = login(client, a.representative)
    granted = post_grant(client, token, data, signatures, yamada).get_json()
    revoked = client.post(
        f"/api/v1/mandates/{granted['id']}/revocation", json={}, headers=bearer(token)
    )
    assert revoked.status_code == 200, revoked.get_json()
    problem(post_grant(client, token, data, signatures, yamada), 409, "INSTRUCTION_REPLAYED")
    assert mandate_count(app) == 1
    listed = client.get(
        "/api/v1/mandates",
        headers=bearer(token),
        query_string={"principal": a.corporate_number, "status": "active"},
    )
    assert listed.get_json()["total"] == 0
    assert refusals(app) == {"INSTRUCTION_REPLAYED"}


def test_an_instruction_made_eleven_minutes_ago_is_stale(client, app, world):
    a, yamada = world["a"], world["yamada"]
    token = login(client, a.representative)
    old = instruction(a, yamada, scope(), created_at=now() - timedelta(minutes=11))
    problem(
        post_grant(client, token, old, sign_instruction(a.representative, old), yamada),
        422,
        "INSTRUCTION_STALE",
    )
    # From too far in the future it is refused the same way.
    ahead = instruction(a, yamada, scope(), created_at=now() + timedelta(minutes=10))
    problem(
        post_grant(client, token, ahead, sign_instruction(a.representative, ahead), yamada),
        422,
        "INSTRUCTION_STALE",
    )
    assert mandate_count(app) == 0
    assert refusals(app) == {"INSTRUCTION_STALE"}
    # Nine minutes old is within the default bound of ten.
    recent = instruction(a, yamada, scope(), created_at=now() - timedelta(minutes=9))
    assert (
        post_grant(
            client, token, recent, sign_instruction(a.representative, recent), yamada
        ).status_code
        == 201
    )


def test_the_age_bound_is_a_setting(app_settings, hsm, pki, monkeypatch):
    from app.factory import create_app
    from app.migrate import migrate

    monkeypatch.delenv("DAIRI_HSM_PIN", raising=False)
    migrate(app_settings.database_url)
    application = create_app(app_settings.replace(instruction_max_age_seconds=60), hsm=hsm)
    try:
        client = application.test_client()
        a = new_corporation(pki)
        yamada = new_employee(client, hsm, pki, a, "山田\u3000太郎")
        data = instruction(a, yamada, scope(), created_at=now() - timedelta(minutes=2))
        problem(
            post_grant(
                client,
                login(client, a.representative),
                data,
                sign_instruction(a.representative, data),
                yamada,
            ),
            422,
            "INSTRUCTION_STALE",
        )
    finally:
        application.extensions["dairi"].engine.dispose()


def test_an_instruction_without_nonce_or_creation_time_is_malformed(client, world):
    a, yamada = world["a"], world["yamada"]
    import rfc8785

    token = login(client, a.representative)
    doc = json.loads(instruction(a, yamada, scope()))
    for change in (
        {"nonce": None},
        {"nonce": "c2hvcnQ"},
        {"nonce": "not base64url!!!!!!!!!!!"},
        {"created_at": "2026-11-30T12:00:00.5Z"},
        {"created_at": 1764504000},
    ):
        data = rfc8785.dumps({**doc, **change})
        problem(
            post_grant(client, token, data, sign_instruction(a.representative, data), yamada),
            422,
            "INSTRUCTION_MALFORMED",
        )
    for missing in ("nonce", "created_at"):
        data = rfc8785.dumps({k: v for k, v in doc.items() if k != missing})
        problem(
            post_grant(client, token, data, sign_instruction(a.representative, data), yamada),
            422,
            "INSTRUCTION_MALFORMED",
        )


# -- 9.4: the holder certificate is the grantee's own live credential -------------------


def test_a_grant_with_another_corporations_employees_key_is_refused(client, app, world):
    a, yamada, tanaka = world["a"], world["yamada"], world["tanaka"]
    # The instruction names 山田 as grantee but certifies 田中's (corporation B) key.
    data = instruction(a, yamada, scope(), holder=tanaka)
    token = login(client, a.representative)
    problem(
        post_grant(
            client,
            token,
            data,
            sign_instruction(a.representative, data),
            yamada,
            grantee_certificate=tanaka.certificate,
        ),
        403,
        "HOLDER_NOT_GRANTEE",
    )
    # A colleague's key in the same corporation is no better.
    data = instruction(a, yamada, scope(), holder=world["suzuki"])
    problem(
        post_grant(
            client,
            token,
            data,
            sign_instruction(a.representative, data),
            yamada,
            grantee_certificate=world["suzuki"].certificate,
        ),
        403,
        "HOLDER_NOT_GRANTEE",
    )
    assert mandate_count(app) == 0
    assert refusals(app) == {"HOLDER_NOT_GRANTEE"}
    # 山田's own credential passes.
    granted = root_grant(client, a, yamada)
    assert granted["grantee"]["certificate_sha256"] == yamada.sha256


def test_a_credential_that_is_not_live_does_not_hold_a_mandate(client, app, world):
    a, yamada = world["a"], world["yamada"]
    with app.extensions["dairi"].session_factory() as session:
        row = session.scalars(
            select(Credential).where(Credential.certificate_sha256 == yamada.sha256)
        ).one()
        assert (row.person_id, row.corporate_number) == (yamada.person_id, a.corporate_number)
        row.status = CredentialStatus.SUSPENDED.value
        session.commit()
    data = instruction(a, yamada, scope())
    problem(
        post_grant(
            client,
            login(client, a.representative),
            data,
            sign_instruction(a.representative, data),
            yamada,
        ),
        403,
        "HOLDER_NOT_GRANTEE",
    )


def test_a_credential_is_issued_to_an_enrolled_employee_and_names_them(client, app, hsm, world):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from app.credentials.service import CredentialError, CredentialOwner

    a, b, yamada = world["a"], world["b"], world["yamada"]
    context = app.extensions["dairi"]
    with context.session_factory() as session:
        service = CredentialService(session, context.hsm, context.dev_pki)
        for owner, code in (
            (CredentialOwner(yamada.person_id, b.corporate_number), "PERSON_NOT_EMPLOYEE"),
            (
                CredentialOwner("00000000-0000-4000-8000-000000000000", a.corporate_number),
                "PERSON_NOT_FOUND",
            ),
        ):
            with pytest.raises(CredentialError) as caught:
                service.issue("不正 発行", context.settings.default_key_algorithm, owner)
            assert caught.value.code == code
        assert service.list() and all(c.name != "不正 発行" for c in service.list())
        row = next(c for c in service.list() if c.certificate_sha256 == yamada.sha256)
        subject = x509.load_der_x509_certificate(row.certificate_der).subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "山田\u3000太郎"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "株式会社大理建設"
    assert (
        subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value
        == f"NTRJP-{a.corporate_number}"
    )


def test_the_same_instruction_posted_at_once_is_granted_once(client, app, world):
    """Racing copies of one signed grant: one mandate, the others INSTRUCTION_REPLAYED
    (PostgreSQL: the digest's primary key; SQLite: the write lock taken at BEGIN)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from app.mandates.service import MandateError, MandateService
    from app.people.caller import Caller, CallerKind
    from app.unit_of_work import unit_of_work

    a, yamada = world["a"], world["yamada"]
    data = instruction(a, yamada, scope())
    signatures = sign_instruction(a.representative, data)
    context = app.extensions["dairi"]
    actor = Caller(
        CallerKind.REPRESENTATIVE, "test", "代表", representative_of=frozenset({a.corporate_number})
    )
    racers = 4
    start = threading.Barrier(racers)

    def grant() -> str:
        try:
            with unit_of_work(context.session_factory) as session:  # commits the grant
                service = MandateService(
                    session,
                    context.settings,
                    context.certificate_validator,
                    context.attribute_authority,
                    context.clock,
                )
                start.wait()
                service.grant(
                    data,
                    signatures,
                    grantee_certificate=yamada.certificate,
                    grantee_person_id=yamada.person_id,
                    actor=actor,
                )
            return "granted"
        except MandateError as exc:
            return exc.code

    with ThreadPoolExecutor(racers) as pool:
        outcomes = sorted(
            f.result(timeout=120) for f in [pool.submit(grant) for _ in range(racers)]
        )
    assert outcomes == ["INSTRUCTION_REPLAYED"] * (racers - 1) + ["granted"]
    assert mandate_count(app) == 1
