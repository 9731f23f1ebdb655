"""Verification of XAdES signatures for relying parties (DESIGN §7): the report
:func:`signing.verification.verify_pdf` gives, for signed XML.

Per ``ds:Signature`` carrying XAdES qualifying properties:

1. **Where the references point** (signature wrapping, refused before any digest):
   every ``Id`` in the document is unique; the signature sits where its packaging
   puts it (a child of the document element, enveloped; the document element,
   detached); ``URI=""`` carries the enveloped-signature transform; every
   ``#Id`` reference hits exactly one element, and that element is the one this
   verifier reads: the signature's own ``ds:KeyInfo``, its only
   ``xades:SignedProperties``, or one of its ``ds:Object`` children (grant
   evidence). Anything else is ``SIGNATURE_WRAPPING`` (``TOTAL_FAILED``,
   ``FORMAT_FAILURE``): a relying party must read what was signed.
2. **The cryptographic core** is signxml's :class:`~signxml.xades.XAdESVerifier`
   (SignedInfo signature, every reference's digest, SigningCertificateV2, dairi's
   signature policy digest), copying documents as UTF-8 and with their top-level
   processing instructions, as dairi's signer does.
3. **Time**: each ``SignatureTimeStamp`` token's imprint must be the digest of the
   canonicalised ``ds:SignatureValue`` and its TSA chain valid at its time; the
   earliest valid one is the best signature time. An ``ArchiveTimeStamp`` is
   checked over what EN 319 132-1 §5.5.2.2 says it covers
   (:func:`signing.xades_archive.archive_timestamp_input`).
4. **The signer's certificate** is validated by pyhanko-certvalidator at the best
   signature time (the claimed or asked time without a time-stamp) with the
   document's CertificateValues/RevocationValues plus the relying party's data,
   revocation information required; offline unless the trust allows fetching.
   Revocation data issued later than that time is used for it (a later CRL still
   says whether the certificate was revoked before).
5. **The mandate** from ``CertifiedRolesV2`` (:func:`judge_mandate`), judged at
   the signing time with the AA's revocation data from RevocationValues, and the
   root grant from the signed evidence ``ds:Object`` s, named by their
   DataObjectFormat as the PDF's embedded files are.

Levels: B-B when the signature holds, B-T with a valid signature time-stamp, B-LT
when it also carries CertificateValues and RevocationValues, B-LTA with a valid
archive time-stamp.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from lxml import etree
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from signxml import DigestAlgorithm
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, SignXMLException
from signxml.exceptions import InvalidSignature as XmlInvalidSignature
from signxml.xades import XAdESSignatureConfiguration, XAdESSignaturePolicy, XAdESVerifier

from delegation.scope import Purpose
from signing.mandate_evidence import (
    MANDATE_SIGNATURE_POLICY_DOCUMENT,
    MANDATE_SIGNATURE_POLICY_OID,
)
from signing.pades import PadesLevel
from signing.verification import (
    DEFAULT_MAX_BYTES,
    CoverageReport,
    DocumentNotSigned,
    Indication,
    MandateReport,
    SignatureReport,
    SignerReport,
    TimestampReport,
    Verdict,
    VerificationReport,
    VerificationTrust,
    mandate_verdict,
    report_of,
    revocation_sources,
    signer_report,
)
from signing.verification_asn1 import remembered_asn1
from signing.verification_mandate import judge_mandate
from signing.xades_archive import archive_timestamp_input
from signing.xades_properties import NS, _whole_document
from signing.xml_safety import parse_untrusted_xml

__all__ = [
    "SIGNATURE_WRAPPING",
    "XmlSignatureReader",
    "async_verify_xml",
    "judge_mandate",
    "verify_xml",
]

SIGNATURE_WRAPPING = "SIGNATURE_WRAPPING"

_DS = NS["ds"]
_XADES = NS["xades"]
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
_ID_ATTRIBUTES = ("Id", "ID", "id")
_EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
_USP = (
    "ds:Object/xades:QualifyingProperties/xades:UnsignedProperties"
    "/xades:UnsignedSignatureProperties"
)
_SSP = "ds:Object/xades:QualifyingProperties/xades:SignedProperties/xades:SignedSignatureProperties"
_DAIRI_POLICY = XAdESSignaturePolicy(
    Identifier=f"urn:oid:{MANDATE_SIGNATURE_POLICY_OID}",
    Description="",
    DigestMethod=DigestAlgorithm.SHA256,
    DigestValue=base64.b64encode(
        hashlib.sha256(MANDATE_SIGNATURE_POLICY_DOCUMENT).digest()
    ).decode(),
)


class _Wrapped(Exception):
    """The references do not resolve to what this verifier reads."""


class XmlSignatureReader(XAdESVerifier):
    """signxml's XAdES verifier copying documents as UTF-8 with their top-level
    processing instructions: its default (ASCII) turns Japanese element names into
    character references that do not parse back, and it canonicalises the document
    element alone, leaving out the ``<?xml-stylesheet?>`` dairi's signer signs.

    ``signature_id`` names the ``ds:Signature`` to verify: signxml takes the first one
    in the document, which for a document with several would check one signature's
    cryptography in place of another's."""

    def __init__(self, signature_id: str | None = None) -> None:
        super().__init__()
        self._signature_id = signature_id

    def _get_signature(self, root: Any) -> Any:
        if self._signature_id is None:
            return super()._get_signature(root)
        found = root.xpath(
            "(self::ds:Signature | .//ds:Signature)[@Id=$id]", namespaces=NS, id=self._signature_id
        )
        if len(found) != 1:
            raise InvalidInput(f"no single ds:Signature with Id {self._signature_id!r}")
        return found[0]

    def _tostring(self, xml_node: Any, **kwargs: Any) -> bytes:
        kwargs.setdefault("encoding", "utf-8")
        return bytes(etree.tostring(_whole_document(xml_node), **kwargs))

    def _c14n(self, nodes: Any, algorithm: Any, inclusive_ns_prefixes: Any = None) -> bytes:
        nodes = [_whole_document(n) for n in (nodes if isinstance(nodes, list) else [nodes])]
        return bytes(super()._c14n(nodes, algorithm, inclusive_ns_prefixes=inclusive_ns_prefixes))


