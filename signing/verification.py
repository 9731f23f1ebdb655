"""Verification of signed PDFs for relying parties (DESIGN §7): one report per signature.

Built on pyHanko's AdES validation (ETSI EN 319 102-1): a signature followed by a
document timestamp (B-LTA) goes through ``ades_lta_validation``, the others through
``ades_with_time_validation``, both fed with the document's DSS and whatever
revocation data the relying party supplies, and offline unless it allows fetching.
The indications follow ETSI TS 119 102-1: ``TOTAL_PASSED``, ``TOTAL_FAILED``,
``INDETERMINATE`` with pyHanko's sub-indication. On top of that dairi judges what a
procuring entity asks: who signed for which corporation, and (see
:mod:`signing.mandate_check`) under which mandate. A mandate that does not hold, or a
change after signing that a reader would see, fails the signature with the
sub-indication ``SIG_CONSTRAINTS_FAILURE`` and reason codes: for dairi's policy these
are conclusive, not a lack of information.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import enum
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO

from asn1crypto import cms, crl, ocsp, x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodeLimits, DocumentDecodeBudget, StreamDecodeLimits
from pyhanko.pdf_utils.misc import PdfDecodeLimitError, PdfError, PdfStreamError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESPassed, AdESSubIndic
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, DiffResult, ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import ades, generic_cms
from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.status import PdfSignatureStatus, StandardCMSSignatureStatus
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.fetchers.api import FetcherBackend
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

from delegation.scope import Purpose
from signing.errors import DocumentError, DocumentMalformed, DocumentNotPdf, DocumentTooLarge
from signing.mandate_evidence import evidence_file_names
from signing.pades import PadesLevel
from signing.verification_asn1 import remembered_asn1
from signing.verification_cache import BoundedCache, cache, digest_of
from signing.verification_mandate import STATUS_UNKNOWN, check_mandate, embedded_files, leaf_ac

DEFAULT_MAX_BYTES = 50 * 1024 * 1024


class DocumentNotSigned(DocumentError):
    """The PDF carries no signature to verify."""

    code = "DOCUMENT_NOT_SIGNED"


class Indication(enum.Enum):
    """ETSI TS 119 102-1 main indications (the names are the report's values)."""

    TOTAL_PASSED = enum.auto()
    TOTAL_FAILED = enum.auto()
    INDETERMINATE = enum.auto()


# dairi's own constraint failures (mandate, modification) are reported with this.
CONSTRAINTS_FAILURE = AdESIndeterminate.SIG_CONSTRAINTS_FAILURE.name
MODIFIED_AFTER_SIGNING = "DOCUMENT_MODIFIED_AFTER_SIGNING"


@dataclass(frozen=True)
class VerificationTrust:
    """What the relying party trusts and knows, all DER.

    ``roots``: anchors for signers and TSAs; ``aa_certificates``: attribute authorities
    whose mandate ACs are accepted; ``registration_roots``: anchors for the
    representatives' registration certificates (the root grant's evidence);
    ``crls``/``ocsps``: revocation data besides the document's own. Offline unless
    ``allow_fetching`` (then ``fetcher_backend`` or pyHanko's default one is used).
    """

    roots: tuple[bytes, ...]
    aa_certificates: tuple[bytes, ...] = ()
    registration_roots: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()
    ocsps: tuple[bytes, ...] = ()
    allow_fetching: bool = False
    fetcher_backend: FetcherBackend | None = None
    # Titles that make a registration certificate's holder a representative (代表者).
    representative_titles: tuple[str, ...] = (
        "代表取締役",
        "代表執行役",
        "代表理事",
        "代表社員",
        "代表者",
        "理事長",
    )


@dataclass(frozen=True)
class SignerReport:
    """Who signed: from the signer's certificate."""

    name: str | None
    organization: str | None  # O= 商号
    organization_identifier: str | None  # NTRJP-<法人番号>
    corporate_number: str | None  # 法人番号
    subject: str
    issuer: str
    certificate_sha256: str


@dataclass(frozen=True)
class TimestampReport:
    """A time-stamp: ``signature`` (over the signature value) or ``document`` (B-LTA)."""

    kind: str
    time: datetime
    tsa: str
    valid: bool


@dataclass(frozen=True)
class CoverageReport:
    """What the signature covers and what changed after it (pyHanko's diff analysis)."""

    coverage: str  # ENTIRE_FILE, ENTIRE_REVISION, ...
    modification_level: str | None  # NONE, LTA_UPDATES, FORM_FILLING, ANNOTATIONS, OTHER
    revisions_after: int
    changes_allowed: bool | None


@dataclass(frozen=True)
class HopReport:
    """One mandate of the chain (depth 0: the representative's grant; > 0: 復代理)."""

    mandate_id: str
    depth: int
    principal_name: str
    principal_corporate_number: str
    grantor: str
    grantee: str
    actions: tuple[str, ...]
    procuring_entities: tuple[str, ...] | None
    cases: tuple[str, ...] | None
    amount_limit_jpy: int | None
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class RootGrantReport:
    """The root grant checked from the evidence embedded in the document."""

    checked: bool
    representative: str | None
    title: str | None
    corporation: str | None
    corporate_number: str | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class MandateReport:
    """The mandate a signature was made under, judged at the signing time."""

    present: bool
    holds: bool
    covers_purpose: bool | None  # None: no purpose asked
    at: datetime | None
    hops: tuple[HopReport, ...]
    root_grant: RootGrantReport | None
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SignatureReport:
    field_name: str
    indication: Indication
    sub_indication: str | None
    message: str | None
    level: PadesLevel | None
    signer: SignerReport
    claimed_signing_time: datetime | None
    best_signature_time: datetime | None
    timestamps: tuple[TimestampReport, ...]
    coverage: CoverageReport
    mandate: MandateReport | None
    reasons: tuple[str, ...]
    revocation_data: tuple[str, ...]  # where the revocation data came from


@dataclass(frozen=True)
class VerificationReport:
    """The report on one document (DESIGN §7)."""

    indication: Indication  # the worst of its signatures
    verified_at: datetime
    document_sha256: str
    purpose: dict[str, object] | None
    signatures: tuple[SignatureReport, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict (times ISO 8601, enums by name)."""
        return _jsonable(dataclasses.asdict(self))  # type: ignore[return-value]


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, PadesLevel):
        return value.value
    if isinstance(value, enum.Enum):
        return value.name
    return value


# -- reading the document ----------------------------------------------------------


_MAX_FAST_GAPS = 64
_BYTE_RANGE = re.compile(
    rb"/ByteRange\s*\[\s*(\d{1,12})\s+(\d{1,12})\s+(\d{1,12})\s+(\d{1,12})\s*\]"
)


class SignedPdfReader(PdfFileReader):
    """pyHanko's reader, reading each signature's ``/Contents`` with ``bytes.fromhex``.

    pyHanko parses a hex string one character at a time, which for a signature's
    /Contents (tens of kilobytes) is about half of a verification. The /ByteRange
    says where that string is: the gap between its two ranges is exactly ``<hex>``.
    When the object being read contains such a gap, the object is parsed with the gap
    replaced by a short random placeholder, and the decoded bytes are put back as
    /Contents only if the placeholder came out as the object's /Contents; anything
    else (a gap that is not /Contents, odd or spaced hex, an encrypted document, a
    stream) is read by pyHanko's own parser. Only this reader is affected: pyHanko is
    not patched.
    """

    def __init__(self, pdf: bytes) -> None:
        self._pdf = pdf
        gaps = set()
        for match in _BYTE_RANGE.finditer(pdf):
            start, end = int(match[1]) + int(match[2]), int(match[3])
            if 0 < start < end <= len(pdf) and pdf[start] == 0x3C and pdf[end - 1] == 0x3E:
                gaps.add((start, end))
            if len(gaps) >= _MAX_FAST_GAPS:  # a document made of /ByteRanges: pyHanko's way
                break
        self._gaps = sorted(gaps)
        self._gap_starts = [start for start, _ in self._gaps]
        self._placeholder = secrets.token_bytes(16)
        super().__init__(BytesIO(pdf), strict=False, decode_limits=VERIFICATION_DECODE_LIMITS)

    def _gap_in(self, marker: int) -> tuple[int, int] | None:
        """The first gap after ``marker`` if no ``endobj`` comes between (the object
        starting at ``marker`` may then hold it; the parse below decides)."""
        i = bisect.bisect_right(self._gap_starts, marker)
        if i == len(self._gaps):
            return None
        start, end = self._gaps[i]
        return (start, end) if self._pdf.find(b"endobj", marker, start) == -1 else None

    def _read_object(self, ref, marker, never_decrypt=False, as_metadata_stream=False):  # type: ignore[no-untyped-def]
        gap = self._gap_in(marker) if isinstance(marker, int) and self._gaps else None
        if gap is None or self.encrypted:
            return super()._read_object(ref, marker, never_decrypt, as_metadata_stream)
        start, end = gap
        hex_digits = self._pdf[start + 1 : end - 1]
        try:
            contents = bytes.fromhex(hex_digits.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            contents = None
        if contents is None or len(contents) * 2 != len(hex_digits):
            return super()._read_object(ref, marker, never_decrypt, as_metadata_stream)
        stream = self.stream
        self.stream = BytesIO(
            self._pdf[marker:start]
            + b"<"
            + self._placeholder.hex().encode()
            + b">"
            + self._pdf[end:]
        )
        try:
            obj = super()._read_object(ref, 0, never_decrypt, as_metadata_stream)
        finally:
            self.stream = stream
        placed = obj.raw_get("/Contents") if isinstance(obj, generic.DictionaryObject) else None
        if (
            isinstance(obj, generic.StreamObject)
            or not isinstance(placed, generic.TextStringObject | generic.ByteStringObject)
            or placed.original_bytes != self._placeholder
        ):
            return super()._read_object(ref, marker, never_decrypt, as_metadata_stream)
        obj["/Contents"] = generic.pdf_string(contents)
        return obj


# What a PDF bomb raises wherever the verifier reads it: objects nested deeper than the
# parser goes, a stream beyond its limits (PdfDecodeLimitError) or past the file's end.
HOSTILE_PDF = (RecursionError, PdfStreamError)

# Tighter than pyHanko's defaults for untrusted input (256 MiB a stream, and a budget of
# 100x the file for a document): a verification never needs more.
VERIFICATION_DECODE_LIMITS = DecodeLimits(
    per_stream=StreamDecodeLimits(max_output_size=64 * 1024 * 1024),
    document_budget=DocumentDecodeBudget(base_allowance=128 * 1024 * 1024, max_ratio=20),
)


def hostile_pdf(exc: BaseException) -> DocumentMalformed:
    """The refusal of a PDF whose reading raised ``exc`` (one of :data:`HOSTILE_PDF`)."""
    if isinstance(exc, RecursionError):
        return DocumentMalformed("the PDF nests objects deeper than a reader follows")
    if isinstance(exc, PdfDecodeLimitError):
        return DocumentMalformed("a stream of the PDF decodes to more data than allowed")
    return DocumentMalformed("a stream of the PDF cannot be read")


def open_signed_pdf(pdf: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> PdfFileReader:
    """A reader over ``pdf`` with at least one signature.

    Raises :class:`DocumentTooLarge`, :class:`DocumentNotPdf`, :class:`DocumentMalformed`
    or :class:`DocumentNotSigned`.
    """
    return _signed_document(pdf, max_bytes).reader


@dataclass(frozen=True)
class _SignedDocument:
    """What a verification reads of the whole document, each read once (pyHanko parses
    every signature's CMS again on each reading of its list)."""

    reader: PdfFileReader
    signatures: list[EmbeddedPdfSignature]
    doc_timestamps: list[EmbeddedPdfSignature]
    dss: _DssContents
    signature_fields: frozenset[str]  # filled or not: filling one later is harmless
    files: dict[str, bytes]  # embedded files by name (the mandates' evidence)
    # Mandate evidence embedded while no signature names a mandate (an AC removed).
    evidence_without_ac: bool


def _signed_document(pdf: bytes, max_bytes: int) -> _SignedDocument:
    if len(pdf) > max_bytes:
        raise DocumentTooLarge(f"document is {len(pdf)} bytes; the limit is {max_bytes}")
    if b"%PDF-" not in pdf[:1024]:
        raise DocumentNotPdf("the document is not a PDF (no %PDF- header)")
    if b"%%EOF" not in pdf[-2048:]:
        raise DocumentMalformed("the PDF is truncated (no %%EOF marker at its end)")
    try:
        reader = SignedPdfReader(pdf)
        signatures = reader.embedded_regular_signatures
        doc_timestamps = reader.embedded_timestamp_signatures
        dss = _dss_contents(reader) if signatures else _DssContents()
        signature_fields = frozenset(name for name, _, _ in enumerate_sig_fields(reader))
        files = embedded_files(reader)
        evidence_without_ac = evidence_file_names(0)[0] in files and not any(
            leaf_ac(s) for s in signatures
        )
    except HOSTILE_PDF as exc:
        raise hostile_pdf(exc) from exc
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DocumentMalformed("the PDF cannot be read") from exc
    if not signatures:
        raise DocumentNotSigned("the PDF carries no signature")
    return _SignedDocument(
        reader, signatures, doc_timestamps, dss, signature_fields, files, evidence_without_ac
    )


@dataclass(frozen=True)
class _DssContents:
    """The DSS's CRLs, OCSP responses and certificates, DER."""

    crls: tuple[bytes, ...] = ()
    ocsps: tuple[bytes, ...] = ()
    certs: tuple[bytes, ...] = ()

    @property
    def has_revinfo(self) -> bool:
        return bool(self.crls or self.ocsps)


def _dss_contents(reader: PdfFileReader) -> _DssContents:
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return _DssContents()
    return _DssContents(
        crls=tuple(c.get_object().data for c in dss.crls),
        ocsps=tuple(o.get_object().data for o in dss.ocsps),
        certs=tuple(c.dump() for c in dss.load_certs()),
    )


# Parsed once per process for the CRLs, OCSP responses and roots every document shares.
_CRL_CONTAINERS: BoundedCache[tuple[CRLContainer, ...]] = cache("crl containers")
_OCSP_CONTAINERS: BoundedCache[tuple[OCSPContainer, ...]] = cache("ocsp containers")
_CERT_POLICIES: BoundedCache[CertValidationPolicySpec] = cache("certificate validation policies")


def _crl_containers(ders: tuple[bytes, ...]) -> list[CRLContainer]:
    made = _CRL_CONTAINERS.get_or_compute(
        digest_of(ders), lambda: tuple(CRLContainer(crl.CertificateList.load(c)) for c in ders)
    )
    return list(made)


def _ocsp_containers(ders: tuple[bytes, ...]) -> list[OCSPContainer]:
    made = _OCSP_CONTAINERS.get_or_compute(
        digest_of(ders),
        lambda: tuple(c for o in ders for c in OCSPContainer.load_multi(ocsp.OCSPResponse.load(o))),
    )
    return list(made)


def _knowledge_of(contents: _DssContents) -> LocalKnowledge:
    return LocalKnowledge(
        known_ocsps=_ocsp_containers(contents.ocsps),
        known_crls=_crl_containers(contents.crls),
        known_certs=[x509.Certificate.load(c) for c in contents.certs],
    )


def _trust_knowledge(trust: VerificationTrust) -> LocalKnowledge:
    return LocalKnowledge(
        known_ocsps=_ocsp_containers(trust.ocsps), known_crls=_crl_containers(trust.crls)
    )


def _merge(a: LocalKnowledge, b: LocalKnowledge) -> LocalKnowledge:
    return LocalKnowledge(
        known_ocsps=a.known_ocsps + b.known_ocsps,
        known_crls=a.known_crls + b.known_crls,
        known_certs=a.known_certs + b.known_certs,
    )


def _validation_spec(
    trust: VerificationTrust, knowledge: LocalKnowledge
) -> SignatureValidationSpec:
    policy: CertValidationPolicySpec = _CERT_POLICIES.get_or_compute(
        digest_of(trust.roots),
        lambda: CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(
                trust_roots=[x509.Certificate.load(r) for r in trust.roots]
            ),
            revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
        ),
    )
    rule = (
        RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH
        if trust.allow_fetching
        else RevinfoOnlineFetchingRule.LOCAL_ONLY
    )
    return SignatureValidationSpec(
        cert_validation_policy=policy,
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=rule, fetcher_backend=trust.fetcher_backend
        ),
        local_knowledge=knowledge,
    )


# -- the parts of a report ---------------------------------------------------------


def _name_text(name: x509.Name) -> str:
    return name.human_friendly


def signer_report(cert: x509.Certificate) -> SignerReport:
    subject = cert.subject.native
    org_id = subject.get("organization_identifier")
    number = (
        org_id[len("NTRJP-") :] if isinstance(org_id, str) and org_id.startswith("NTRJP-") else None
    )
    return SignerReport(
        name=subject.get("common_name"),
        organization=subject.get("organization_name"),
        organization_identifier=org_id,
        corporate_number=number,
        subject=_name_text(cert.subject),
        issuer=_name_text(cert.issuer),
        certificate_sha256=hashlib.sha256(cert.dump()).hexdigest(),
    )


def _tst_time_and_tsa(signed_data: cms.SignedData) -> tuple[datetime, str]:
    info = signed_data["encap_content_info"]["content"].parsed
    sid = signed_data["signer_infos"][0]["sid"]
    tsa = "?"
    for choice in signed_data["certificates"] or ():
        cert = choice.chosen
        if isinstance(cert, x509.Certificate) and sid.name == "issuer_and_serial_number":
            issuer = sid.chosen["issuer"]
            if cert.serial_number == sid.chosen["serial_number"].native and (
                cert.issuer.dump() == issuer.dump() or cert.issuer == issuer
            ):
                tsa = _name_text(cert.subject)
    return info["gen_time"].native, tsa


def _document_timestamps(
    doc_timestamps: list[EmbeddedPdfSignature], after_revision: int
) -> list[EmbeddedPdfSignature]:
    return [ts for ts in doc_timestamps if ts.signed_revision > after_revision]


def _subindication_name(subindic: AdESSubIndic | None) -> str | None:
    return subindic.name if isinstance(subindic, enum.Enum) else None


def _indication_of(subindic: AdESSubIndic | None) -> Indication:
    if isinstance(subindic, AdESPassed):
        return Indication.TOTAL_PASSED
    if isinstance(subindic, AdESFailure):
        return Indication.TOTAL_FAILED
    return Indication.INDETERMINATE


def _coverage(embedded: EmbeddedPdfSignature, signature_fields: frozenset[str]) -> CoverageReport:
    """pyHanko's diff analysis, judged: a form field other than a signature field whose
    value changed after signing is a change a reader sees (the amount of a bid), even
    where the signature's DocMDP permissions allow form filling."""
    reader = embedded.reader
    integrity = embedded.summarise_integrity_info()
    coverage = integrity["coverage"]
    diff = integrity["diff_result"]
    allowed = integrity["docmdp_ok"]
    if isinstance(diff, DiffResult):
        level: ModificationLevel | None = diff.modification_level
        if diff.changed_form_fields - signature_fields:
            allowed = False
    else:
        level = None if diff is None else ModificationLevel.OTHER
    return CoverageReport(
        coverage=coverage.name if coverage is not None else "UNCLEAR",
        modification_level=level.name if level is not None else None,
        revisions_after=reader.xrefs.total_revisions - 1 - embedded.signed_revision,
        changes_allowed=allowed,
    )


async def _validate_one(
    embedded: EmbeddedPdfSignature,
    trust: VerificationTrust,
    knowledge: LocalKnowledge,
    at: datetime | None,
    dss_contents: _DssContents,
    doc_timestamps: list[EmbeddedPdfSignature],
) -> tuple[ades.AdESBasicValidationResult, bool]:
    """pyHanko's AdES validation of one signature; True when it ran the LTA process.

    ``knowledge`` holds the relying party's data; the DSS is read by the LTA process
    itself and added here (``dss_contents``) for the others."""
    timing = ValidationTimingInfo(at, at, point_in_time_validation=True) if at else None
    if doc_timestamps:
        # The LTA process runs the diff analysis of every signature and reads the DSS.
        result = await ades.ades_lta_validation(
            embedded,
            PdfSignatureValidationSpec(_validation_spec(trust, knowledge), DEFAULT_DIFF_POLICY),
            timing_info=timing,
        )
        return result, True
    embedded.compute_integrity_info(DEFAULT_DIFF_POLICY)
    dss = _knowledge_of(dss_contents)
    spec = _validation_spec(trust, _merge(knowledge, dss))
    timestamped = any(generic_cms.extract_tst_data_iter(embedded.signer_info, signed=False))
    if not timestamped:  # B-B: basic validation (EN 319 102-1 §5.3)
        basic = await ades.ades_basic_validation(
            signed_data=embedded.signed_data,
            validation_spec=spec,
            timing_info=timing,
            raw_digest=embedded.compute_digest(),
        )
        return basic, False
    # B-T/B-LT: validation with time (§5.5).
    with_time = await ades.ades_with_time_validation(
        signed_data=embedded.signed_data,
        validation_spec=spec,
        timing_info=timing,
        raw_digest=embedded.compute_digest(),
        extra_status_kwargs=embedded.summarise_integrity_info(),
        status_cls=PdfSignatureStatus,
    )
    return with_time, False


def _level(
    result: ades.AdESBasicValidationResult,
    status: StandardCMSSignatureStatus | None,
    has_dss_revinfo: bool,
    doc_timestamps_valid: bool,
) -> PadesLevel | None:
    if status is None or not status.intact or not status.valid:
        return None
    level = PadesLevel.B_B
    ts = status.timestamp_validity
    if ts is not None and ts.intact and ts.valid and ts.trusted:
        level = PadesLevel.B_T
        if has_dss_revinfo:
            level = PadesLevel.B_LT
            if doc_timestamps_valid:
                level = PadesLevel.B_LTA
    return level


async def _report_one(
    embedded: EmbeddedPdfSignature,
    trust: VerificationTrust,
    purpose: Purpose | None,
    principal: str | None,
    at: datetime | None,
    document: _SignedDocument,
) -> SignatureReport:
    dss = document.dss
    has_revinfo = dss.has_revinfo
    given = _trust_knowledge(trust)
    doc_timestamps = _document_timestamps(document.doc_timestamps, embedded.signed_revision)
    try:
        result, lta = await _validate_one(embedded, trust, given, at, dss, doc_timestamps)
    except HOSTILE_PDF:
        raise  # the whole document is refused (async_verify_pdf)
    except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError) as exc:
        return _unreadable(embedded, exc)
    status = result.api_status
    indication = _indication_of(result.ades_subindic)
    sub = (
        None if indication is Indication.TOTAL_PASSED else _subindication_name(result.ades_subindic)
    )
    message = result.failure_msg if indication is not Indication.TOTAL_PASSED else None
    reasons: list[str] = []

    timestamps: list[TimestampReport] = []
    if status is not None and status.timestamp_validity is not None:
        ts = status.timestamp_validity
        timestamps.append(
            TimestampReport(
                "signature",
                ts.timestamp,
                _name_text(ts.signing_cert.subject),
                bool(ts.intact and ts.valid and ts.trusted),
            )
        )
    doc_ts_valid = lta and getattr(result, "oldest_evidence_record_timestamp", None) is not None
    for doc_ts in doc_timestamps:
        when, tsa = _tst_time_and_tsa(doc_ts.signed_data)
        timestamps.append(TimestampReport("document", when, tsa, doc_ts_valid))

    coverage = _coverage(embedded, document.signature_fields)
    if indication is Indication.TOTAL_PASSED and coverage.changes_allowed is False:
        indication, sub = Indication.TOTAL_FAILED, CONSTRAINTS_FAILURE
        message = "the document was changed after signing in a way a reader would see"
        reasons.append(MODIFIED_AFTER_SIGNING)

    best_time = getattr(result, "best_signature_time", None)
    when = best_time or embedded.self_reported_timestamp or datetime.now(UTC)
    revinfo = ([*trust.crls, *dss.crls], [*trust.ocsps, *dss.ocsps])
    mandate = await check_mandate(
        embedded, trust, purpose, principal, when, revinfo, document.files
    )
    verdict = mandate_verdict(
        Verdict(indication, sub, message), mandate, purpose, document.evidence_without_ac
    )
    indication, sub, message = verdict.indication, verdict.sub_indication, verdict.message
    reasons.extend(verdict.reasons)
    return SignatureReport(
        field_name=embedded.field_name,
        indication=indication,
        sub_indication=sub,
        message=message,
        level=_level(result, status, has_revinfo, doc_ts_valid),
        signer=signer_report(embedded.signer_cert),
        claimed_signing_time=embedded.self_reported_timestamp,
        best_signature_time=best_time,
        timestamps=tuple(timestamps),
        coverage=coverage,
        mandate=mandate,
        reasons=tuple(dict.fromkeys(reasons)),
        revocation_data=revocation_sources("document DSS" if has_revinfo else None, trust),
    )


