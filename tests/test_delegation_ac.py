"""Mandate attribute certificates: structure, round trip, and validation by
pyhanko-certvalidator's ``async_validate_ac`` with the AA's OCSP and CRL answered in process."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from asn1crypto import cms, ocsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fixtures_pki import make_credential
from helpers_delegation_ac import (
    CRL_ONLY,
    DER,
    make_terms,
    now,
    sha256,
    validate,
)
from pyhanko_certvalidator.context import ACTargetDescription
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InvalidAttrCertificateError,
    RevokedError,
)

from delegation import asn1
from delegation.certificates import (
    AttributeAuthority,
    MandateCertificateError,
    MandateParty,
    MandateTerms,
    parse_mandate_certificate,
)
from delegation.scope import Purpose
from delegation.verify import MandateChainReader, mandate_id_of
from identity.corporate_number import corporate_number

# -- structure and round trip --------------------------------------------------


def test_an_issued_ac_round_trips(endpoints, employee, pki):
    terms = make_terms(employee.certificate_der)
    der = endpoints.issue(terms, employee.certificate_der)
    parsed = parse_mandate_certificate(der)
    assert parsed.terms == terms
    assert parsed.der == der and parsed.depth == 0 and parsed.ancestors == ()
    assert parsed.targets == ()
    assert parsed.serial_number in endpoints.issued
    assert parsed.is_held_by(employee.certificate_der)
    assert (
        parsed.issuer
        == asn1_x509.Certificate.load(pki.aa_certificate.public_bytes(DER)).subject.dump()
    )
    assert "Attribute Authority" in parsed.issuer_name
    assert MandateTerms.from_attribute_certificate(der) == terms


def test_the_ac_follows_rfc_5755_and_registers_the_dairi_types(endpoints, employee, pki, aa):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    ac = cms.AttributeCertificateV2.load(der)
    info = ac["ac_info"]
    holder = asn1_x509.Certificate.load(employee.certificate_der)
    aa_cert = asn1_x509.Certificate.load(aa.certificate_der)
    assert info["version"].native == "v2"
    assert info["holder"]["base_certificate_id"]["serial"].native == holder.serial_number
    assert info["holder"]["base_certificate_id"]["issuer"][0].chosen == holder.issuer
    assert info["issuer"].name == "v2_form"
    assert info["issuer"].chosen["issuer_name"][0].chosen == aa_cert.subject
    assert ac["signature_algorithm"]["algorithm"].native == "sha256_rsa"
    validity = info["att_cert_validity_period"]
    assert validity["not_before_time"].tag == 24  # GeneralizedTime
    attributes = {a["type"].native: a["values"] for a in info["attributes"]}
    assert [r["role_name"].chosen.dump() for r in attributes["role"]] == [
        asn1_x509.GeneralName(name="uniform_resource_identifier", value=v).chosen.dump()
        for v in (
            "urn:dairi:action:bid",
            "urn:dairi:action:quote",
            "urn:dairi:action:e-application:%E5%BB%BA%E8%A8%AD%E6%A5%AD%E8%A8%B1"
            "%E5%8F%AF%E7%94%B3%E8%AB%8B",
        )
    ]
    mandate = attributes[asn1.MANDATE_ATTRIBUTE][0].native
    assert mandate["principal"]["name"] == "株式会社大理建設"
    assert mandate["sub_delegation"] == {"max_depth": 1} and mandate["cases"] is None
    assert info["attributes"][1]["type"].dotted == asn1.MANDATE_ATTRIBUTE_OID
    extensions = {e["extn_id"].native: e for e in info["extensions"]}
    assert set(extensions) == {
        "authority_key_identifier",
        "authority_information_access",
        "crl_distribution_points",
        asn1.PROVENANCE_EXTENSION,
    }
    assert not any(e["critical"].native for e in extensions.values())
    aki = extensions["authority_key_identifier"]["extn_value"].parsed
    assert aki["key_identifier"].native == aa_cert.key_identifier
    aia = extensions["authority_information_access"]["extn_value"].native
    assert aia == [{"access_method": "ocsp", "access_location": aa.ocsp_url}]
    assert extensions["crl_distribution_points"]["extn_value"].native[0]["distribution_point"] == [
        aa.crl_url
    ]
    assert extensions[asn1.PROVENANCE_EXTENSION]["extn_id"].dotted == asn1.PROVENANCE_EXTENSION_OID
    assert extensions[asn1.PROVENANCE_EXTENSION]["extn_value"].native == {
        "depth": 0,
        "ancestors": [],
    }


def test_mandate_encoding_uses_implicit_tags():
    terms = make_terms(b"cert", max_depth=0, cases=("R7-001",), procuring_entities=None)
    der = terms.to_asn1().dump()
    value = asn1.Mandate.load(der)
    assert value["sub_delegation"].native is None  # max_depth 0: absent
    assert value["procuring_entities"].native is None
    assert b"\xa1\x08\x0c\x06R7-001" in der  # cases [1] IMPLICIT SEQUENCE OF
    assert b"\x82\x04\x05\xf5\xe1\x00" in der  # amountLimitJPY [2] IMPLICIT INTEGER
    assert b"\x84\x20" + sha256(b"instruction") in der  # instructionDigest [4] IMPLICIT
    assert (
        MandateTerms.from_asn1(value, not_before=terms.not_before, not_after=terms.not_after)
        == terms
    )


# -- validation by pyhanko-certvalidator --------------------------------------


def test_pyhanko_certvalidator_accepts_the_ac_checking_it_by_ocsp(endpoints, employee, pki):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    context = endpoints.context()
    result = validate(der, employee.certificate_der, context)
    assert result.aa_cert.dump() == pki.aa_certificate.public_bytes(DER)
    assert set(result.approved_attributes) == {"role", asn1.MANDATE_ATTRIBUTE}
    assert endpoints.hits["ocsp"] == 1 and endpoints.hits["crl"] == 0
    responses = [ocsp.OCSPResponse.load(o.dump()) for o in context.ocsps]
    serials = {
        r["response_bytes"]["response"]
        .parsed["tbs_response_data"]["responses"][0]["cert_id"]["serial_number"]
        .native
        for r in responses
    }
    assert parse_mandate_certificate(der).serial_number in serials


def test_an_ac_revoked_at_the_ocsp_responder_is_refused(endpoints, employee):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    endpoints.revoke(der, "privilege_withdrawn")
    with pytest.raises(RevokedError, match="privilege"):
        validate(der, employee.certificate_der, endpoints.context())


def test_an_ac_on_the_aa_crl_is_refused(pki, endpoints, employee):
    """The dev AA certificate carries cRLSign, so its AC CRL is accepted (pyhanko-
    certvalidator refuses a CRL whose issuer's keyUsage lacks it)."""
    good = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    revoked = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    endpoints.revoke(revoked, "affiliation_changed")
    validate(good, employee.certificate_der, endpoints.context(revinfo_policy=CRL_ONLY))
    assert endpoints.hits == {"ocsp": 0, "crl": 1}
    with pytest.raises(RevokedError, match="affiliation"):
        validate(revoked, employee.certificate_der, endpoints.context(revinfo_policy=CRL_ONLY))
    # Offline, with the AA's CRL and the service root's CRL handed over.
    offline = endpoints.context(
        allow_fetching=False,
        fetcher_backend=None,
        crls=[endpoints.crl(), pki.cas["service-root"].crl(now=now())],
    )
    with pytest.raises(RevokedError):
        validate(revoked, employee.certificate_der, offline)


def test_an_ac_held_by_another_certificate_is_refused(endpoints, employee, hsm, pki):
    other = make_credential(hsm, pki, "佐藤 花子")
    der = endpoints.issue(make_terms(other.certificate_der), other.certificate_der)
    validate(der, other.certificate_der, endpoints.context())
    assert not parse_mandate_certificate(der).is_held_by(employee.certificate_der)
    with pytest.raises(InvalidAttrCertificateError, match="base_certificate_id"):
        validate(der, employee.certificate_der, endpoints.context())


def test_an_ac_signed_by_another_key_under_the_aa_name_is_refused(endpoints, employee):
    der = endpoints.issue(make_terms(employee.certificate_der), employee.certificate_der)
    ac = cms.AttributeCertificateV2.load(der)
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = cms.AttributeCertificateV2(
        {
            "ac_info": ac["ac_info"],
            "signature_algorithm": ac["signature_algorithm"],
            "signature": impostor.sign(ac["ac_info"].dump(), padding.PKCS1v15(), hashes.SHA256()),
        }
    ).dump()
    with pytest.raises(InvalidAttrCertificateError, match="signature could not be verified"):
        validate(forged, employee.certificate_der, endpoints.context())


def test_the_aa_refuses_to_sign_with_a_key_other_than_its_certificates(pki, employee):
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = AttributeAuthority(
        pki.aa_certificate.public_bytes(DER),
        lambda data: impostor.sign(data, padding.PKCS1v15(), hashes.SHA256()),
        ocsp_url="http://x/ocsp",
        crl_url="http://x/crl",
    )
    with pytest.raises(MandateCertificateError) as refused:
        wrong.issue(make_terms(employee.certificate_der), employee.certificate_der, serial_number=1)
    assert refused.value.code == "AA_KEY_MISMATCH"


def test_an_expired_ac_is_refused(endpoints, employee):
    terms = make_terms(
        employee.certificate_der,
        not_before=now() - timedelta(days=10),
        not_after=now() - timedelta(days=1),
    )
    der = endpoints.issue(terms, employee.certificate_der)
    with pytest.raises(ExpiredError):
        validate(der, employee.certificate_der, endpoints.context())


def test_provenance_carries_the_ancestors_whole(endpoints, employee, hsm, pki):
    manager = make_credential(hsm, pki, "部長 次郎")
    root = endpoints.issue(
        make_terms(manager.certificate_der, max_depth=2), manager.certificate_der
    )
    child = endpoints.issue(
        make_terms(employee.certificate_der), employee.certificate_der, ancestors=[root], depth=1
    )
    leaf = endpoints.issue(
        make_terms(employee.certificate_der, max_depth=0),
        employee.certificate_der,
        ancestors=[root, child],
        depth=2,
    )
    parsed = parse_mandate_certificate(leaf)
    assert parsed.depth == 2 and len(parsed.ancestors) == 2
    # Each ancestor in embedded form: the same mandate, without provenance of its own.
    embedded = [
        parse_mandate_certificate(a, embedded_depth=i) for i, a in enumerate(parsed.ancestors)
    ]
    assert [e.serial_number for e in embedded] == [
        parse_mandate_certificate(a).serial_number for a in (root, child)
    ]
    assert [e.ancestors for e in embedded] == [(), ()]
    assert embedded[0].is_held_by(manager.certificate_der)
    assert parse_mandate_certificate(child).ancestors == parsed.ancestors[:1]
    provenance = {
        e["extn_id"].native: e
        for e in cms.AttributeCertificateV2.load(leaf)["ac_info"]["extensions"]
    }[asn1.PROVENANCE_EXTENSION]["extn_value"].parsed
    assert [a.dump() for a in provenance["ancestors"]] == list(parsed.ancestors)
    # A generic verifier sees one valid AC (the extension is not critical).
    validate(leaf, employee.certificate_der, endpoints.context())
    for ancestors, depth in (([root], 2), ([child], 1)):
        with pytest.raises(MandateCertificateError) as refused:
            endpoints.issue(
                make_terms(employee.certificate_der),
                employee.certificate_der,
                ancestors=ancestors,
                depth=depth,
            )
        assert refused.value.code == "PROVENANCE_INCONSISTENT"


def test_target_information_restricts_the_relying_parties(endpoints, employee):
    targets = ["https://www.e-bisc.go.jp/", "portal.example.go.jp"]
    der = endpoints.issue(
        make_terms(employee.certificate_der), employee.certificate_der, targets=targets
    )
    assert parse_mandate_certificate(der).targets == tuple(targets)
    ext = {
        e["extn_id"].native: e
        for e in cms.AttributeCertificateV2.load(der)["ac_info"]["extensions"]
    }["target_information"]
    assert ext["critical"].native
    names = [t.chosen for t in ext["extn_value"].parsed[0]]
    assert [n.name for n in names] == ["uniform_resource_identifier", "dns_name"]
    with pytest.raises(InvalidAttrCertificateError, match="targeting"):
        validate(der, employee.certificate_der, endpoints.context())
    elsewhere = ACTargetDescription(
        validator_names=[asn1_x509.GeneralName(name="dns_name", value="other.example.jp")]
    )
    with pytest.raises(InvalidAttrCertificateError, match="targeting"):
        validate(der, employee.certificate_der, endpoints.context(acceptable_ac_targets=elsewhere))
    here = ACTargetDescription(
        validator_names=[asn1_x509.GeneralName(name="dns_name", value="portal.example.go.jp")]
    )
    validate(der, employee.certificate_der, endpoints.context(acceptable_ac_targets=here))


# -- provenance: linear size, bare ancestors, 復代理 roles (issue 10 item 12) -----------


def _grant_chain(endpoints, holders, **changes):
    """ACs at depths 0..len(holders)-1, each granted by the previous grantee, one window."""
    window = {"not_before": now() - timedelta(minutes=5), "not_after": now() + timedelta(days=30)}
    acs: list[bytes] = []
    grantor = MandateParty("大理 一郎", "代表取締役", sha256(b"representative cert"))
    for depth, holder in enumerate(holders):
        terms = make_terms(
            holder.certificate_der,
            grantor=grantor,
            max_depth=len(holders) - 1 - depth,
            **window,
            **changes,
        )
        acs.append(endpoints.issue(terms, holder.certificate_der, ancestors=acs, depth=depth))
        grantor = MandateParty(terms.grantee.name, None, terms.grantee.certificate_sha256)
    return acs


@pytest.fixture(scope="module")
def holders(hsm, pki):
    return [make_credential(hsm, pki, name) for name in ("部長 次郎", "課長 三郎", "係長 四郎")]


def _roles(der: bytes) -> list[str]:
    info = cms.AttributeCertificateV2.load(der)["ac_info"]
    [role] = [a for a in info["attributes"] if a["type"].native == "role"]
    return [r["role_name"].native for r in role["values"]]


def test_ac_size_grows_linearly_with_depth(endpoints, employee, holders):
    """Each level embeds one bare ancestor (no provenance of its own), so each adds about
    one depth-0 AC. Hand-computed bound: a bare ancestor is the depth-0 AC minus its
    provenance extension (OID of 44 octets + depth + empty SEQUENCE, about 55 octets) plus
    an 18-octet longer serial plus, from depth 1, 3 longer role URIs (+13 octets each):
    within 80 octets of the depth-0 size either way; a nested design adds ~2x per level."""
    acs = _grant_chain(endpoints, [*holders, employee])
    sizes = [len(a) for a in acs]
    steps = [b - a for a, b in itertools.pairwise(sizes)]
    assert all(abs(step - sizes[0]) <= 80 for step in steps), (sizes, steps)
    assert max(steps) - min(steps) <= 48, (sizes, steps)
    assert sizes[3] < 4 * sizes[0] + 240, sizes


def test_ancestors_are_embedded_bare_and_signed_by_the_aa(endpoints, employee, holders, aa):
    acs = _grant_chain(endpoints, [*holders, employee])
    leaf = parse_mandate_certificate(acs[3])
    reader = MandateChainReader(aa.certificate_der)
    for depth, (embedded, full) in enumerate(zip(leaf.ancestors, acs, strict=False)):
        bare = parse_mandate_certificate(embedded, embedded_depth=depth)
        original = parse_mandate_certificate(full)
        assert bare.ancestors == () and bare.depth == depth
        assert bare.serial_number == original.serial_number and bare.terms == original.terms
        extensions = {
            e["extn_id"].native
            for e in cms.AttributeCertificateV2.load(embedded)["ac_info"]["extensions"]
        }
        assert asn1.PROVENANCE_EXTENSION not in extensions
        # Its own serial (RFC 5755 §4.2.5: issuer+serial unique), from the mandate's.
        raw = cms.AttributeCertificateV2.load(embedded)["ac_info"]["serial_number"].native
        assert raw == original.serial_number + 2**158
        assert reader.issued_by_aa(embedded)
        # The same bytes in every descendant: the AA's signature is deterministic.
        assert all(
            parse_mandate_certificate(a).ancestors[depth] == embedded for a in acs[depth + 1 :]
        )
    # A full AC is not an embedded one, nor a bare one a leaf.
    with pytest.raises(MandateCertificateError):
        parse_mandate_certificate(acs[0], embedded_depth=0)
    with pytest.raises(MandateCertificateError):
        parse_mandate_certificate(leaf.ancestors[0])


def test_a_sub_delegation_has_roles_of_its_own(endpoints, employee, holders):
    """A generic verifier that reads only the role attribute (pyhanko-certvalidator's
    approved attributes) tells a 復代理 from a direct grant: no role in common."""
    root, child = _grant_chain(endpoints, [holders[0], employee])
    # (asn1crypto's .native decodes the percent-encoded IRI)
    assert _roles(root) == [
        "urn:dairi:action:bid",
        "urn:dairi:action:quote",
        "urn:dairi:action:e-application:建設業許可申請",
    ]
    assert _roles(child) == [
        "urn:dairi:subdelegated-action:bid",
        "urn:dairi:subdelegated-action:quote",
        "urn:dairi:subdelegated-action:e-application:建設業許可申請",
    ]
    seen = {}
    for der, holder in ((root, holders[0]), (child, employee)):
        result = validate(der, holder.certificate_der, endpoints.context())
        seen[der] = {r["role_name"].native for r in result.approved_attributes["role"]["values"]}
    assert seen[root] and seen[child] and not seen[root] & seen[child]


def test_the_offline_reader_judges_a_depth_3_chain(endpoints, employee, holders, aa):
    acs = _grant_chain(endpoints, [*holders, employee])
    reader = MandateChainReader(aa.certificate_der)
    purpose = Purpose("bid", "国土交通省関東地方整備局", None, 1_000_000, now())
    principal = corporate_number("010401012345")
    verdict = reader.evaluate(
        acs[3],
        purpose,
        principal=principal,
        signer_certificate_der=employee.certificate_der,
        status_of=lambda serial: None,
    )
    assert verdict.holds, verdict
    serials = [parse_mandate_certificate(a).serial_number for a in acs]
    assert [h.mandate_id for h in verdict.hops] == [mandate_id_of(s) for s in serials]
    # The status of an ancestor is asked by its mandate's serial, not the bare form's.
    asked: list[int] = []
    revoked = reader.evaluate(
        acs[3],
        purpose,
        principal=principal,
        signer_certificate_der=employee.certificate_der,
        status_of=lambda serial: (
            asked.append(serial) or (purpose.at if serial == serials[1] else None)
        ),
    )
    assert sorted(asked) == sorted(serials)
    assert [h.reasons for h in revoked.hops] == [
        (),
        ("MANDATE_REVOKED",),
        ("PARENT_INVALID",),
        ("PARENT_INVALID",),
    ]


def test_tampering_with_an_embedded_ancestor_is_detected(endpoints, employee, holders, aa):
    acs = _grant_chain(endpoints, [*holders, employee])
    leaf = cms.AttributeCertificateV2.load(acs[3])
    info = leaf["ac_info"]
    [provenance] = [
        e for e in info["extensions"] if e["extn_id"].native == asn1.PROVENANCE_EXTENSION
    ]
    value = provenance["extn_value"].parsed
    ancestor = value["ancestors"][1]
    widened = ancestor["ac_info"]["attributes"][1]["values"][0]
    widened["amount_limit_jpy"] = 10**12
    ancestor["ac_info"]["attributes"][1]["values"][0] = widened
    value["ancestors"][1] = ancestor
    provenance["extn_value"] = value
    tampered = leaf.dump(force=True)
    assert tampered != acs[3]
    assert (
        parse_mandate_certificate(
            parse_mandate_certificate(tampered).ancestors[1], embedded_depth=1
        ).terms.amount_limit_jpy
        == 10**12
    )
    reader = MandateChainReader(aa.certificate_der)
    verdict = reader.evaluate(
        tampered,
        Purpose("bid", None, None, None, now()),
        principal=corporate_number("010401012345"),
        signer_certificate_der=employee.certificate_der,
        status_of=lambda serial: None,
    )
    assert not verdict.holds
    assert "AC_NOT_ISSUED_BY_AA" in verdict.hops[1].reasons
    assert "AC_NOT_ISSUED_BY_AA" in verdict.hops[3].reasons  # the leaf signed the original
    # And the AA will not embed a full AC it did not sign.
    forged_parent = cms.AttributeCertificateV2.load(acs[2])
    forged_parent["ac_info"]["serial_number"] = 77
    with pytest.raises(MandateCertificateError) as refused:
        endpoints.issue(
            make_terms(employee.certificate_der, max_depth=0),
            employee.certificate_der,
            ancestors=[
                *parse_mandate_certificate(acs[2]).ancestors,
                forged_parent.dump(force=True),
            ],
            depth=3,
        )
    assert refused.value.code == "PROVENANCE_INCONSISTENT"


def test_an_embedded_ancestor_has_its_mandates_status_at_the_aa(endpoints, employee, holders):
    """The AA's OCSP responder answers an embedded form's serial with its mandate's status,
    so a verifier that checks an ancestor on its own gets the same answer."""
    root, child = _grant_chain(endpoints, [holders[0], employee])
    [embedded] = parse_mandate_certificate(child).ancestors
    validate(embedded, holders[0].certificate_der, endpoints.context())
    endpoints.revoke(root, "privilege_withdrawn")
    with pytest.raises(RevokedError, match="privilege"):
        validate(embedded, holders[0].certificate_der, endpoints.context())