# -- where the references point ------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """What a signature's references resolve to, once checked."""

    document_uri: str | None  # "" enveloped; a file name detached
    evidence: dict[str, bytes]  # evidence file name → content (from signed ds:Objects)
    references: int


def _ids(document: etree._Element) -> dict[str, list[etree._Element]]:
    found: dict[str, list[etree._Element]] = {}
    for element in document.iter():
        if not isinstance(element.tag, str):
            continue
        for name, value in element.attrib.items():
            if etree.QName(name).localname in _ID_ATTRIBUTES:
                found.setdefault(str(value), []).append(element)
    return found


def _check_layout(signature: etree._Element, document: etree._Element) -> _Layout:
    """Raises :class:`_Wrapped` unless every reference hits what is read (module doc)."""
    ids = _ids(document)
    duplicated = sorted(i for i, elements in ids.items() if len(elements) > 1)
    if duplicated:
        raise _Wrapped(f"Id {duplicated[0]!r} names more than one element")
    parent = signature.getparent()
    enveloped_place = parent is not None and parent is document
    detached_place = signature is document
    if not (enveloped_place or detached_place):
        raise _Wrapped("the signature is not where its packaging puts it")
    qualifying = signature.findall("ds:Object/xades:QualifyingProperties", NS)
    if len(qualifying) != 1 or qualifying[0].get("Target") != f"#{signature.get('Id')}":
        raise _Wrapped("the signature needs exactly one QualifyingProperties targeting it")
    signed_properties = qualifying[0].findall("xades:SignedProperties", NS)
    if len(signed_properties) != 1:
        raise _Wrapped("the signature needs exactly one SignedProperties")
    key_info = signature.find("ds:KeyInfo", NS)
    objects = {
        obj.get("Id"): obj
        for obj in signature.findall("ds:Object", NS)
        if obj.find("xades:QualifyingProperties", NS) is None and obj.get("Id")
    }
    document_uri: str | None = None
    signed_properties_hit = False
    reference_ids: dict[str, str] = {}  # reference Id → object Id
    references = signature.findall("ds:SignedInfo/ds:Reference", NS)
    for reference in references:
        uri = reference.get("URI")
        if uri is None or uri.startswith("#xpointer("):
            raise _Wrapped("a reference without a URI, or an XPointer one")
        if not uri.startswith("#"):
            transforms = {
                t.get("Algorithm") for t in reference.findall("ds:Transforms/ds:Transform", NS)
            }
            if document_uri is not None:
                raise _Wrapped("more than one reference to the document")
            if uri == "" and not (enveloped_place and _ENVELOPED in transforms):
                raise _Wrapped('URI="" without the enveloped signature it needs')
            if uri and not detached_place:
                raise _Wrapped("an external reference from an enveloped signature")
            document_uri = uri
            continue
        targets = ids.get(uri[1:], [])
        if len(targets) != 1:
            raise _Wrapped(f"reference {uri} resolves to {len(targets)} elements")
        target = targets[0]
        if target is signed_properties[0]:
            signed_properties_hit = True
        elif reference.get("Type") == _SIGNED_PROPERTIES_TYPE:
            raise _Wrapped("the SignedProperties reference hits another element")
        elif target is key_info:
            pass
        elif target.get("Id") in objects and objects[str(target.get("Id"))] is target:
            if reference.get("Id"):
                reference_ids[str(reference.get("Id"))] = str(target.get("Id"))
        else:
            raise _Wrapped(f"reference {uri} hits an element outside this signature")
    if document_uri is None or not signed_properties_hit:
        raise _Wrapped("the signature covers no document or not its own SignedProperties")
    return _Layout(
        document_uri, _evidence(signed_properties[0], reference_ids, objects), len(references)
    )