@dataclass(frozen=True)
class Verdict:
    """A signature's indication, sub-indication, message and the reason codes added."""

    indication: Indication
    sub_indication: str | None
    message: str | None
    reasons: tuple[str, ...] = ()


def mandate_verdict(
    before: Verdict,
    mandate: MandateReport | None,
    purpose: Purpose | None,
    evidence_without_ac: bool = False,
) -> Verdict:
    """The verdict ``before`` once the signature's mandate is judged (PDF and XML): a
    mandate that does not hold fails a signature that passed, one whose status nothing
    proves leaves it undecided; with no mandate, a purpose asked (or a mandate's
    evidence carried without its AC) fails it with ``MANDATE_MISSING``."""
    indication, sub, message = before.indication, before.sub_indication, before.message
    reasons = list(before.reasons)
    if mandate is not None:
        reasons.extend(mandate.reasons)
        if indication is Indication.TOTAL_PASSED and mandate.reasons:
            if set(mandate.reasons) == {STATUS_UNKNOWN}:
                # Nothing says the mandate stood at the signing time, nor that it fell.
                indication, sub = Indication.INDETERMINATE, AdESIndeterminate.TRY_LATER.name
                message = "no revocation data from the attribute authority for the mandate"
            else:
                indication, sub = Indication.TOTAL_FAILED, CONSTRAINTS_FAILURE
                message = "the mandate does not hold for this signature"
    elif purpose is not None or evidence_without_ac:
        # A purpose was asked, or the document carries a mandate's evidence, but the
        # signature names no mandate (made without its AC, or the AC removed).
        reasons.append("MANDATE_MISSING")
        if indication is Indication.TOTAL_PASSED:
            indication, sub = Indication.TOTAL_FAILED, CONSTRAINTS_FAILURE
            message = "the signature was not made under a mandate"
    return Verdict(indication, sub, message, tuple(reasons))


