"""Development certificates that mimic a My Number Card (JPKI) and a
商業登記電子証明書 (commercial-registration certificate), DESIGN §4.

Keys are software keys: a virtual card stands in for the real card's chip.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from dairi import DairiError
from devpki.ca import end_entity_key_usage, new_rsa_key, write_private
from devpki.pki import DevPki
from identity import profiles


@dataclass(frozen=True)
class VirtualCard:
    """A key pair and its certificate, as a card would hold them."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def sign(self, data: bytes) -> bytes:
        """What the card does: RSASSA-PKCS1-v1_5 over the SHA-256 DigestInfo of ``data``."""
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def sign_cms(self, data: bytes) -> bytes:
        """A detached CMS SignedData (SHA-256, signingCertificateV2) over ``data``, as
        card software makes for a grant instruction (pyHanko builds the CMS)."""
        key = asn1_keys.PrivateKeyInfo.load(
            self.key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert = asn1_x509.Certificate.load(self.certificate.public_bytes(serialization.Encoding.DER))
        signer = SimpleSigner(cert, key, SimpleCertificateStore.from_certs([cert]))
        content = asyncio.run(signer.async_sign_general_data(data, "sha256", detached=True))
        return bytes(content.dump())


@dataclass(frozen=True)
class MyNumberCard:
    authentication: VirtualCard  # 利用者証明用電子証明書
    signing: VirtualCard  # 署名用電子証明書


def _utf8_other_name(oid: str, text: str) -> x509.OtherName:
    # cryptography wraps the value in [0] EXPLICIT itself; give it the UTF8String.
    return x509.OtherName(x509.ObjectIdentifier(oid), core.UTF8String(text).dump())


# What real JPKI certificates carry beside the policy OID (DESIGN §4): a CPS
# qualifier, and an issuerAltName naming the service in Japanese. The values follow
# public descriptions of the cards; what matters for dairi is the shape (a critical
# certificatePolicies with a qualifier, an extra extension to read past).
JPKI_CPS_URI = "http://www.jpki.go.jp/cps.html"
JPKI_ISSUER_ALT_OU = {
    "jpki-auth": "公的個人認証サービス利用者証明用",
    "jpki-sign": "公的個人認証サービス署名用",
}


def _policies(oid: str) -> x509.CertificatePolicies:
    return x509.CertificatePolicies(
        [x509.PolicyInformation(x509.ObjectIdentifier(oid), [JPKI_CPS_URI])]
    )


def _jpki_extensions(slug: str, policy: str) -> list[tuple[x509.ExtensionType, bool]]:
    """certificatePolicies (critical, as on real cards) and the issuerAltName."""
    issuer_alt = x509.IssuerAlternativeName(
        [
            x509.DirectoryName(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "公的個人認証サービス"),
                        x509.NameAttribute(
                            NameOID.ORGANIZATIONAL_UNIT_NAME, JPKI_ISSUER_ALT_OU[slug]
                        ),
                    ]
                )
            )
        ]
    )
    return [(_policies(policy), True), (issuer_alt, False)]


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
    auth_policy: str | None = None,
    sign_policy: str | None = None,
) -> MyNumberCard:
    """A virtual My Number Card: JPKI-like authentication and signing certificates.

    ``birth_date`` is ``EYYYYMMDD`` and ``sex`` a JPKI digit (1, 2, 3), as on real cards
    (a sex outside those is written anyway, so tests can make malformed cards).
    ``auth_policy``/``sign_policy`` replace the default (or test-card) policy OIDs, for
    certificates of a configured policy set.
    """
    profiles.BirthDate.parse(birth_date)  # refuse what a real card could not carry
    now = pki.clock()
    serial = secrets.token_hex(8).upper()
    auth_key, sign_key = new_rsa_key(), new_rsa_key()
    auth_policy = auth_policy or (
        profiles.JPKI_TEST_POLICY if test_card else profiles.JPKI_AUTH_POLICY
    )
    sign_policy = sign_policy or (
        profiles.JPKI_TEST_POLICY if test_card else profiles.JPKI_SIGN_POLICY
    )
    auth = pki.ca_for_slug("jpki-auth").issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.COMMON_NAME, serial + "A"),
            ]
        ),
        auth_key.public_key(),
        now=now,
        key_usage=end_entity_key_usage(non_repudiation=False),
        extensions=_jpki_extensions("jpki-auth", auth_policy),
    )
    name_flags = "0" * len(name.replace("\u3000", ""))
    address_flags = "0" * len(address)
    sign = pki.ca_for_slug("jpki-sign").issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.LOCALITY_NAME, prefecture),
                x509.NameAttribute(NameOID.LOCALITY_NAME, city),
                x509.NameAttribute(NameOID.COMMON_NAME, serial + "S"),
            ]
        ),
        sign_key.public_key(),
        now=now,
        key_usage=end_entity_key_usage(non_repudiation=True),
        extensions=[
            *_jpki_extensions("jpki-sign", sign_policy),
            (
                x509.SubjectAlternativeName(
                    [
                        _utf8_other_name(profiles.JPKI_NAME, name),
                        _utf8_other_name(profiles.JPKI_NAME_FLAGS, name_flags),
                        _utf8_other_name(profiles.JPKI_SEX, sex),
                        _utf8_other_name(profiles.JPKI_BIRTH_DATE, birth_date),
                        _utf8_other_name(profiles.JPKI_ADDRESS, address),
                        _utf8_other_name(profiles.JPKI_ADDRESS_FLAGS, address_flags),
                    ]
                ),
                False,
            ),
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
    policy: str = profiles.REGISTRATION_POLICY,
) -> VirtualCard:
    """A registration-like certificate for a representative, with the critical
    private extensions real ones carry (the number is not checked here, so tests
    can make malformed ones). The representative's name is written without spaces,
    as real certificates write it."""
    key = new_rsa_key()
    representative_name = "".join(representative_name.split())
    fields = {
        0: corporate_name,
        1: registered_number,
        2: head_office_address,
        3: representative_name,
        4: representative_title,
        6: registry_office,
        **(extra_fields or {}),
    }
    policies_jp = asn1_x509.CertificatePolicies([{"policy_identifier": policy}]).dump()
    cert = pki.ca_for_slug("registrar").issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.COMMON_NAME, representative_name),
            ]
        ),
        key.public_key(),
        now=pki.clock(),
        key_usage=end_entity_key_usage(non_repudiation=True),
        extensions=[
            (
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(profiles.CERTIFICATE_POLICIES_JP), policies_jp
                ),
                True,
            ),
            (
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(profiles.REGISTRAR), core.UTF8String(registrar).dump()
                ),
                True,
            ),
            (
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(profiles.REGISTERED_CORPORATION_INFO),
                    registered_corporation_info(fields),
                ),
                True,
            ),
        ],
    )
    return VirtualCard(key, cert)