def _evidence(
    signed_properties: etree._Element,
    reference_ids: Mapping[str, str],
    objects: Mapping[str | None, etree._Element],
) -> dict[str, bytes]:
    """The grant evidence: each referenced ds:Object named by its DataObjectFormat
    (``name: description``, as dairi's signer writes it)."""
    files: dict[str, bytes] = {}
    for data_format in signed_properties.findall(
        "xades:SignedDataObjectProperties/xades:DataObjectFormat", NS
    ):
        reference = (data_format.get("ObjectReference") or "").lstrip("#")
        if reference not in reference_ids:
            continue
        name = (data_format.findtext("xades:Description", namespaces=NS) or "").split(":")[0]
        obj = objects[reference_ids[reference]]
        try:
            files[name] = base64.b64decode(obj.text or "", validate=False)
        except (binascii.Error, ValueError):
            continue
    return files


# -- reading the signature -------------------------------------------------------------


def _b64_all(signature: etree._Element, path: str) -> list[bytes]:
    values = []
    for element in signature.findall(path, NS):
        try:
            values.append(base64.b64decode(element.text or ""))
        except (binascii.Error, ValueError):
            continue
    return values


def _signing_certificate(signature: etree._Element, candidates: Iterable[bytes]) -> bytes:
    digest_text = signature.findtext(
        f"{_SSP}/xades:SigningCertificateV2/xades:Cert/xades:CertDigest/ds:DigestValue",
        namespaces=NS,
    ) or signature.findtext(
        f"{_SSP}/xades:SigningCertificate/xades:Cert/xades:CertDigest/ds:DigestValue",
        namespaces=NS,
    )
    if digest_text is None:
        raise InvalidInput("no SigningCertificateV2 in the signed properties")
    digest = base64.b64decode(digest_text)
    for der in candidates:
        if digest in (hashlib.sha256(der).digest(), hashlib.sha1(der).digest()):  # noqa: S324
            return der
    raise InvalidInput("the signing certificate is not in the signature")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _element_c14n(element: etree._Element, algorithm: str | None) -> bytes:
    exclusive = bool(algorithm and algorithm.startswith(_EXCLUSIVE_C14N))
    return bytes(etree.tostring(element, method="c14n", exclusive=exclusive, with_comments=False))