def revocation_sources(in_document: str | None, trust: VerificationTrust) -> tuple[str, ...]:
    """Where the revocation data came from: the document (``in_document`` names the
    place, when it carries any), the relying party, the network."""
    sources = [in_document] if in_document else []
    if trust.crls or trust.ocsps:
        sources.append("relying party")
    if trust.allow_fetching:
        sources.append("online")
    return tuple(sources)


def _unreadable(embedded: EmbeddedPdfSignature, exc: Exception) -> SignatureReport:
    try:
        signer = signer_report(embedded.signer_cert)
    except (ValueError, KeyError, TypeError, SignatureValidationError):
        signer = SignerReport(None, None, None, None, "?", "?", "")
    return SignatureReport(
        field_name=embedded.field_name,
        indication=Indication.TOTAL_FAILED,
        sub_indication=AdESFailure.FORMAT_FAILURE.name,
        message=f"the signature cannot be read ({type(exc).__name__})",
        level=None,
        signer=signer,
        claimed_signing_time=None,
        best_signature_time=None,
        timestamps=(),
        coverage=CoverageReport("UNCLEAR", None, 0, None),
        mandate=None,
        reasons=(),
        revocation_data=(),
    )


_ORDER = (Indication.TOTAL_PASSED, Indication.INDETERMINATE, Indication.TOTAL_FAILED)


