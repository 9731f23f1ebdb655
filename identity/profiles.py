"""What dairi reads from JPKI and commercial-registration certificates (DESIGN §4).

Parsing only: path validation, revocation and policy decisions happen elsewhere.
Personal data read here (address, birth date, sex) must never be logged.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import date

import rfc8785
from asn1crypto import core, parser, x509

from dairi import DairiError
from identity.corporate_number import corporate_number

# JPKI certificate policies: the defaults of the policy settings (PolicyOids).
JPKI_AUTH_POLICY = "1.2.392.200149.8.5.1.3.30"
JPKI_SIGN_POLICY = "1.2.392.200149.8.5.1.1.20"
JPKI_TEST_POLICY = "1.2.392.200149.8.5.1.0.20"  # reportedly on test cards

# JPKI signing-certificate subjectAltName otherNames: [0] EXPLICIT UTF8String.
JPKI_NAME = "1.2.392.200149.8.5.5.1"
JPKI_NAME_FLAGS = "1.2.392.200149.8.5.5.2"
JPKI_SEX = "1.2.392.200149.8.5.5.3"
JPKI_BIRTH_DATE = "1.2.392.200149.8.5.5.4"
JPKI_ADDRESS = "1.2.392.200149.8.5.5.5"
JPKI_ADDRESS_FLAGS = "1.2.392.200149.8.5.5.6"

# Commercial-registration certificate extensions (critical in real certificates).
CERTIFICATE_POLICIES_JP = "1.2.392.100300.1.1.1"
REGISTRAR = "1.2.392.100300.1.1.2"
REGISTERED_CORPORATION_INFO = "1.2.392.100300.1.1.3"
REGISTRATION_POLICY = "1.2.392.100300.1.3.4"
REGISTRATION_EXTENSIONS = frozenset(
    {CERTIFICATE_POLICIES_JP, REGISTRAR, REGISTERED_CORPORATION_INFO}
)
# registeredCorporationInfo fields are DirectoryString (RFC 5280): any of its five.
DIRECTORY_STRING_TYPES = (
    core.UTF8String,
    core.PrintableString,
    core.TeletexString,
    core.BMPString,
    core.UniversalString,
)

# Era codes of the birth date (E of EYYYYMMDD) and the day each era began.
ERAS: dict[str, tuple[str, date]] = {
    "1": ("明治", date(1868, 10, 23)),
    "2": ("大正", date(1912, 7, 30)),
    "3": ("昭和", date(1926, 12, 25)),
    "4": ("平成", date(1989, 1, 8)),
    "5": ("令和", date(2019, 5, 1)),
}
# Era code 0: the register does not know the era (不明); the digits that follow may
# name a date, part of one (00 for an unknown month or day) or nothing.
UNKNOWN_ERA_CODE, UNKNOWN_ERA = "0", "不明"
# Sex as the JPKI signing certificate writes it (DESIGN §4); the raw digit is kept.
SEXES = {"1": "男", "2": "女", "3": "不明"}
# The words version 1 of the basic-items document wrote for the codes it accepted:
# kept so that the digest of a person enrolled before stays the same (issue 10.11).
_DOCUMENT_SEX = {"1": "male", "2": "female"}


_OID = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")


@dataclass(frozen=True)
class PolicyOids:
    """Which certificatePolicies OIDs make a certificate of each kind (DESIGN §4).

    Settings, today's values the defaults: smartphone JPKI certificates reportedly
    carry other policies. ``jpki_test`` are the test-card policies, accepted in place
    of the JPKI ones only when test cards are allowed. Raises ``ValueError`` when a
    set is empty (``jpki_test`` may be), an OID is not dotted decimal, a test-card
    policy is also an accepted one, or one policy names both JPKI certificates.
    """

    jpki_auth: frozenset[str] = frozenset({JPKI_AUTH_POLICY})
    jpki_sign: frozenset[str] = frozenset({JPKI_SIGN_POLICY})
    jpki_test: frozenset[str] = frozenset({JPKI_TEST_POLICY})
    registration: frozenset[str] = frozenset({REGISTRATION_POLICY})

    def __post_init__(self) -> None:
        # Named as the settings that fill them, so a refusal at start-up says which.
        sets = {
            "jpki_auth_policies": self.jpki_auth,
            "jpki_sign_policies": self.jpki_sign,
            "jpki_test_policies": self.jpki_test,
            "registration_policies": self.registration,
        }
        for name, oids in sets.items():
            if not oids and name != "jpki_test_policies":
                raise ValueError(f"{name}: at least one policy OID is needed")
            for oid in oids:
                if not _OID.fullmatch(oid):
                    raise ValueError(f"{name}: {oid!r} is not a dotted-decimal OID")
        real = self.jpki_auth | self.jpki_sign | self.registration
        if self.jpki_test & real:
            raise ValueError(
                "a test-card policy cannot also be accepted as a real one "
                "(allow_test_cards lets test cards in)"
            )
        if self.jpki_auth & self.jpki_sign:
            raise ValueError(
                "one policy OID cannot name both JPKI certificates (authentication and signing)"
            )


DEFAULT_POLICY_OIDS = PolicyOids()


class ProfileError(DairiError, ValueError):
    """A certificate does not follow the profile it claims."""

    code = "CERTIFICATE_PROFILE_INVALID"


class CertificateMalformed(DairiError, ValueError):
    """The bytes are not one X.509 certificate in PEM or DER, or a part of it is not DER."""

    code = "CERTIFICATE_MALFORMED"


class CertificateKind(enum.StrEnum):
    JPKI_AUTH = "jpki-auth"
    JPKI_SIGN = "jpki-sign"
    CORPORATE_REGISTRATION = "corporate-registration"
    OTHER = "other"


@dataclass(frozen=True)
class BirthDate:
    """A JPKI birth date: the Gregorian date, the era it fell in, and the text as read.

    ``value`` is None only when the era is 不明 and the digits name no calendar date.
    """

    value: date | None
    era: str
    raw: str | None = None  # EYYYYMMDD as the certificate carries it (set by parse)

    @classmethod
    def parse(cls, text: str) -> BirthDate:
        """Decode ``EYYYYMMDD``; raises :class:`ProfileError` for other text, unknown era
        codes and dates outside their era. Era 0 (不明) takes any eight digits."""
        if len(text) != 9 or not text.isascii() or not text.isdigit():
            raise ProfileError("birth date is not EYYYYMMDD")
        if text[0] == UNKNOWN_ERA_CODE:
            try:
                known: date | None = date(int(text[1:5]), int(text[5:7]), int(text[7:9]))
            except ValueError:
                known = None  # a partly or wholly unknown date: the raw text says it
            return cls(known, UNKNOWN_ERA, text)
        if text[0] not in ERAS:
            raise ProfileError(f"unknown era code {text[0]}")
        try:
            value = date(int(text[1:5]), int(text[5:7]), int(text[7:9]))
        except ValueError as exc:
            raise ProfileError("birth date is not a calendar date") from exc
        era, start = ERAS[text[0]]
        following = [s for _, s in ERAS.values() if s > start]
        if value < start or (following and value >= min(following)):
            raise ProfileError("birth date does not fall in its era")
        return cls(value, era, text)

    def text(self) -> str:
        """The ISO date when the era is known, else the raw ``EYYYYMMDD`` (era 不明):
        how dairi stores and compares a birth date."""
        if self.era == UNKNOWN_ERA or self.value is None:
            return self.raw or ""
        return self.value.isoformat()


@dataclass(frozen=True)
class JpkiPersonalData:
    """The four basic items (基本4情報) of a JPKI signing certificate.

    ``repr`` shows the name only: the rest must not reach a log.
    """

    name: str
    name_flags: str | None = field(default=None, repr=False)
    sex: str | None = field(default=None, repr=False)  # raw digit, see SEXES
    birth_date: BirthDate | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    address_flags: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RegisteredCorporation:
    """``registeredCorporationInfo`` of a 商業登記電子証明書, plus the derived 法人番号."""

    corporate_name: str
    registered_number: str  # 会社法人等番号, 12 digits
    corporate_number: str  # 法人番号, 13 digits
    head_office_address: str | None
    representative_name: str | None
    representative_title: str | None
    registry_office: str | None
    other_fields: dict[int, str] = field(default_factory=dict)
    registrar: str | None = None
    policies: tuple[str, ...] = ()


def _extensions(cert: x509.Certificate) -> dict[str, x509.Extension]:
    try:
        return {ext["extn_id"].dotted: ext for ext in cert["tbs_certificate"]["extensions"]}
    except (ValueError, TypeError) as exc:
        raise CertificateMalformed("the certificate's extensions are not DER") from exc


def policy_oids(cert: x509.Certificate) -> tuple[str, ...]:
    """The certificatePolicies OIDs; raises :class:`CertificateMalformed` if not DER."""
    # asn1crypto parses extension values lazily: bad DER surfaces here, not at load.
    try:
        policies = cert.certificate_policies_value
        return tuple(p["policy_identifier"].dotted for p in policies) if policies else ()
    except (ValueError, TypeError) as exc:
        raise CertificateMalformed("certificatePolicies is not DER") from exc


def certificate_kind(
    cert: x509.Certificate, policies: PolicyOids = DEFAULT_POLICY_OIDS
) -> CertificateKind:
    """Classify by policy OID (and, for registration, its private extension).

    Raises :class:`CertificateMalformed` when those extensions are not DER.
    """
    found = set(policy_oids(cert))
    if found & policies.jpki_auth:
        return CertificateKind.JPKI_AUTH
    if found & policies.jpki_sign:
        return CertificateKind.JPKI_SIGN
    if REGISTERED_CORPORATION_INFO in _extensions(cert):
        return CertificateKind.CORPORATE_REGISTRATION
    return CertificateKind.OTHER


def _other_name_text(general_name: x509.GeneralName) -> tuple[str, str] | None:
    if general_name.name != "other_name":
        return None
    other = general_name.chosen
    try:
        value = other["value"].parsed
    except (ValueError, TypeError) as exc:
        raise ProfileError("an otherName value is not [0] EXPLICIT UTF8String") from exc
    if not isinstance(value, core.UTF8String):
        raise ProfileError("an otherName value is not a UTF8String")
    return other["type_id"].dotted, value.native


def jpki_personal_data(cert: x509.Certificate) -> JpkiPersonalData:
    """The basic four items from a JPKI signing certificate's subjectAltName."""
    san = cert.subject_alt_name_value
    items: dict[str, str] = {}
    for general_name in san or ():
        found = _other_name_text(general_name)
        if found:
            items[found[0]] = found[1]
    if JPKI_NAME not in items:
        raise ProfileError("no JPKI name in the subjectAltName")
    sex = items.get(JPKI_SEX)
    if sex is not None and sex not in SEXES:
        raise ProfileError("sex is not a JPKI code (1, 2 or 3)")
    birth = items.get(JPKI_BIRTH_DATE)
    return JpkiPersonalData(
        name=items[JPKI_NAME],
        name_flags=items.get(JPKI_NAME_FLAGS),
        sex=sex,
        birth_date=BirthDate.parse(birth) if birth is not None else None,
        address=items.get(JPKI_ADDRESS),
        address_flags=items.get(JPKI_ADDRESS_FLAGS),
    )