@dataclass(frozen=True)
class _Evidence:
    """Validation data a signature carries plus what the relying party gave."""

    certs: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    ocsps: tuple[bytes, ...]
    has_values: bool  # CertificateValues and RevocationValues present (B-LT)


def _validation_context(
    trust: VerificationTrust, data: _Evidence, moment: datetime
) -> ValidationContext:
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(r) for r in trust.roots],
        other_certs=[asn1_x509.Certificate.load(c) for c in data.certs],
        crls=[*data.crls, *trust.crls],
        ocsps=[*data.ocsps, *trust.ocsps],
        moment=moment,
        best_signature_time=moment,
        allow_fetching=trust.allow_fetching,
        fetcher_backend=trust.fetcher_backend,
        revocation_mode="hard-fail",
        retroactive_revinfo=True,
    )


async def _timestamp(
    element: etree._Element, imprinted: bytes, trust: VerificationTrust, data: _Evidence, kind: str
) -> tuple[TimestampReport, bool]:
    """The report of one XAdES time-stamp over ``imprinted``, and whether it is intact
    (its imprint matches)."""
    encoded = element.findtext("xades:EncapsulatedTimeStamp", namespaces=NS) or ""
    try:
        token = cms.ContentInfo.load(base64.b64decode(encoded))
        signed_data = token["content"]
        info = signed_data["encap_content_info"]["content"].parsed
        if not isinstance(info, tsp.TSTInfo):
            raise ValueError("not a time-stamp token")
        when: datetime = info["gen_time"].native
        status = await validate_tst_signed_data(
            signed_data,
            _validation_context(trust, data, when),
            lambda algorithm: hashlib.new(algorithm, imprinted).digest(),
        )
    except (ValueError, TypeError, KeyError, binascii.Error, SignatureValidationError):
        return TimestampReport(kind, datetime.fromtimestamp(0, UTC), "?", False), False
    signer = status.get("signing_cert")
    tsa = signer.subject.human_friendly if signer is not None else "?"
    # pyHanko's status keywords: trusted when path validation left no problem.
    trusted = status.get("trust_problem_indic") is None and status.get("validation_path")
    valid = bool(status.get("intact") and status.get("valid") and trusted)
    return TimestampReport(kind, when, tsa, valid), bool(status.get("intact"))


async def _timestamps(
    signature: etree._Element,
    name: str,
    kind: str,
    imprint_of: Callable[[etree._Element], bytes],
    trust: VerificationTrust,
    data: _Evidence,
) -> tuple[list[TimestampReport], bool]:
    """The reports of the signature's unsigned ``name`` time-stamps, each over
    ``imprint_of(element)``, and whether one of them is broken (its imprint differs)."""
    reports: list[TimestampReport] = []
    broken = False
    for element in signature.findall(f"{_USP}/{name}", NS):
        report, intact = await _timestamp(element, imprint_of(element), trust, data, kind)
        reports.append(report)
        broken |= not intact
    return reports, broken


def _archive_input(
    signature: etree._Element, archive: etree._Element, detached_root: etree._Element | None
) -> bytes:
    """What ``archive`` time-stamped: the input at the time it was added (the
    unsigned properties before it), computed on a copy of the document."""
    document = signature.getroottree()
    position = list(signature.getroottree().getroot().iter()).index(archive)
    copy = etree.fromstring(etree.tostring(document, encoding="utf-8")).getroottree()
    archive_copy = list(copy.getroot().iter())[position]
    usp = archive_copy.getparent()
    assert usp is not None
    for later in [archive_copy, *archive_copy.itersiblings()]:
        usp.remove(later)
    signature_copy = usp.getparent()
    while signature_copy is not None and signature_copy.tag != etree.QName(_DS, "Signature"):
        signature_copy = signature_copy.getparent()
    assert signature_copy is not None
    return archive_timestamp_input(signature_copy, detached_root)