def worst(indications: Iterable[Indication]) -> Indication:
    return max(indications, key=_ORDER.index, default=Indication.INDETERMINATE)


def report_of(
    document: bytes,
    reports: Iterable[SignatureReport],
    purpose: Purpose | None,
    principal: str | None,
    at: datetime | None,
) -> VerificationReport:
    """The report on ``document`` from its signatures' reports (PDF and XML alike)."""
    reports = tuple(reports)
    asked: dict[str, object] | None = None
    if purpose is not None:
        asked = {
            "principal": principal,
            "action": purpose.action,
            "procuring_entity": purpose.procuring_entity,
            "case": purpose.case,
            "amount": purpose.amount_jpy,
        }
    return VerificationReport(
        indication=worst(r.indication for r in reports),
        verified_at=at or datetime.now(UTC),
        document_sha256=hashlib.sha256(document).hexdigest(),
        purpose=asked,
        signatures=reports,
    )


async def async_verify_pdf(
    pdf: bytes,
    trust: VerificationTrust,
    purpose: Purpose | None = None,
    *,
    principal: str | None = None,
    at: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> VerificationReport:
    """See :func:`verify_pdf`."""
    with remembered_asn1():
        document = _signed_document(pdf, max_bytes)
        try:
            reports = [
                await _report_one(sig, trust, purpose, principal, at, document)
                for sig in document.signatures
            ]
        except HOSTILE_PDF as exc:
            raise hostile_pdf(exc) from exc
    return report_of(pdf, reports, purpose, principal, at)


def verify_pdf(
    pdf: bytes,
    trust: VerificationTrust,
    purpose: Purpose | None = None,
    *,
    principal: str | None = None,
    at: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> VerificationReport:
    """Verify every signature of ``pdf`` (DESIGN §7) against ``trust``, at ``at`` (now
    by default), offline unless ``trust.allow_fetching``.

    ``purpose`` (with ``principal``, the 法人番号 the signer claims to act for) is
    judged against each signature's mandate at the signature's time (``purpose.at``
    is ignored). Raises :class:`DocumentTooLarge`, :class:`DocumentNotPdf`,
    :class:`DocumentMalformed` or :class:`DocumentNotSigned` for input that is not a
    signed PDF; everything about the signatures themselves is in the report.
    """
    return asyncio.run(
        async_verify_pdf(pdf, trust, purpose, principal=principal, at=at, max_bytes=max_bytes)
    )
