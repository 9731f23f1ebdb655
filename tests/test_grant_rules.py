"""The grant rules in one place (issue 10.3), through HTTP: each refusal code the
service gives on a grant for a condition that had none of its own, the grants the old
copies of the rules let through although chain evaluation refused their chain, and a
bad instruction refused before any certificate is validated (no revocation fetch).

Expected codes are written by hand from the rules in DESIGN §5 and the catalogue's
descriptions, not read from the code.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import rfc8785
from asn1crypto import cms
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
    try_sub_grant,
)

from app.mandates.models import Mandate
from devpki import TransportFetcherBackend
from signing import sign_detached


def mandate_count(app) -> int:
    with app.extensions["dairi"].session_factory() as session:
        return session.query(Mandate).count()


class CountedFetches:
    """Every OCSP, CRL and certificate request the service's validator sends, counted
    (answered by the development PKI as usual)."""

    def __init__(self, app) -> None:
        self.validator = app.extensions["dairi"].certificate_validator
        self.pki = app.extensions["dairi"].dev_pki
        self.urls: list[str] = []

    def __enter__(self) -> CountedFetches:
        self.working = self.validator._backend

        def transport(method: str, url: str, body: bytes | None):
            self.urls.append(url)
            return self.pki.serve_url(method, url, body)

        self.validator._backend = TransportFetcherBackend(transport)
        return self

    def __exit__(self, *exc: object) -> None:
        self.validator._backend = self.working


def chain_reasons(client, mandate_id: str, token: str) -> list[list[str]]:
    response = client.get(
        f"/api/v1/mandates/{mandate_id}/chain",
        query_string={"action": "bid", "procuring_entity": ENTITY},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.get_json()
    return [h["reasons"] for h in response.get_json()["hops"]]


def merged(*signed: bytes) -> bytes:
    """One CMS SignedData carrying the SignerInfos (and certificates) of each given one."""
    parts = [cms.ContentInfo.load(der)["content"] for der in signed]
    first = parts[0]
    for other in parts[1:]:
        first["certificates"] = [*first["certificates"], *other["certificates"]]
        first["signer_infos"] = [*first["signer_infos"], *other["signer_infos"]]
    return cms.ContentInfo({"content_type": "signed_data", "content": first}).dump()


# -- a bad instruction is refused before any certificate is validated -------------------


def _edited(a, yamada, edit) -> bytes:
    doc = json.loads(instruction(a, yamada, scope()))
    edit(doc)
    return rfc8785.dumps(doc)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda d: d["scope"].update(amount_limit_jpy=0), id="amount-limit-0"),
        pytest.param(
            lambda d: d["scope"].update(procuring_entities=["国土交通省\u0000"]),
            id="control-character-in-entity",
        ),
        pytest.param(
            lambda d: d["principal"].update(name="株式会社大理建設\u200b"),
            id="format-character-in-principal",
        ),
        pytest.param(lambda d: d["grantor"].update(name="佐藤" * 101), id="grantor-too-long"),
        pytest.param(lambda d: d["scope"].update(cases=["R8-" + "1" * 300]), id="case-too-long"),
    ],
)
def test_what_the_aa_cannot_certify_is_refused_before_any_revocation_fetch(
    client, app, world, edit
):
    """Before issue 10.3 these passed the instruction's checks, had every certificate
    validated (OCSP and CRL fetched fresh) and failed only at AC issuance."""
    a, yamada = world["a"], world["yamada"]
    token = login(client, a.representative)
    data = _edited(a, yamada, edit)
    before = mandate_count(app)
    with CountedFetches(app) as fetches:
        response = post_grant(client, token, data, sign_instruction(a.representative, data), yamada)
    problem(response, 422, "INSTRUCTION_MALFORMED")
    assert fetches.urls == []
    assert mandate_count(app) == before


def test_a_grant_whose_validity_has_ended_is_refused_before_any_revocation_fetch(
    client, app, world
):
    a, yamada = world["a"], world["yamada"]
    token = login(client, a.representative)
    ended = scope(not_before=now() - timedelta(days=2), not_after=now() - timedelta(days=1))
    with CountedFetches(app) as fetches:
        problem(try_root_grant(client, a, yamada, ended, token=token), 422, "MANDATE_EXPIRED")
    assert fetches.urls == []


def test_an_escalating_sub_delegation_is_refused_before_any_revocation_fetch(
    client, app, hsm, world
):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    with CountedFetches(app) as fetches:
        problem(
            try_sub_grant(
                client,
                hsm,
                a,
                root,
                yamada,
                suzuki,
                scope(max_depth=0, amount_limit_jpy=100_000_001),
            ),
            403,
            "SCOPE_AMOUNT_EXCEEDED",
        )
    assert fetches.urls == []
    # The same grant within its parent fetches as a grant must (fresh status).
    with CountedFetches(app) as fetches:
        response = try_sub_grant(client, hsm, a, root, yamada, suzuki, scope(max_depth=0))
    assert response.status_code == 201, response.get_json()
    assert fetches.urls


# -- each condition its own code --------------------------------------------------------


def test_a_root_grant_naming_a_grantor_who_did_not_sign(client, app, world):
    """The representative signed, but the instruction names someone else as grantor."""
    a, yamada = world["a"], world["yamada"]
    before = mandate_count(app)
    problem(
        try_root_grant(client, a, yamada, scope(), grantor_name="高橋\u3000二郎"),
        403,
        "GRANTOR_NOT_SIGNER",
    )
    assert mandate_count(app) == before


def test_a_sub_delegation_naming_a_grantor_other_than_its_signer(client, app, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    data = instruction(
        a,
        suzuki,
        scope(max_depth=0),
        parent=root["id"],
        grantor_name="高橋\u3000二郎",
        grantor_title=None,
    )
    before = mandate_count(app)
    problem(
        post_grant(client, yamada.token, data, sign_detached(hsm, yamada.credential, data), suzuki),
        403,
        "GRANTOR_NOT_SIGNER",
    )
    assert mandate_count(app) == before


def test_a_sub_delegation_signed_by_more_than_its_grantor(client, app, hsm, world):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    data = instruction(
        a,
        suzuki,
        scope(max_depth=0),
        parent=root["id"],
        grantor_name=yamada.name,
        grantor_title=None,
    )
    both = merged(
        sign_detached(hsm, yamada.credential, data), sign_instruction(a.representative, data)
    )
    before = mandate_count(app)
    problem(
        post_grant(client, yamada.token, data, both, suzuki), 403, "SUBDELEGATION_MULTIPLE_SIGNERS"
    )
    assert mandate_count(app) == before


# -- granting and chain evaluation agree -----------------------------------------------


def test_a_sub_delegation_back_to_its_own_grantor_is_refused(client, app, hsm, world):
    """Granting it (as the service did before issue 10.3) made a mandate whose chain
    never held: chain evaluation answers CHAIN_LOOP for such a hop."""
    a, yamada = world["a"], world["yamada"]
    root = root_grant(client, a, yamada)
    before = mandate_count(app)
    problem(
        try_sub_grant(client, hsm, a, root, yamada, yamada, scope(max_depth=0)), 403, "CHAIN_LOOP"
    )
    assert mandate_count(app) == before


def test_a_sub_delegation_under_a_revoked_representatives_grant_is_refused(
    client, app, hsm, pki, world
):
    """The root's representative lost the registration certificate (not for renewal)
    after the grant: the chain no longer holds (REPRESENTATIVE_CERT_REVOKED on the root),
    so no sub-delegation is granted under it (PARENT_INVALID), as the chain would say."""
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    root = root_grant(client, a, yamada)
    pki.ca_for_slug("registrar").revoke(
        a.representative.certificate.serial_number, x509.ReasonFlags.key_compromise, now=now()
    )
    window = app.extensions["dairi"].settings.revocation_cache_seconds
    move_clock(app, timedelta(seconds=window + 1))  # past any cached status
    assert chain_reasons(client, root["id"], yamada.token) == [["REPRESENTATIVE_CERT_REVOKED"]]
    before = mandate_count(app)
    problem(
        try_sub_grant(client, hsm, a, root, yamada, suzuki, scope(max_depth=0)),
        403,
        "PARENT_INVALID",
    )
    assert mandate_count(app) == before