async def _validate_signer(
    cert_der: bytes, trust: VerificationTrust, data: _Evidence, moment: datetime, proven: bool
) -> tuple[str | None, str | None]:
    """(sub-indication, message) of the signer certificate's validation at
    ``moment``; (None, None) when it holds. ``proven``: a time-stamp proves the
    signature existed at ``moment``, so a revocation before it is conclusive."""
    validator = CertificateValidator(
        asn1_x509.Certificate.load(cert_der),
        intermediate_certs=[asn1_x509.Certificate.load(c) for c in data.certs],
        validation_context=_validation_context(trust, data, moment),
    )
    try:
        await validator.async_validate_usage({"non_repudiation"})
    except RevokedError as exc:
        if exc.is_ee_cert and proven:
            return (
                AdESFailure.REVOKED.name,
                "the signer's certificate was revoked before the signature",
            )
        return AdESIndeterminate.REVOKED_NO_POE.name, exc.failure_msg
    except InsufficientRevinfoError as exc:
        return AdESIndeterminate.TRY_LATER.name, exc.failure_msg
    except ExpiredError as exc:
        return AdESIndeterminate.OUT_OF_BOUNDS_NO_POE.name, exc.failure_msg
    except NotYetValidError as exc:
        return AdESIndeterminate.NOT_YET_VALID.name, exc.failure_msg
    except PathBuildingError:
        return AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND.name, "no chain to a trusted root"
    except InvalidCertificateError as exc:
        return AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE.name, exc.failure_msg
    except (PathValidationError, ValidationError) as exc:
        return AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE.name, str(exc)
    return None, None


# -- one signature ---------------------------------------------------------------------


def _failed(
    signature: etree._Element,
    indication: Indication,
    sub: str,
    message: str,
    reasons: tuple[str, ...] = (),
    signer: SignerReport | None = None,
) -> SignatureReport:
    return SignatureReport(
        field_name=str(signature.get("Id") or "?"),
        indication=indication,
        sub_indication=sub,
        message=message,
        level=None,
        signer=signer or SignerReport(None, None, None, None, "?", "?", ""),
        claimed_signing_time=None,
        best_signature_time=None,
        timestamps=(),
        coverage=CoverageReport("UNCLEAR", None, 0, None),
        mandate=None,
        reasons=reasons,
        revocation_data=(),
    )


