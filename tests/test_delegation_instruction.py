"""Grant instructions: canonical bytes, CMS signatures, representative rules."""

from __future__ import annotations

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from helpers_auth import new_corporation
from helpers_delegation import bid_scope, sign_instruction

from delegation.instruction import (
    DelegationRefused,
    GrantInstruction,
    check_representative_grant,
    instruction_signers,
)
from identity.profiles import registered_corporation

TITLES = ("代表取締役", "代表執行役", "支配人")


def instruction_for(corp, grantee_sha256: str = "ab" * 32, **changes) -> GrantInstruction:
    fields = dict(
        principal_corporate_number=corp.corporate_number,
        principal_name="株式会社テスト商事",
        grantor_name="佐藤\u3000一郎",
        grantor_title="代表取締役",
        grantee_name="山田\u3000太郎",
        grantee_certificate_sha256=grantee_sha256,
        scope=bid_scope(),
    )
    fields.update(changes)
    return GrantInstruction(**fields)


def corporation_of(card):
    return registered_corporation(
        asn1_x509.Certificate.load(card.certificate.public_bytes(serialization.Encoding.DER))
    )


def test_an_instruction_round_trips_through_its_canonical_bytes(pki):
    corp = new_corporation(pki)
    instruction = instruction_for(corp)
    data = instruction.canonical()
    assert GrantInstruction.parse(data) == instruction
    assert data == GrantInstruction.parse(data).canonical()
    assert b" " not in data.replace("\u3000".encode(), b"")  # RFC 8785: no whitespace


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"type": "dairi-grant-instruction/1"}',
        "\ud800".encode("utf-8", "surrogatepass"),
    ],
)
def test_malformed_instructions_are_refused(data):
    with pytest.raises(DelegationRefused) as caught:
        GrantInstruction.parse(data)
    assert caught.value.code == "INSTRUCTION_MALFORMED"


def test_an_instruction_with_a_bad_corporate_number_or_scope_is_malformed(pki):
    corp = new_corporation(pki)
    doc = instruction_for(corp).to_json()
    doc["principal"]["corporate_number"] = "4011001098994"  # wrong check digit
    import rfc8785

    with pytest.raises(DelegationRefused) as caught:
        GrantInstruction.parse(rfc8785.dumps(doc))
    assert caught.value.code == "INSTRUCTION_MALFORMED"
    doc = instruction_for(corp).to_json()
    doc["scope"]["actions"] = ["賄賂"]
    with pytest.raises(DelegationRefused) as caught:
        GrantInstruction.parse(rfc8785.dumps(doc))
    assert caught.value.code == "INSTRUCTION_MALFORMED"
    assert "賄賂" in caught.value.message  # says which action is unknown
    # The untouched document parses: the refusals above are the changes' doing.
    assert GrantInstruction.parse(rfc8785.dumps(instruction_for(corp).to_json()))


def test_the_grantors_cms_signature_names_the_signer(pki):
    corp = new_corporation(pki)
    data = instruction_for(corp).canonical()
    signers = instruction_signers(data, sign_instruction(corp.representative, data))
    assert len(signers) == 1
    assert signers[0].certificate_der == corp.representative.certificate.public_bytes(
        serialization.Encoding.DER
    )


def test_a_signature_over_other_bytes_or_garbage_is_refused(pki):
    corp = new_corporation(pki)
    data = instruction_for(corp).canonical()
    other = instruction_for(corp, scope=bid_scope(days=3650)).canonical()
    for cms_der in (sign_instruction(corp.representative, other), b"\x30\x00", b"garbage"):
        with pytest.raises(DelegationRefused) as caught:
            instruction_signers(data, cms_der)
        assert caught.value.code == "INSTRUCTION_SIGNATURE_INVALID"


def test_representative_rules(pki):
    corp, other = new_corporation(pki), new_corporation(pki)
    instruction = instruction_for(corp)
    rep = corporation_of(corp.representative)
    assert check_representative_grant(instruction, [rep], representative_titles=TITLES) == 0

    def refused(corporations, required=1):
        with pytest.raises(DelegationRefused) as caught:
            check_representative_grant(
                instruction,
                corporations,
                representative_titles=TITLES,
                required_signatures=required,
            )
        return caught.value.code

    assert refused([corporation_of(other.representative)]) == "REPRESENTATIVE_CORPORATION_MISMATCH"
    from devpki.cards import issue_representative_card

    same_corp_director = issue_representative_card(
        pki,
        corporate_name="株式会社テスト商事",
        registered_number=corp.registered_number,
        head_office_address="東京都",
        representative_name="高橋\u3000二郎",
        representative_title="取締役",
    )
    assert refused([corporation_of(same_corp_director)]) == "GRANTOR_NOT_REPRESENTATIVE"
    assert refused([rep], required=2) == "JOINT_REPRESENTATION_INCOMPLETE"
    assert refused([rep, rep], required=2) == "JOINT_REPRESENTATION_INCOMPLETE"
    second = issue_representative_card(
        pki,
        corporate_name="株式会社テスト商事",
        registered_number=corp.registered_number,
        head_office_address="東京都",
        representative_name="鈴木\u3000花子",
        representative_title="代表取締役",
    )
    assert (
        check_representative_grant(
            instruction,
            [corporation_of(second), rep],
            representative_titles=TITLES,
            required_signatures=2,
        )
        == 1
    )
    # The instruction's names must be the registration's (spaces aside).
    for changes, code in (
        (dict(principal_name="株式会社テスト商店"), "PRINCIPAL_NAME_MISMATCH"),
        (dict(grantor_name="鈴木\u3000花子"), "GRANTOR_NOT_SIGNER"),
    ):
        with pytest.raises(DelegationRefused) as caught:
            check_representative_grant(
                instruction_for(corp, **changes), [rep], representative_titles=TITLES
            )
        assert caught.value.code == code
    assert (
        check_representative_grant(
            instruction_for(corp, grantor_name="佐藤一郎", principal_name="株式会社 テスト商事"),
            [rep],
            representative_titles=TITLES,
        )
        == 0
    )