def registered_corporation(cert: x509.Certificate) -> RegisteredCorporation:
    """Parse ``registeredCorporationInfo`` (each field a DirectoryString of any type);
    unknown tags are kept in ``other_fields``.

    Raises :class:`ProfileError` (or ``CORPORATE_NUMBER_INVALID`` when the
    会社法人等番号 is not 12 digits, :class:`CertificateMalformed` when the
    registrar or certificatePoliciesJP extension is not DER).
    """
    extensions = _extensions(cert)
    if REGISTERED_CORPORATION_INFO not in extensions:
        raise ProfileError("not a commercial-registration certificate")
    raw = extensions[REGISTERED_CORPORATION_INFO]["extn_value"].contents
    fields: dict[int, str] = {}
    try:
        class_, method, tag, _, body, _ = parser.parse(raw, strict=True)
        if (class_, method, tag) != (0, 1, 16):
            raise ProfileError("registeredCorporationInfo is not a SEQUENCE")
        pointer = 0
        while pointer < len(body):
            size = parser.peek(body[pointer:])
            class_, method, tag, _, inner_der, _ = parser.parse(body[pointer : pointer + size])
            pointer += size
            if class_ != 2 or method != 1:  # [n] EXPLICIT
                raise ProfileError("registeredCorporationInfo field is not EXPLICIT-tagged")
            inner = core.load(inner_der, strict=True)
            if not isinstance(inner, DIRECTORY_STRING_TYPES):
                raise ProfileError("registeredCorporationInfo field is not a DirectoryString")
            fields[tag] = inner.native  # decodes: text not valid in its type is refused
    except ProfileError:
        raise
    except (ValueError, TypeError) as exc:
        raise ProfileError("registeredCorporationInfo is not DER") from exc
    if 0 not in fields or 1 not in fields:
        raise ProfileError("registeredCorporationInfo lacks the name or the number")
    registered_number = fields[1]
    number = corporate_number(registered_number)  # CORPORATE_NUMBER_INVALID if malformed
    registrar = None
    policies: tuple[str, ...] = ()
    try:
        if REGISTRAR in extensions:
            registrar = core.load(extensions[REGISTRAR]["extn_value"].contents).native
        if CERTIFICATE_POLICIES_JP in extensions:
            policies = tuple(
                p["policy_identifier"].dotted
                for p in x509.CertificatePolicies.load(
                    extensions[CERTIFICATE_POLICIES_JP]["extn_value"].contents
                )
            )
    except (ValueError, TypeError) as exc:
        raise CertificateMalformed("registrar or certificatePoliciesJP is not DER") from exc
    return RegisteredCorporation(
        corporate_name=fields[0],
        registered_number=registered_number,
        corporate_number=number,
        head_office_address=fields.get(2),
        representative_name=fields.get(3),
        representative_title=fields.get(4),
        registry_office=fields.get(6),
        other_fields={k: v for k, v in fields.items() if k not in {0, 1, 2, 3, 4, 6}},
        registrar=registrar,
        policies=policies,
    )


BASIC_ITEMS_TYPE = "dairi-jpki-basic-items/1"


def basic_items_document(data: JpkiPersonalData) -> bytes:
    """The four basic items (name, birth date, sex, address) as canonical bytes (RFC
    8785 JSON): what a keyed digest is taken over, so that a reissued card can be
    compared with the enrolled one without keeping the items. The name is taken
    without its spaces, as dairi compares names everywhere. Sex 1 and 2 and a birth
    date of known era are written as before item 10.11 (so enrolled digests still
    match); sex 3 and an era-不明 birth date as their raw text.

    The result is personal data: hash it, never store or log it.
    """
    return rfc8785.dumps(
        {
            "type": BASIC_ITEMS_TYPE,
            "name": "".join(data.name.split()),
            "birth_date": data.birth_date.text() if data.birth_date else None,
            "sex": _DOCUMENT_SEX.get(data.sex, data.sex) if data.sex else None,
            "address": data.address,
        }
    )