async def _report_one(
    signature: etree._Element,
    document: etree._Element,
    trust: VerificationTrust,
    purpose: Purpose | None,
    principal: str | None,
    at: datetime | None,
    detached: Mapping[str, bytes],
    max_bytes: int,
) -> SignatureReport:
    try:
        layout = _check_layout(signature, document)
    except _Wrapped as exc:
        return _failed(
            signature,
            Indication.TOTAL_FAILED,
            AdESFailure.FORMAT_FAILURE.name,
            f"signature wrapping: {exc}",
            (SIGNATURE_WRAPPING,),
        )
    key_info_certs = _b64_all(signature, "ds:KeyInfo/ds:X509Data/ds:X509Certificate")
    value_certs = _b64_all(
        signature, f"{_USP}/xades:CertificateValues/xades:EncapsulatedX509Certificate"
    )
    crls = _b64_all(
        signature, f"{_USP}/xades:RevocationValues/xades:CRLValues/xades:EncapsulatedCRLValue"
    )
    ocsps = _b64_all(
        signature, f"{_USP}/xades:RevocationValues/xades:OCSPValues/xades:EncapsulatedOCSPValue"
    )
    has_values = (
        signature.find(f"{_USP}/xades:CertificateValues", NS) is not None
        and signature.find(f"{_USP}/xades:RevocationValues", NS) is not None
    )
    data = _Evidence(
        tuple(dict.fromkeys(key_info_certs + value_certs)), tuple(crls), tuple(ocsps), has_values
    )
    try:
        signer_der = _signing_certificate(signature, key_info_certs)
        signer_cert = x509.load_der_x509_certificate(signer_der)
        signer = signer_report(asn1_x509.Certificate.load(signer_der))
    except (InvalidInput, ValueError, binascii.Error) as exc:
        return _failed(
            signature, Indication.TOTAL_FAILED, AdESFailure.FORMAT_FAILURE.name, str(exc)
        )

    # The document a detached signature covers, given by the caller under its URI.
    detached_root: etree._Element | None = None
    if layout.document_uri:
        given = detached.get(layout.document_uri)
        if given is None:
            return _failed(
                signature,
                Indication.INDETERMINATE,
                AdESIndeterminate.SIGNED_DATA_NOT_FOUND.name,
                f"the detached document {layout.document_uri!r} was not given",
                signer=signer,
            )
        detached_root = parse_untrusted_xml(given, max_bytes).getroot()

    claimed = _parse_time(signature.findtext(f"{_SSP}/xades:SigningTime", namespaces=NS))
    reasons: list[str] = []
    signature_value = cast(etree._Element, signature.find("ds:SignatureValue", NS))

    def over_signature_value(element: etree._Element) -> bytes:
        algorithm = element.find("ds:CanonicalizationMethod", NS)
        return _element_c14n(
            signature_value, algorithm.get("Algorithm") if algorithm is not None else None
        )

    on_signature, broken_on_signature = await _timestamps(
        signature, "xades:SignatureTimeStamp", "signature", over_signature_value, trust, data
    )
    archives, broken_archive = await _timestamps(
        signature,
        "xades141:ArchiveTimeStamp",
        "archive",
        lambda element: _archive_input(signature, element, detached_root),
        trust,
        data,
    )
    timestamps = on_signature + archives
    broken_timestamp = broken_on_signature or broken_archive
    best = min((r.time for r in on_signature if r.valid), default=None)
    archive_valid = any(r.valid for r in archives)

    moment = best or at or datetime.now(UTC)
    policy_id = signature.findtext(
        f"{_SSP}/xades:SignaturePolicyIdentifier/xades:SignaturePolicyId/xades:SigPolicyId/xades:Identifier",
        namespaces=NS,
    )
    try:
        XmlSignatureReader(str(signature.get("Id"))).verify(
            document,
            x509_cert=signer_cert,
            expect_signature_policy=_DAIRI_POLICY
            if policy_id == _DAIRI_POLICY.Identifier
            else None,
            expect_config=XAdESSignatureConfiguration(
                expect_references=layout.references, verification_time=moment
            ),
            uri_resolver=lambda uri: detached_root if uri == layout.document_uri else None,
        )
    except InvalidDigest as exc:
        return _failed(
            signature,
            Indication.TOTAL_FAILED,
            AdESFailure.HASH_FAILURE.name,
            str(exc),
            signer=signer,
        )
    except InvalidCertificate as exc:
        return _failed(
            signature,
            Indication.INDETERMINATE,
            AdESIndeterminate.OUT_OF_BOUNDS_NO_POE.name,
            str(exc),
            signer=signer,
        )
    except XmlInvalidSignature as exc:
        return _failed(
            signature,
            Indication.TOTAL_FAILED,
            AdESFailure.SIG_CRYPTO_FAILURE.name,
            str(exc),
            signer=signer,
        )
    except (SignXMLException, ValueError, etree.LxmlError) as exc:
        return _failed(
            signature,
            Indication.TOTAL_FAILED,
            AdESFailure.FORMAT_FAILURE.name,
            str(exc),
            signer=signer,
        )

    sub, message = await _validate_signer(signer_der, trust, data, moment, best is not None)
    if sub is None:
        indication = Indication.TOTAL_PASSED
    elif sub in AdESFailure.__members__:
        indication = Indication.TOTAL_FAILED
    else:
        indication = Indication.INDETERMINATE
    if broken_timestamp and indication is not Indication.TOTAL_FAILED:
        # Conclusive: what a time-stamp covered was changed afterwards.
        indication, sub = Indication.TOTAL_FAILED, AdESFailure.HASH_FAILURE.name
        message = "a time-stamp does not cover what the signature holds"

    level: PadesLevel | None = None
    if indication is Indication.TOTAL_PASSED or sub == AdESIndeterminate.TRY_LATER.name:
        level = PadesLevel.B_B
        if best is not None:
            level = PadesLevel.B_T
            if has_values:
                level = PadesLevel.B_LT
                if archive_valid:
                    level = PadesLevel.B_LTA

    when = best or claimed or datetime.now(UTC)
    mandate: MandateReport | None = None
    role = _b64_all(
        signature,
        f"{_SSP}/xades:SignerRoleV2/xades:CertifiedRolesV2/xades:CertifiedRole/xades:X509AttributeCertificate",
    )
    if role:
        mandate = await judge_mandate(
            role[0],
            signer_der,
            layout.evidence,
            trust,
            purpose,
            principal,
            when,
            ([*crls, *trust.crls], [*ocsps, *trust.ocsps]),
        )
    verdict = mandate_verdict(Verdict(indication, sub, message), mandate, purpose)
    indication, sub, message = verdict.indication, verdict.sub_indication, verdict.message
    reasons.extend(verdict.reasons)
    return SignatureReport(
        field_name=str(signature.get("Id") or "?"),
        indication=indication,
        sub_indication=sub,
        message=message,
        level=level,
        signer=signer,
        claimed_signing_time=claimed,
        best_signature_time=best,
        timestamps=tuple(timestamps),
        coverage=CoverageReport(
            SignatureCoverageLevel.ENTIRE_FILE.name
            if not layout.document_uri
            else f"DETACHED:{layout.document_uri}",
            None,
            0,
            None,
        ),
        mandate=mandate,
        reasons=tuple(dict.fromkeys(reasons)),
        revocation_data=revocation_sources(
            "document RevocationValues" if (crls or ocsps) else None, trust
        ),
    )