# -- card directories (``dairi dev card create|sign``) ------------------------

CARD_MANIFEST = "card.json"
MY_NUMBER = "my-number"
REPRESENTATIVE = "representative"
# role -> (certificate file, key file), per card kind
CARD_FILES: dict[str, dict[str, tuple[str, str]]] = {
    MY_NUMBER: {
        "authentication": ("auth-cert.pem", "auth-key.pem"),
        "signing": ("sign-cert.pem", "sign-key.pem"),
    },
    REPRESENTATIVE: {"representative": ("cert.pem", "key.pem")},
}
DEFAULT_ROLE = {MY_NUMBER: "authentication", REPRESENTATIVE: "representative"}


class CardError(DairiError):
    """A card directory is missing, malformed, or lacks the asked-for certificate."""

    code = "DEV_CARD_INVALID"


@dataclass(frozen=True)
class SavedCard:
    """A virtual card read back from its directory: its kind and its key pairs by role."""

    kind: str  # "my-number" or "representative"
    roles: dict[str, VirtualCard]

    def role(self, name: str | None = None) -> VirtualCard:
        """The key pair for ``name`` (default: authentication, or representative)."""
        name = name or DEFAULT_ROLE[self.kind]
        if name not in self.roles:
            raise CardError(
                f"a {self.kind} card has no {name} certificate", "DEV_CARD_ROLE_UNKNOWN"
            )
        return self.roles[name]


def save_card(card: MyNumberCard | VirtualCard, directory: Path) -> SavedCard:
    """Write ``card`` to ``directory``: PEM certificates, PKCS#8 keys (mode 0600) and
    ``card.json``. Refuses a directory that already holds a card."""
    if isinstance(card, MyNumberCard):
        saved = SavedCard(
            MY_NUMBER, {"authentication": card.authentication, "signing": card.signing}
        )
    else:
        saved = SavedCard(REPRESENTATIVE, {"representative": card})
    if (directory / CARD_MANIFEST).exists():
        raise CardError(f"{directory} already holds a card", "DEV_CARD_EXISTS")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    files = CARD_FILES[saved.kind]
    for role, virtual in saved.roles.items():
        cert_file, key_file = files[role]
        (directory / cert_file).write_bytes(
            virtual.certificate.public_bytes(serialization.Encoding.PEM)
        )
        write_private(
            directory / key_file,
            virtual.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    manifest = {
        "version": 1,
        "kind": saved.kind,
        "certificates": {
            role: {"certificate": cert_file, "key": key_file}
            for role, (cert_file, key_file) in files.items()
        },
    }
    (directory / CARD_MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return saved


def load_card(directory: Path) -> SavedCard:
    """Read a card directory written by :func:`save_card`."""
    try:
        manifest = json.loads((directory / CARD_MANIFEST).read_text(encoding="utf-8"))
        kind = manifest["kind"]
        if kind not in CARD_FILES:
            raise CardError(f"unknown card kind {kind!r} in {directory}")
        roles: dict[str, VirtualCard] = {}
        for role, names in manifest["certificates"].items():
            if role not in CARD_FILES[kind]:
                raise CardError(f"unknown certificate role {role!r} in {directory}")
            certificate = x509.load_pem_x509_certificate(
                _card_file(directory, names["certificate"]).read_bytes()
            )
            key = serialization.load_pem_private_key(
                _card_file(directory, names["key"]).read_bytes(), password=None
            )
            if (
                not isinstance(key, rsa.RSAPrivateKey)
                or key.public_key() != certificate.public_key()
            ):
                raise CardError(f"the {role} key in {directory} does not match its certificate")
            roles[role] = VirtualCard(key, certificate)
    except CardError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CardError(f"no readable card in {directory}") from exc
    return SavedCard(kind, roles)


def _card_file(directory: Path, name: str) -> Path:
    if not isinstance(name, str) or Path(name).name != name or name in {"", ".", ".."}:
        raise CardError(f"card.json in {directory} names a file outside the card")
    return directory / name