def test_every_instruction_carries_a_fresh_nonce_and_its_creation_time(pki):
    import base64
    import json
    from datetime import UTC, datetime

    corp = new_corporation(pki)
    first, second = instruction_for(corp).canonical(), instruction_for(corp).canonical()
    assert first != second  # the same terms twice are two instructions
    doc = json.loads(first)
    assert doc["type"] == "dairi-grant-instruction/2"
    assert len(base64.urlsafe_b64decode(doc["nonce"] + "==")) >= 16
    made = datetime.strptime(doc["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - made).total_seconds()) < 60


def test_freshness_is_bounded_in_both_directions(pki):
    from datetime import UTC, datetime, timedelta

    from delegation.instruction import FUTURE_SKEW, check_fresh

    corp = new_corporation(pki)
    made = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    instruction = instruction_for(corp, created_at=made)
    bound = timedelta(minutes=10)
    check_fresh(instruction, made + bound, bound)
    check_fresh(instruction, made - FUTURE_SKEW, bound)
    for now in (made + bound + timedelta(seconds=1), made - FUTURE_SKEW - timedelta(seconds=1)):
        with pytest.raises(DelegationRefused) as caught:
            check_fresh(instruction, now, bound)
        assert caught.value.code == "INSTRUCTION_STALE"


def _reparsed(corp, edit) -> str:
    """The message GrantInstruction.parse refuses a document changed by ``edit`` with."""
    import json

    import rfc8785

    doc = instruction_for(corp).to_json()
    edit(doc)
    try:
        data = rfc8785.dumps(doc)
    except rfc8785.IntegerDomainError:  # what RFC 8785 cannot write, a client still can
        data = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    with pytest.raises(DelegationRefused) as caught:
        GrantInstruction.parse(data)
    assert caught.value.code == "INSTRUCTION_MALFORMED"
    return caught.value.message


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        # What the attribute authority would not certify is refused when the instruction is
        # read (issue 10.3): before, these passed parse and failed only at AC issuance.
        (lambda d: d["scope"].update(amount_limit_jpy=0), "amount_limit_jpy"),
        (lambda d: d["scope"].update(cases=["R8-\u0007"]), "control characters"),
        (lambda d: d["principal"].update(name="株式会社\u0000テスト商事"), "principal.name"),
        (lambda d: d["grantor"].update(name="佐藤\u200b一郎"), "grantor.name"),
        (lambda d: d["grantee"].update(name="山田" * 101), "grantee.name"),
        (lambda d: d["grantor"].update(title="代" * 101), "grantor.title"),
        (lambda d: d["scope"].update(not_after="2030-01-01T00:00:00.500000Z"), "whole seconds"),
        (lambda d: d["scope"].update(max_depth=2**53 - 1 + 1), "max_depth"),
    ],
)
def test_what_a_mandate_cannot_carry_is_malformed_at_parse(pki, edit, says):
    corp = new_corporation(pki)
    assert says in _reparsed(corp, edit)


def test_bytes_other_than_the_canonical_form_are_malformed(pki):
    import json

    corp = new_corporation(pki)
    doc = instruction_for(corp).to_json()
    for data in (
        json.dumps(doc).encode(),
        json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(),
        instruction_for(corp).canonical() + b"\n",
    ):
        with pytest.raises(DelegationRefused) as caught:
            GrantInstruction.parse(data)
        assert caught.value.code == "INSTRUCTION_MALFORMED"
    # A fraction of zero is not the canonical form either (the service keeps what was signed).
    doc["scope"]["not_before"] = doc["scope"]["not_before"][:-1] + ".000000Z"
    import rfc8785

    with pytest.raises(DelegationRefused) as caught:
        GrantInstruction.parse(rfc8785.dumps(doc))
    assert "canonical" in caught.value.message


def test_a_sub_delegation_is_signed_by_its_grantor_alone(pki):
    from delegation.instruction import (
        check_sub_delegation_grantor,
        check_sub_delegation_signers,
    )

    corp = new_corporation(pki)
    data = instruction_for(corp).canonical()
    [one] = instruction_signers(data, sign_instruction(corp.representative, data))
    instruction = instruction_for(corp, parent="p")
    assert check_sub_delegation_signers(instruction, [one]) is one
    with pytest.raises(DelegationRefused) as caught:
        check_sub_delegation_signers(instruction, [one, one])
    assert caught.value.code == "SUBDELEGATION_MULTIPLE_SIGNERS"
    check_sub_delegation_grantor(instruction, "佐藤一郎")  # spaces aside, the same name
    with pytest.raises(DelegationRefused) as caught:
        check_sub_delegation_grantor(instruction, "鈴木\u3000花子")
    assert caught.value.code == "GRANTOR_NOT_SIGNER"
