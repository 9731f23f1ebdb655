"""Development certificates that mimic a My Number Card (JPKI) and a
商業登記電子証明書 (commercial-registration certificate), DESIGN §4.

Keys are software keys: a virtual card stands in for the real card's chip.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from devpki.ca import end_entity_key_usage, new_rsa_key
from devpki.pki import DevPki
from identity import profiles


@dataclass(frozen=True)
class VirtualCard:
    """A key pair and its certificate, as a card would hold them."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate


@dataclass(frozen=True)
class MyNumberCard:
    authentication: VirtualCard  # 利用者証明用電子証明書
    signing: VirtualCard  # 署名用電子証明書


def _utf8_other_name(oid: str, text: str) -> x509.OtherName:
    # cryptography wraps the value in [0] EXPLICIT itself; give it the UTF8String.
    return x509.OtherName(x509.ObjectIdentifier(oid), core.UTF8String(text).dump())


def _policies(oid: str) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(oid), None)])


def issue_my_number_card(
    pki: DevPki,
    *,
    name: str,
    birth_date: str,
    sex: str,
    address: str,
    prefecture: str,
    city: str,
    test_card: bool = False,
) -> MyNumberCard:
    """A virtual My Number Card: JPKI-like authentication and signing certificates.

    ``birth_date`` is ``EYYYYMMDD`` and ``sex`` a JIS X 0303 digit, as on real cards.
    """
    profiles.BirthDate.parse(birth_date)  # refuse what a real card could not carry
    now = pki.clock()
    serial = secrets.token_hex(8).upper()
    auth_key, sign_key = new_rsa_key(), new_rsa_key()
    auth_policy = profiles.JPKI_TEST_POLICY if test_card else profiles.JPKI_AUTH_POLICY
    sign_policy = profiles.JPKI_TEST_POLICY if test_card else profiles.JPKI_SIGN_POLICY
    auth = pki.ca_for_slug("jpki-auth").issue(
        x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                   x509.NameAttribute(NameOID.COMMON_NAME, serial + "A")]),
        auth_key.public_key(), now=now,
        key_usage=end_entity_key_usage(non_repudiation=False),
        extensions=[(_policies(auth_policy), False)],
    )
    name_flags = "0" * len(name.replace("\u3000", ""))
    address_flags = "0" * len(address)
    sign = pki.ca_for_slug("jpki-sign").issue(
        x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                   x509.NameAttribute(NameOID.LOCALITY_NAME, prefecture),
                   x509.NameAttribute(NameOID.LOCALITY_NAME, city),
                   x509.NameAttribute(NameOID.COMMON_NAME, serial + "S")]),
        sign_key.public_key(), now=now,
        key_usage=end_entity_key_usage(non_repudiation=True),
        extensions=[
            (_policies(sign_policy), False),
            (x509.SubjectAlternativeName([
                _utf8_other_name(profiles.JPKI_NAME, name),
                _utf8_other_name(profiles.JPKI_NAME_FLAGS, name_flags),
                _utf8_other_name(profiles.JPKI_SEX, sex),
                _utf8_other_name(profiles.JPKI_BIRTH_DATE, birth_date),
                _utf8_other_name(profiles.JPKI_ADDRESS, address),
                _utf8_other_name(profiles.JPKI_ADDRESS_FLAGS, address_flags),
            ]), False),
        ],
    )
    return MyNumberCard(VirtualCard(auth_key, auth), VirtualCard(sign_key, sign))


def registered_corporation_info(fields: dict[int, str]) -> bytes:
    """DER of ``registeredCorporationInfo``: [n] EXPLICIT strings, [1] PrintableString."""
    parts = []
    for tag in sorted(fields):
        text = fields[tag]
        # The number is a PrintableString; a malformed one (tests) may not fit it.
        printable = tag == 1 and text.isascii()
        inner = core.PrintableString(text) if printable else core.UTF8String(text)
        parts.append(_explicit(tag, inner.dump()))
    return _tlv(0x30, b"".join(parts))


def _tlv(tag_byte: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        body = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(body)]) + body
    return bytes([tag_byte]) + length + content


def _explicit(tag: int, inner_der: bytes) -> bytes:
    return _tlv(0xA0 | tag, inner_der)  # context-specific, constructed; tags < 31


def issue_representative_card(
    pki: DevPki,
    *,
    corporate_name: str,
    registered_number: str,
    head_office_address: str,
    representative_name: str,
    representative_title: str,
    registry_office: str = "東京法務局",
    registrar: str = "東京法務局登記官",
    extra_fields: dict[int, str] | None = None,
) -> VirtualCard:
    """A registration-like certificate for a representative, with the critical
    private extensions real ones carry (the number is not checked here, so tests
    can make malformed ones)."""
    key = new_rsa_key()
    fields = {0: corporate_name, 1: registered_number, 2: head_office_address,
              3: representative_name, 4: representative_title, 6: registry_office,
              **(extra_fields or {})}
    policies_jp = asn1_x509.CertificatePolicies(
        [{"policy_identifier": profiles.REGISTRATION_POLICY}]).dump()
    cert = pki.ca_for_slug("registrar").issue(
        x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                   x509.NameAttribute(NameOID.COMMON_NAME, representative_name)]),
        key.public_key(), now=pki.clock(),
        key_usage=end_entity_key_usage(non_repudiation=True),
        extensions=[
            (x509.UnrecognizedExtension(
                x509.ObjectIdentifier(profiles.CERTIFICATE_POLICIES_JP), policies_jp), True),
            (x509.UnrecognizedExtension(
                x509.ObjectIdentifier(profiles.REGISTRAR), core.UTF8String(registrar).dump()),
             True),
            (x509.UnrecognizedExtension(
                x509.ObjectIdentifier(profiles.REGISTERED_CORPORATION_INFO),
                registered_corporation_info(fields)), True),
        ],
    )
    return VirtualCard(key, cert)
