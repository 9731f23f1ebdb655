"""Grant and chain paths that had no test (issue 10 item 8), each through HTTP: a root
representative's later revocation and its ``superseded`` exemption, the non-canonical
instruction and sub-second validity refusals, each condition once refused as
``PRINCIPAL_MISMATCH`` (now each with its own code, issue 10.3), and
``REVOCATION_STATUS_UNAVAILABLE`` on a grant. Expected codes and reasons are written
by hand from DESIGN.md, not read from the code."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from cryptography import x509
from helpers_auth import bearer, login, move_clock, problem
from helpers_delegation import sign_instruction
from helpers_mandates import (
    ENTITY,
    instruction,
    now,
    post_grant,
    root_grant,
    scope,
    try_root_grant,
)

from app.audit_trail.log import AuditLog
from app.mandates.models import Mandate
from devpki import TransportFetcherBackend
from signing import sign_detached


def refusals(app) -> list[tuple[str, str | None]]:
    with app.extensions["dairi"].session_factory() as session:
        log = AuditLog(session)
        log.verify()
        return [
            (r.tag, json.loads(r.details).get("code"))
            for r in log.events()
            if r.tag.endswith(":refused")
        ]


def mandate_count(app) -> int:
    with app.extensions["dairi"].session_factory() as session:
        return len(session.query(Mandate).all())


# -- a root representative revoked after the grant ------------------------------


def chain(client, mandate: dict, token: str) -> dict:
    response = client.get(
        f"/api/v1/mandates/{mandate['id']}/chain",
        query_string={"action": "bid", "procuring_entity": ENTITY},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@pytest.mark.parametrize(
    ("reason", "holds"),
    [
        pytest.param(x509.ReasonFlags.key_compromise, False),
        pytest.param(x509.ReasonFlags.cessation_of_operation, False),
        # DESIGN: a representative's certificate renewed (superseded) does not end
        # the mandates they granted.
        (x509.ReasonFlags.superseded, True),
    ],
)
def test_a_representative_revoked_after_the_grant(client, app, pki, world, reason, holds):
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    assert chain(client, root, yamada.token)["holds"] is True
    pki.ca_for_slug("registrar").revoke(
        a.representative.certificate.serial_number, reason, now=now()
    )
    # Past the revocation cache window, so the check cannot be answered from the cache.
    window = app.extensions["dairi"].settings.revocation_cache_seconds
    move_clock(app, timedelta(seconds=window + 1))
    verdict = chain(client, root, yamada.token)
    assert verdict["holds"] is holds, verdict
    expected = [] if holds else ["REPRESENTATIVE_CERT_REVOKED"]
    assert [h["reasons"] for h in verdict["hops"]] == [expected]


@pytest.mark.parametrize(
    ("reason", "holds"),
    [
        (x509.ReasonFlags.key_compromise, False),
        (x509.ReasonFlags.cessation_of_operation, False),
        (x509.ReasonFlags.superseded, True),
    ],
)
def test_a_representative_revoked_after_the_grant_fails_the_chain_from_then_on(
    client, app, pki, world, reason, holds
):
    """Once the sweep has recorded the revocation, later queries fail, and it is
    audited once; a renewal (superseded) never fails the chain."""
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    pki.ca_for_slug("registrar").revoke(
        a.representative.certificate.serial_number, reason, now=now()
    )
    window = app.extensions["dairi"].settings.revocation_cache_seconds
    move_clock(app, timedelta(seconds=window + 1))
    from app.mandates.sweep import sweep
    from app.unit_of_work import unit_of_work

    context = app.extensions["dairi"]
    with unit_of_work(context.session_factory) as session:  # the sweep records it
        sweep(session, context.certificate_validator, context.attribute_authority, context.clock)
    move_clock(app, timedelta(seconds=window + 2))
    verdict = chain(client, root, yamada.token)
    assert verdict["holds"] is holds, verdict
    expected = [] if holds else ["REPRESENTATIVE_CERT_REVOKED"]
    assert [h["reasons"] for h in verdict["hops"]] == [expected]
    with app.extensions["dairi"].session_factory() as session:
        tags = [r.tag for r in AuditLog(session).events()]
    assert tags.count("mandate:representative-revoked") == (0 if holds else 1)


# -- instructions refused before anything is checked ----------------------------


def test_an_instruction_not_in_canonical_form_is_refused(client, app, world):
    a, yamada = world["a"], world["yamada"]
    data = instruction(a, yamada, scope())
    # The same JSON with whitespace: parses, but is not the RFC 8785 bytes.
    loose = json.dumps(json.loads(data), ensure_ascii=False, indent=1).encode()
    assert json.loads(loose) == json.loads(data) and loose != data
    before = mandate_count(app)
    problem(
        post_grant(
            client,
            login(client, a.representative),
            loose,
            sign_instruction(a.representative, loose),
            yamada,
        ),
        422,
        "INSTRUCTION_MALFORMED",
    )
    assert mandate_count(app) == before
    assert ("mandate:grant:refused", "INSTRUCTION_MALFORMED") in refusals(app)


@pytest.mark.parametrize("fraction", [".5", ".500000"])
@pytest.mark.parametrize("field", ["not_before", "not_after"])
def test_validity_with_fractions_of_a_second_is_refused(client, app, world, field, fraction):
    a, yamada = world["a"], world["yamada"]
    doc = json.loads(instruction(a, yamada, scope()))
    value = doc["scope"][field]
    assert value.endswith("Z") and "." not in value, value  # the format, as DESIGN gives it
    doc["scope"][field] = value[:-1] + fraction + "Z"
    import rfc8785

    data = rfc8785.dumps(doc)
    before = mandate_count(app)
    problem(
        post_grant(
            client,
            login(client, a.representative),
            data,
            sign_instruction(a.representative, data),
            yamada,
        ),
        422,
        "INSTRUCTION_MALFORMED",
    )
    assert mandate_count(app) == before


# -- once PRINCIPAL_MISMATCH, each condition now with its own code (issue 10.3) ----


def test_principal_name_not_the_registered_name(client, app, world):
    a, yamada = world["a"], world["yamada"]
    problem(
        try_root_grant(client, a, yamada, scope(), principal_name="株式会社大理建築"),
        403,
        "PRINCIPAL_NAME_MISMATCH",
    )
    assert ("mandate:grant:refused", "PRINCIPAL_NAME_MISMATCH") in refusals(app)


def test_a_root_grant_submitted_by_someone_not_its_representative(client, app, world):
    """The representative signed, but an employee of the principal submits it."""
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    data = instruction(a, yamada, scope())
    before = mandate_count(app)
    problem(
        post_grant(client, suzuki.token, data, sign_instruction(a.representative, data), yamada),
        403,
        "SUBMITTER_NOT_REPRESENTATIVE",
    )
    assert mandate_count(app) == before


def test_a_sub_delegation_under_another_corporations_mandate(client, app, hsm, world):
    """The instruction names A as principal, but its parent is B's mandate."""
    a, b, yamada, suzuki, tanaka = (world[k] for k in ("a", "b", "yamada", "suzuki", "tanaka"))
    theirs = root_grant(client, b, tanaka)
    data = instruction(
        a,
        suzuki,
        scope(max_depth=0),
        parent=theirs["id"],
        grantor_name=yamada.name,
        grantor_title=None,
    )
    before = mandate_count(app)
    problem(
        post_grant(client, yamada.token, data, sign_detached(hsm, yamada.credential, data), suzuki),
        403,
        "PRINCIPAL_MISMATCH",
    )
    assert mandate_count(app) == before


