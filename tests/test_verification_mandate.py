"""signing.verification on signatures made under a real mandate (issue 13): the chain
judged at the signing time from the document's AC and the AA's revocation data, the
purpose in each dimension, and the root grant checked from the embedded evidence."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from helpers_app import own_service
from helpers_auth import bearer, login, new_corporation
from helpers_mandates import ENTITY, OTHER_ENTITY, new_employee, root_grant, scope, sub_grant

from app.mandates.evidence import mandate_evidence
from app.mandates.models import Mandate
from app.settings import Settings
from delegation.scope import Purpose
from hsm import Hsm
from signing import MandateEvidence, PadesLevel, PadesSpec, sign_detached
from signing.mandate_evidence import evidence_file_names
from signing.verification import Indication, VerificationTrust, verify_pdf


@pytest.fixture(scope="module")
def served(base_settings: Settings, hsm: Hsm, pki, tmp_path_factory) -> Iterator[Flask]:
    yield from own_service(base_settings, hsm, tmp_path_factory.mktemp("verify-mandate"))


@pytest.fixture(scope="module")
def chain(served: Flask, hsm: Hsm, pki) -> dict:
    client = served.test_client()
    corp = new_corporation(pki, name="株式会社大理建設")
    yamada = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    suzuki = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    root = root_grant(client, corp, yamada)
    sub = sub_grant(client, hsm, corp, root, yamada, suzuki)
    return {"corp": corp, "yamada": yamada, "suzuki": suzuki, "root": root, "sub": sub}


def _evidence(served: Flask, ids: list[str], *, long_term: bool) -> MandateEvidence:
    context = served.extensions["dairi"]
    with context.session_factory() as session:
        rows = [session.get(Mandate, i) for i in ids]
        evidence = mandate_evidence(context, session, rows, long_term=long_term)
        session.commit()
    return evidence


def _sign(served, who, evidence, level, bid) -> bytes:
    signer = served.extensions["dairi"].pades_signer
    return signer.sign(bid, who.credential, PadesSpec(level=level, mandate=evidence)).pdf


@pytest.fixture(scope="module")
def trust(served, pki) -> VerificationTrust:
    context = served.extensions["dairi"]
    roots = tuple(c.public_bytes(Encoding.DER) for c in pki.roots().values())
    registrar = (pki.roots()["registrar"].public_bytes(Encoding.DER),)
    return VerificationTrust(
        roots=roots,
        aa_certificates=(context.attribute_authority.certificate_der,),
        registration_roots=registrar,
    )


@pytest.fixture(scope="module")
def signed(served, chain, bid) -> dict:
    root_only = [chain["root"]["id"]]
    both = [chain["root"]["id"], chain["sub"]["id"]]
    return {
        "root-LTA": _sign(
            served,
            chain["yamada"],
            _evidence(served, root_only, long_term=True),
            PadesLevel.B_LTA,
            bid,
        ),
        "sub-LT": _sign(
            served, chain["suzuki"], _evidence(served, both, long_term=True), PadesLevel.B_LT, bid
        ),
    }


def _bid_purpose(corp, **changes) -> tuple[Purpose, str]:
    fields = {"action": "bid", "procuring_entity": ENTITY, "case": None, "amount_jpy": 10_000_000}
    fields.update(changes)
    return Purpose(at=datetime.now(UTC), **fields), corp.corporate_number  # type: ignore[arg-type]


def test_a_bid_signed_under_the_representatives_grant_passes_for_its_purpose(signed, trust, chain):
    purpose, principal = _bid_purpose(chain["corp"])
    report = verify_pdf(signed["root-LTA"], trust, purpose, principal=principal)
    (sig,) = report.signatures
    assert (sig.indication, sig.reasons) == (Indication.TOTAL_PASSED, ()), sig
    assert sig.level is PadesLevel.B_LTA
    mandate = sig.mandate
    assert mandate is not None and mandate.holds and mandate.covers_purpose is True
    (hop,) = mandate.hops
    assert hop.depth == 0 and hop.mandate_id == chain["root"]["id"]
    assert hop.principal_corporate_number == chain["corp"].corporate_number
    assert hop.revoked_at is None and hop.reasons == ()
    root = mandate.root_grant
    assert root is not None and root.checked and root.reasons == ()
    assert root.corporate_number == chain["corp"].corporate_number
    assert root.corporation == "株式会社大理建設"


def test_a_sub_delegation_shows_both_hops(signed, trust, chain):
    purpose, principal = _bid_purpose(chain["corp"])
    (sig,) = verify_pdf(signed["sub-LT"], trust, purpose, principal=principal).signatures
    assert sig.indication is Indication.TOTAL_PASSED, sig
    assert [h.depth for h in sig.mandate.hops] == [0, 1]
    assert [h.mandate_id for h in sig.mandate.hops] == [chain["root"]["id"], chain["sub"]["id"]]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"action": "contract"}, "SCOPE_ACTION_NOT_GRANTED"),
        ({"procuring_entity": OTHER_ENTITY}, "SCOPE_ENTITY_NOT_GRANTED"),
        ({"amount_jpy": 100_000_001}, "SCOPE_AMOUNT_EXCEEDED"),
    ],
)
def test_a_purpose_outside_the_mandate_fails_with_its_code(signed, trust, chain, changes, code):
    purpose, principal = _bid_purpose(chain["corp"], **changes)
    (sig,) = verify_pdf(signed["root-LTA"], trust, purpose, principal=principal).signatures
    assert sig.indication is Indication.TOTAL_FAILED
    assert sig.sub_indication == "SIG_CONSTRAINTS_FAILURE"
    assert sig.mandate.covers_purpose is False
    assert code in sig.reasons


def test_another_principal_is_not_covered(signed, trust, chain):
    purpose, _ = _bid_purpose(chain["corp"])
    (sig,) = verify_pdf(signed["root-LTA"], trust, purpose, principal="1234567890123").signatures
    assert sig.indication is Indication.TOTAL_FAILED
    assert "PRINCIPAL_MISMATCH" in sig.reasons


def test_an_ac_from_an_unknown_authority_does_not_count(signed, trust, chain):
    unknown = replace(trust, aa_certificates=trust.roots[:1])
    (sig,) = verify_pdf(signed["root-LTA"], unknown).signatures
    assert sig.indication is Indication.TOTAL_FAILED
    assert sig.reasons == ("AC_NOT_ISSUED_BY_AA",)


def _fresh_ac_crl(served) -> bytes:
    response = served.test_client().get("/ac/crl")
    assert response.status_code == 200
    return response.data


def test_revoked_before_signing_fails_and_revoked_after_passes(served, chain, trust, hsm, pki, bid):
    client = served.test_client()
    corp = chain["corp"]
    tanaka = new_employee(client, hsm, pki, corp, "田中\u3000一郎")
    mandate = root_grant(client, corp, tanaka)
    evidence = _evidence(served, [mandate["id"]], long_term=False)
    before = _sign(served, tanaka, evidence, PadesLevel.B_T, bid)
    time.sleep(1.1)  # a CRL states whole seconds: revoke in a later second than the signing
    revoked = client.post(
        f"/api/v1/mandates/{mandate['id']}/revocation",
        json={},
        headers=bearer(login(client, corp.representative)),
    )
    assert revoked.status_code == 200, revoked.get_json()
    # Signed after the revocation with evidence gathered before it: the service would
    # refuse; the document is built to see that the verifier does too.
    after = _sign(served, tanaka, evidence, PadesLevel.B_T, bid)
    now = datetime.now(UTC)
    with_crl = replace(
        trust,
        crls=(
            _fresh_ac_crl(served),
            pki.cas["service-root"].crl(now=now),
            pki.cas["employee-signing"].crl(now=now),
        ),
    )
    purpose, principal = _bid_purpose(corp)
    (ok,) = verify_pdf(before, with_crl, purpose, principal=principal).signatures
    assert ok.indication is Indication.TOTAL_PASSED, ok
    assert ok.mandate.hops[0].revoked_at is not None  # revoked, but after signing
    (bad,) = verify_pdf(after, with_crl, purpose, principal=principal).signatures
    assert bad.indication is Indication.TOTAL_FAILED
    assert "MANDATE_REVOKED" in bad.reasons
    # Without any word from the AA the mandate's status is not proven either way.
    (unknown,) = verify_pdf(before, replace(with_crl, crls=with_crl.crls[1:])).signatures
    assert unknown.indication is Indication.INDETERMINATE
    assert unknown.reasons == ("MANDATE_STATUS_UNKNOWN",)


def _with_file(evidence: MandateEvidence, name: str, data: bytes) -> MandateEvidence:
    files = tuple(replace(f, data=data) if f.name == name else f for f in evidence.files)
    assert files != evidence.files
    return replace(evidence, files=files)


def test_altered_or_foreign_evidence_is_caught(served, chain, trust, hsm, bid):
    yamada = chain["yamada"]
    evidence = _evidence(served, [chain["root"]["id"]], long_term=True)
    instruction_name, cms_name, _ = evidence_file_names(0)
    instruction = next(f.data for f in evidence.files if f.name == instruction_name)
    purpose, principal = _bid_purpose(chain["corp"])

    def judged(changed: MandateEvidence):
        pdf = _sign(served, yamada, changed, PadesLevel.B_LT, bid)
        (sig,) = verify_pdf(pdf, trust, purpose, principal=principal).signatures
        assert sig.indication is Indication.TOTAL_FAILED
        return sig

    # The instruction edited (one more space): not what the AC certifies.
    edited = judged(_with_file(evidence, instruction_name, instruction + b" "))
    assert "EVIDENCE_MISMATCH" in edited.reasons
    # The instruction signed by the employee, not by a representative.
    by_employee = sign_detached(hsm, yamada.credential, instruction)
    forged = judged(_with_file(evidence, cms_name, by_employee))
    assert {"REPRESENTATIVE_CERT_UNTRUSTED", "GRANTOR_NOT_REPRESENTATIVE"} <= set(forged.reasons)
    # Another person's mandate AC in the signature: its holder is not the signer.
    other = _evidence(served, [chain["sub"]["id"]], long_term=True)
    swapped = judged(replace(evidence, leaf_ac_der=other.leaf_ac_der))
    assert "HOLDER_MISMATCH" in swapped.reasons


def test_a_mandate_expired_before_signing_fails(served, chain, trust, hsm, pki, bid):
    client = served.test_client()
    corp = chain["corp"]
    kato = new_employee(client, hsm, pki, corp, "加藤\u3000三郎")
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    mandate = root_grant(client, corp, kato, scope(not_after=ends))
    evidence = _evidence(served, [mandate["id"]], long_term=True)
    time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.2)
    late = _sign(served, kato, evidence, PadesLevel.B_LT, bid)
    purpose, principal = _bid_purpose(corp)
    (sig,) = verify_pdf(late, trust, purpose, principal=principal).signatures
    assert sig.indication is Indication.TOTAL_FAILED
    assert "MANDATE_EXPIRED" in sig.reasons
    # Asked no purpose, the expiry still counts.
    (bare,) = verify_pdf(late, trust).signatures
    assert bare.reasons == ("MANDATE_EXPIRED",)


def test_a_sub_delegations_altered_instruction_is_caught(served, chain, trust, bid):
    evidence = _evidence(served, [chain["root"]["id"], chain["sub"]["id"]], long_term=True)
    name, _, _ = evidence_file_names(1)
    instruction = next(f.data for f in evidence.files if f.name == name)
    pdf = _sign(
        served,
        chain["suzuki"],
        _with_file(evidence, name, instruction + b" "),
        PadesLevel.B_LT,
        bid,
    )
    (sig,) = verify_pdf(pdf, trust).signatures
    assert sig.indication is Indication.TOTAL_FAILED
    assert sig.reasons == ("EVIDENCE_MISMATCH",)


def test_a_bid_signed_with_the_evidence_but_without_the_ac_fails(
    served, chain, trust, bid, monkeypatch
):
    import signing.pades

    # A forger's tool: the grant evidence embedded, no certified attribute in the CMS.
    monkeypatch.setattr(signing.pades, "_mandate_attributes", lambda mandate: ())
    evidence = _evidence(served, [chain["root"]["id"]], long_term=True)
    pdf = _sign(served, chain["yamada"], evidence, PadesLevel.B_LT, bid)
    purpose, principal = _bid_purpose(chain["corp"])
    for asked in ({}, {"purpose": purpose, "principal": principal}):
        (sig,) = verify_pdf(pdf, trust, **asked).signatures
        assert sig.mandate is None
        assert sig.indication is Indication.TOTAL_FAILED
        assert sig.sub_indication == "SIG_CONSTRAINTS_FAILURE"
        assert sig.reasons == ("MANDATE_MISSING",)


def _without_certified_attributes(pdf: bytes) -> bytes:
    """The signature's signer-attributes-v2 (the mandate AC) cut out of its CMS, the
    rest of the file untouched."""
    from asn1crypto import cms

    start, end = _contents_gap(pdf)
    signed = cms.ContentInfo.load(bytes.fromhex(pdf[start + 1 : end - 1].decode()))
    info = signed["content"]["signer_infos"][0]
    kept = [a for a in info["signed_attrs"] if a["type"].native != "signer_attributes_v2"]
    assert len(kept) == len(info["signed_attrs"]) - 1
    info["signed_attrs"] = cms.CMSAttributes(kept)
    stripped = signed.dump(force=True).hex().encode()
    return pdf[: start + 1] + stripped.ljust(end - start - 2, b"0") + pdf[end - 1 :]


def _contents_gap(pdf: bytes) -> tuple[int, int]:
    import re

    match = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]", pdf)
    assert match is not None
    return int(match[1]) + int(match[2]), int(match[3])


def test_the_ac_stripped_from_a_signed_bid_breaks_its_signature(signed, trust, chain):
    stripped = _without_certified_attributes(signed["root-LTA"])
    purpose, principal = _bid_purpose(chain["corp"])
    (sig,) = verify_pdf(stripped, trust, purpose, principal=principal).signatures
    assert sig.mandate is None
    assert sig.indication is Indication.TOTAL_FAILED
    assert sig.sub_indication == "SIG_CRYPTO_FAILURE"
    assert "MANDATE_MISSING" in sig.reasons