# -- the document ----------------------------------------------------------------------


async def async_verify_xml(
    xml: bytes,
    trust: VerificationTrust,
    purpose: Purpose | None = None,
    *,
    principal: str | None = None,
    at: datetime | None = None,
    detached: Mapping[str, bytes] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> VerificationReport:
    """See :func:`verify_xml`."""
    document = parse_untrusted_xml(xml, max_bytes).getroot()
    signatures = [
        s
        for s in document.iter(etree.QName(_DS, "Signature").text)
        if s.find("ds:Object/xades:QualifyingProperties", NS) is not None
    ]
    if not signatures:
        raise DocumentNotSigned("the XML carries no XAdES signature")
    with remembered_asn1():
        reports = [
            await _report_one(s, document, trust, purpose, principal, at, detached or {}, max_bytes)
            for s in signatures
        ]
    return report_of(xml, reports, purpose, principal, at)


def verify_xml(
    xml: bytes,
    trust: VerificationTrust,
    purpose: Purpose | None = None,
    *,
    principal: str | None = None,
    at: datetime | None = None,
    detached: Mapping[str, bytes] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> VerificationReport:
    """Verify every XAdES signature of ``xml`` (DESIGN §7) against ``trust``, offline
    unless ``trust.allow_fetching``; the report is :func:`~signing.verification.verify_pdf`'s.

    ``detached`` maps a detached signature's reference URI to the document it signs
    (without it that signature is ``INDETERMINATE``/``SIGNED_DATA_NOT_FOUND``).
    ``purpose`` and ``principal`` are judged against each signature's mandate at its
    time; ``at`` is the validation time when no time-stamp proves one. Raises
    :class:`~signing.errors.DocumentTooLarge`, :class:`~signing.xml_safety.XmlUnsafe`,
    :class:`~signing.xml_safety.DocumentNotXml` or
    :class:`~signing.verification.DocumentNotSigned` for input that is not signed XML.
    """
    return asyncio.run(
        async_verify_xml(
            xml,
            trust,
            purpose,
            principal=principal,
            at=at,
            detached=detached,
            max_bytes=max_bytes,
        )
    )