def test_a_signer_of_another_corporation(client, world):
    a, b, yamada = world["a"], world["b"], world["yamada"]
    problem(
        try_root_grant(client, a, yamada, scope(), signers=(b.representative,)),
        403,
        "REPRESENTATIVE_CORPORATION_MISMATCH",
    )


# -- revocation status unavailable on a grant -----------------------------------


def test_a_grant_whose_representative_status_cannot_be_checked_is_a_503(client, app, world):
    a, yamada = world["a"], world["yamada"]
    token = login(client, a.representative)
    data = instruction(a, yamada, scope())
    signatures = sign_instruction(a.representative, data)
    validator = app.extensions["dairi"].certificate_validator
    working = validator._backend
    pki = app.extensions["dairi"].dev_pki

    def registrar_down(method: str, url: str, body: bytes | None):
        # Only the registrar's OCSP responder and CRL are down: the grantee's JPKI
        # certificate, checked first, still validates, so the 503 is the grantor's.
        if "/pki/ocsp/registrar" in url or "/pki/crl/registrar" in url:
            return 503, "text/plain", b"down"
        return pki.serve_url(method, url, body)

    validator._backend = TransportFetcherBackend(registrar_down)
    before = mandate_count(app)
    try:
        response = post_grant(client, token, data, signatures, yamada)
    finally:
        validator._backend = working
    problem(response, 503, "REVOCATION_STATUS_UNAVAILABLE")
    assert response.headers["Retry-After"]
    assert mandate_count(app) == before
    # The instruction was not consumed: once the sources answer, the same grant goes through.
    again = post_grant(client, token, data, signatures, yamada)
    assert again.status_code == 201, again.get_json()
    assert base64.b64decode(again.get_json()["attribute_certificate"])
