"""ASN.1 of dairi's mandate attribute certificates (DESIGN §5), with asn1crypto.

Object identifiers live under the UUID arc ``2.25.320070894866931714170245613787843122496``
(X.667): ``.1.1`` the mandate attribute, ``.2.1`` the provenance extension, ``.3.1`` the
signature policy of signatures made under a mandate.

Tagging: the context tags [0]..[4] of ``Mandate`` are IMPLICIT (the module is
``DEFINITIONS IMPLICIT TAGS``, as RFC 5755's own module is), so e.g. ``amountLimitJPY``
is encoded ``80 len <integer contents>`` and ``procuringEntities`` ``A0 len <UTF8String...>``.

Importing this module registers, once, the mandate attribute with asn1crypto's
attribute-certificate attribute maps (``cms.AttCertAttributeType`` /
``cms.AttCertAttribute``) and the provenance extension with the extension maps that
asn1crypto uses for AC extensions (``x509.ExtensionId`` / ``x509.Extension``;
AttributeCertificateInfoV2 reuses X.509 ``Extensions``), so parsed ACs expose
``.native`` and ``.parsed`` values for both. pyhanko-certvalidator's ``asn1_types`` is
imported first: it registers ``target_information`` the same way, and its ``Targets``
types are the ones validators use.
"""

from __future__ import annotations

from typing import ClassVar

import pyhanko_certvalidator.asn1_types  # noqa: F401 - registers target_information
from asn1crypto import cms, core, x509

ARC = "2.25.320070894866931714170245613787843122496"
MANDATE_ATTRIBUTE_OID = f"{ARC}.1.1"
PROVENANCE_EXTENSION_OID = f"{ARC}.2.1"
MANDATE_SIGNATURE_POLICY_OID = f"{ARC}.3.1"

# The names asn1crypto gives the OIDs once registered (``.native`` of the type field).
MANDATE_ATTRIBUTE = "dairi_mandate"
PROVENANCE_EXTENSION = "dairi_provenance"


class UTF8Strings(core.SequenceOf):
    """SEQUENCE OF UTF8String."""

    _child_spec = core.UTF8String


class Principal(core.Sequence):
    """principal SEQUENCE { corporateNumber PrintableString, name UTF8String }."""

    _fields: ClassVar = [
        ("corporate_number", core.PrintableString),
        ("name", core.UTF8String),
    ]


class Party(core.Sequence):
    """Party ::= SEQUENCE { name UTF8String, title UTF8String OPTIONAL,
    certificateDigest OCTET STRING }  -- SHA-256 of the party's certificate."""

    _fields: ClassVar = [
        ("name", core.UTF8String),
        ("title", core.UTF8String, {"optional": True}),
        ("certificate_digest", core.OctetString),
    ]


class SubDelegation(core.Sequence):
    """subDelegation SEQUENCE { maxDepth INTEGER }."""

    _fields: ClassVar = [("max_depth", core.Integer)]


class Mandate(core.Sequence):
    """The value of the mandate attribute (DESIGN §5); [0]..[4] IMPLICIT."""

    _fields: ClassVar = [
        ("principal", Principal),
        ("grantor", Party),
        ("grantee", Party),
        ("actions", UTF8Strings),
        ("procuring_entities", UTF8Strings, {"implicit": 0, "optional": True}),
        ("cases", UTF8Strings, {"implicit": 1, "optional": True}),
        ("amount_limit_jpy", core.Integer, {"implicit": 2, "optional": True}),
        ("sub_delegation", SubDelegation, {"implicit": 3, "optional": True}),
        ("instruction_digest", core.OctetString, {"implicit": 4}),
    ]


class SetOfMandate(core.SetOf):
    """The attribute's SET OF values (exactly one in a dairi AC)."""

    _child_spec = Mandate


class AttributeCertificates(core.SequenceOf):
    """SEQUENCE OF AttributeCertificate (RFC 5755 v2)."""

    _child_spec = cms.AttributeCertificateV2


class Provenance(core.Sequence):
    """Provenance ::= SEQUENCE { depth INTEGER, ancestors SEQUENCE OF AttributeCertificate }
    -- depth 0 for a representative's grant; ancestors root first."""

    _fields: ClassVar = [
        ("depth", core.Integer),
        ("ancestors", AttributeCertificates),
    ]


def _register(oid_class: type[core.ObjectIdentifier], oid: str, name: str) -> None:
    existing = oid_class._map.get(oid)
    if existing not in (None, name):
        raise RuntimeError(f"{oid} is already registered with asn1crypto as {existing!r}")
    oid_class._map[oid] = name
    if oid_class._reverse_map is not None:  # built lazily by asn1crypto on first use
        oid_class._reverse_map[name] = oid


def _register_all() -> None:
    _register(cms.AttCertAttributeType, MANDATE_ATTRIBUTE_OID, MANDATE_ATTRIBUTE)
    cms.AttCertAttribute._oid_specs[MANDATE_ATTRIBUTE] = SetOfMandate
    _register(x509.ExtensionId, PROVENANCE_EXTENSION_OID, PROVENANCE_EXTENSION)
    x509.Extension._oid_specs[PROVENANCE_EXTENSION] = Provenance


_register_all()
