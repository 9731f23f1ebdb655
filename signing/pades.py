"""PAdES baseline signatures (B-B, B-T, B-LT, B-LTA) with pyHanko and an HSM key.

Where the time goes, and what dairi does about it (see bench/pades.py):

- pyHanko estimates the CMS size by building a dummy signature first unless
  ``bytes_reserved`` is given: dairi computes the reservation from the sizes of
  the certificates, the key and the TSA's token, so the document is signed once.
- The HSM session is logged in once per process (:mod:`hsm`), not per document.
- B-LT needs the signer's and the TSA's revocation data: dairi validates each
  certificate once and reuses the DER within its validity
  (:class:`~signing.validation_data.ValidationDataSource`) and writes the DSS
  from it directly, instead of re-validating the chain for every document.
- B-LTA puts the DSS and the document timestamp in one incremental update.

A signature made under a mandate (``PadesSpec.mandate``, DESIGN §6) adds, in the same
incremental update the signature covers: the grant evidence as embedded files
(EmbeddedFiles name tree and the catalogue's /AF, each with /AFRelationship, /Desc and
its MIME /Subtype), and in the CMS the leaf mandate AC (signer-attributes-v2,
certified attributes), the signature-policy-identifier and the AA's certificates; at
B-LT/B-LTA the DSS also holds the AC's CRL/OCSP and the AA certificate's validation
data. Without a mandate none of this runs: the plain path is unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import re
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from asn1crypto import algos, cms
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.embed import EmbeddedFileObject, EmbeddedFileParams, FileSpec, embed_file
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.ades.api import SignerAttributesProvider, SignerAttrSpec, SigPolicyIDProvider
from pyhanko.sign.ades.cades_asn1 import SignaturePolicyId, SignaturePolicyIdentifier
from pyhanko.sign.attributes import CMSAttributeProvider
from pyhanko.sign.fields import MDPPerm, SigFieldSpec
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.pdf_embedded import read_certification_data

from hsm import Hsm
from signing.credential import SigningCredential
from signing.errors import (
    DocumentCertifiedNoChanges,
    DocumentEncrypted,
    DocumentError,
    DocumentMalformed,
    DocumentNotPdf,
    DocumentTooLarge,
    SignerCertificateInvalid,
    SigningError,
    TimestampFailed,
)
from signing.hsm_signer import HsmSigner
from signing.mandate_evidence import (
    MANDATE_SIGNATURE_POLICY_DOCUMENT,
    MANDATE_SIGNATURE_POLICY_OID,
    EvidenceFile,
    MandateEvidence,
    MandateStamp,
)
from signing.stamp import JAPANESE_FONT, stamp_field, stamp_style
from signing.validation_data import TimestampAuthority, ValidationData, ValidationDataSource

# Room for signed attributes, algorithm identifiers and CMS structure around the
# certificates and the signature value; generous, the unused part is zero bytes.
_CMS_OVERHEAD = 2048
_TIMESTAMP_TOKEN_OVERHEAD = 3072
# signer-attributes-v2 and signature-policy-identifier around the AC and the hash.
_MANDATE_ATTRIBUTES_OVERHEAD = 512
A4_BOX = (0.0, 0.0, 595.28, 841.89)
# The relationships PDF 2.0 (ISO 32000-2 §14.13) allows for an associated file.
_AF_RELATIONSHIPS = frozenset(
    {"Source", "Data", "Alternative", "Supplement", "EncryptedPayload", "FormData", "Schema"}
)


class PadesLevel(enum.StrEnum):
    """ETSI EN 319 142-1 baseline levels."""

    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @property
    def timestamped(self) -> bool:
        return self is not PadesLevel.B_B

    @property
    def long_term(self) -> bool:
        return self in (PadesLevel.B_LT, PadesLevel.B_LTA)


@dataclass(frozen=True)
class PadesSpec:
    """What to produce: the level and the signature dictionary's descriptive entries."""

    level: PadesLevel = PadesLevel.B_B
    field_name: str | None = None  # None: Signature1, Signature2, ... as free
    reason: str | None = None
    location: str | None = None
    contact_info: str | None = None
    # Sign under this mandate (AC, evidence, policy); None: a plain signature.
    mandate: MandateEvidence | None = None


@dataclass(frozen=True)
class PadesResult:
    pdf: bytes
    level: PadesLevel
    field_name: str
    document_sha256: str
    signed_document_sha256: str


_OBJECT_HEADER = re.compile(rb"\s*(\d+)\s+(\d+)\s+obj\b")


def _check_xref_offsets(writer: IncrementalPdfFileWriter, document: bytes) -> None:
    """Every offset of every cross-reference section points at its object's header.

    pyHanko reads objects lazily, so a damaged cross-reference table shows only when
    a damaged entry is followed; a reader such as qpdf or poppler then rebuilds the
    table by scanning the file and may see other objects than the ones signed over.
    So dairi refuses the document (``DOCUMENT_MALFORMED``) instead of repairing it:
    the signer must sign what every reader sees. A regular expression per in-use
    entry (µs each; the pyHanko XRefCache is read through its documented-internal
    accessors, pinned by the lock file). Objects in object streams are checked when
    their stream is read.
    """
    xrefs = writer.prev.xrefs
    for revision in range(xrefs.total_revisions):
        for idnum, (generation, offset) in xrefs.get_xref_data(revision).standard_xrefs.items():
            found = _OBJECT_HEADER.match(document, offset) if 0 <= offset < len(document) else None
            if found is None or (int(found[1]), int(found[2])) != (idnum, generation):
                raise DocumentMalformed(
                    f"the PDF's cross-reference table is damaged (object {idnum} is not at "
                    f"offset {offset}); dairi does not repair documents it signs"
                )


def check_pdf(document: bytes, max_bytes: int) -> IncrementalPdfFileWriter:
    """Open ``document`` for an incremental update, refusing what cannot be signed.

    Raises :class:`DocumentTooLarge`, :class:`DocumentNotPdf`,
    :class:`DocumentMalformed` (also for a damaged cross-reference table),
    :class:`DocumentEncrypted` or :class:`DocumentCertifiedNoChanges`.
    """
    if len(document) > max_bytes:
        raise DocumentTooLarge(f"document is {len(document)} bytes; the limit is {max_bytes}")
    if b"%PDF-" not in document[:1024]:
        raise DocumentNotPdf("the document is not a PDF (no %PDF- header)")
    if b"%%EOF" not in document[-2048:]:
        raise DocumentMalformed("the PDF is truncated (no %%EOF marker at its end)")
    try:
        writer = IncrementalPdfFileWriter(BytesIO(document), strict=False)
        encrypted = writer.prev.encrypted
        writer.root  # noqa: B018 - forces the catalogue to resolve
        if not encrypted:
            writer.prev.root["/Pages"]
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DocumentMalformed("the PDF cannot be read") from exc
    if encrypted:
        raise DocumentEncrypted("encrypted PDFs are not signed; send the document unencrypted")
    _check_xref_offsets(writer, document)
    try:
        certification = read_certification_data(writer.prev)
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DocumentMalformed("the PDF's certification signature cannot be read") from exc
    if certification is not None and certification.permission == MDPPerm.NO_CHANGES:
        raise DocumentCertifiedNoChanges(
            "the PDF is certified with DocMDP permission 1: its author forbids any change, "
            "a new signature included"
        )
    return writer


def _policy_identifier() -> SignaturePolicyIdentifier:
    """signature-policy-identifier: the mandate policy's OID and the SHA-256 of its
    document (see :data:`signing.mandate_evidence.MANDATE_SIGNATURE_POLICY_DOCUMENT`
    for why not the implied form)."""
    return SignaturePolicyIdentifier(
        name="signature_policy_id",
        value=SignaturePolicyId(
            {
                "sig_policy_id": MANDATE_SIGNATURE_POLICY_OID,
                "sig_policy_hash": algos.DigestInfo(
                    {
                        "digest_algorithm": {"algorithm": "sha256"},
                        "digest": hashlib.sha256(MANDATE_SIGNATURE_POLICY_DOCUMENT).digest(),
                    }
                ),
            }
        ),
    )


def _mandate_attributes(mandate: MandateEvidence) -> tuple[CMSAttributeProvider, ...]:
    """The signed attributes a signature under ``mandate`` adds."""
    try:
        # Parsed shallowly (the outer structure, the serial and the holder): the AC comes
        # from the AA's own store, and a full parse (.native) costs ~6 ms per signature.
        leaf = cms.AttributeCertificateV2.load(mandate.leaf_ac_der, strict=True)
        info = leaf["ac_info"]
        info["serial_number"].native  # noqa: B018 - parse now, inside this error handling
        info["holder"].dump()
    except (ValueError, TypeError, KeyError) as exc:
        raise SigningError("the mandate attribute certificate does not parse") from exc
    return (
        SignerAttributesProvider(SignerAttrSpec(claimed_attrs=(), certified_attrs=(leaf,))),
        SigPolicyIDProvider(_policy_identifier()),
    )


def _name_key(key: generic.PdfObject) -> bytes:
    """A name tree key's bytes as written, for sorting (a key made in this update has
    no original bytes: ASCII names, PDFDocEncoding, else UTF-16BE with its BOM)."""
    if isinstance(key, generic.ByteStringObject):
        return bytes(key)
    try:
        return bytes(key.original_bytes)  # type: ignore[attr-defined]
    except (PdfError, AttributeError):
        text = str(key)
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            return b"\xfe\xff" + text.encode("utf-16-be")


def _existing_embedded(writer: IncrementalPdfFileWriter) -> dict[str, bytes]:
    """The document's embedded files (flat EmbeddedFiles name tree), by name."""
    try:
        names = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
    except KeyError:
        return {}
    try:
        return {str(names[i]): names[i + 1]["/EF"]["/F"].data for i in range(0, len(names) - 1, 2)}
    except (PdfError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise DocumentMalformed("the PDF's embedded files cannot be read") from exc


def _embed_evidence(writer: IncrementalPdfFileWriter, files: tuple[EvidenceFile, ...]) -> None:
    """Embed ``files`` (EmbeddedFiles name tree and the catalogue's /AF) in the
    writer's pending update, the one the signature will cover.

    A document signed before under a mandate holds evidence files already: a file of
    the same name and bytes is kept as it is (the new signature covers it too), one of
    the same name with other bytes is refused (``DOCUMENT_INVALID``): two hops' evidence
    under one name would leave a verifier unable to tell which is whose."""
    existing = _existing_embedded(writer)
    files = tuple(f for f in files if existing.get(f.name) != f.data)
    clash = [f.name for f in files if f.name in existing]
    if clash:
        raise DocumentError(f"the PDF already holds other evidence files named {', '.join(clash)}")
    if not files:
        return
    params = EmbeddedFileParams(embed_size=True, embed_checksum=True)
    try:
        for file in files:
            if file.relationship not in _AF_RELATIONSHIPS:
                raise SigningError(f"unknown /AFRelationship {file.relationship!r}")
            data = EmbeddedFileObject.from_file_data(
                writer, file.data, compress=True, params=params, mime_type=file.mime_type
            )
            embed_file(
                writer,
                FileSpec(
                    file_spec_string=file.name,
                    file_name=file.name,
                    embedded_data=data,
                    description=file.description,
                    af_relationship=generic.NameObject("/" + file.relationship),
                ),
            )
        # A name tree's keys are sorted (ISO 32000 §7.9.6); embed_file appends.
        names = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
        pairs = sorted(
            ((names[i], names.raw_get(i + 1)) for i in range(0, len(names), 2)),
            key=lambda pair: _name_key(pair[0]),
        )
        names.clear()
        for key, value in pairs:
            names.extend((key, value))
        writer.update_container(names)
    except NotImplementedError as exc:  # a name tree with /Kids
        raise DocumentMalformed(
            "the PDF's embedded-file name tree is nested; dairi embeds evidence only in a flat one"
        ) from exc
    except (PdfError, KeyError, TypeError, AttributeError) as exc:
        raise DocumentMalformed("the PDF's embedded-file names cannot be updated") from exc


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's type and first line (e.g. a time-out, a refused
    connection), for the operator's log: pyHanko's own message says only that the
    time-stamp request failed."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _next_field_name(writer: IncrementalPdfFileWriter) -> str:
    taken = {name for name, _, _ in fields.enumerate_sig_fields(writer.prev, filled_status=None)}
    n = 1
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"


class PadesSigner:
    """Signs PDFs at a PAdES baseline level with HSM credentials.

    Holds no per-request state; pyHanko and asn1crypto objects are built per
    call from DER so one instance serves every thread of a process.
    """

    def __init__(
        self,
        hsm: Hsm,
        *,
        tsa: TimestampAuthority | None,
        validation_data: ValidationDataSource | None,
        max_document_bytes: int,
        stamp_font_file: Path = JAPANESE_FONT,
    ) -> None:
        """``stamp_font_file``: the Japanese font a mandate's visible stamp is drawn in
        (the ``pdf_font_file`` setting; default IPA Gothic)."""
        self._stamp_font = stamp_font_file
        self._hsm = hsm
        self._tsa = tsa
        self._validation = validation_data
        self._max_bytes = max_document_bytes

    def sign(self, document: bytes, credential: SigningCredential, spec: PadesSpec) -> PadesResult:
        """Sign ``document``; raises a :class:`SigningError` (or an ``hsm`` error)."""
        return asyncio.run(self.async_sign(document, credential, spec))

    async def async_sign(
        self, document: bytes, credential: SigningCredential, spec: PadesSpec
    ) -> PadesResult:
        writer = check_pdf(document, self._max_bytes)
        level = spec.level
        if level.timestamped and self._tsa is None:
            raise TimestampFailed(f"{level} needs a time-stamping authority; none is configured")
        if level.long_term and self._validation is None:
            raise SigningError(f"{level} needs revocation data; no validation source configured")

        # Refuse to sign with a certificate that does not validate now, before
        # touching the key; for B-LT this is also the data the DSS will carry.
        signer_data: ValidationData | None = None
        if self._validation is not None:
            signer_data = await self._validation.collect(
                credential.certificate_der, credential.chain_der
            )
        tsa_data: ValidationData | None = None
        if level.long_term:
            assert self._tsa is not None and self._validation is not None
            tsa_data = await self._validation.collect_for_tsa(self._tsa)
        mandate = spec.mandate
        mandate_data: ValidationData | None = None
        extra_attributes: tuple[CMSAttributeProvider, ...] = ()
        extra_certificates: tuple[bytes, ...] = ()
        if mandate is not None:
            extra_attributes = _mandate_attributes(mandate)
            extra_certificates = (mandate.aa_certificate_der, *mandate.aa_chain_der)
            if level.long_term:
                assert self._validation is not None
                mandate_data = await self._aa_validation_data(self._validation, mandate)
            _embed_evidence(writer, mandate.files)

        field_name = spec.field_name or _next_field_name(writer)
        timestamper = self._tsa.make_timestamper() if level.timestamped and self._tsa else None
        meta = signers.PdfSignatureMetadata(
            field_name=field_name,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=spec.reason,
            location=spec.location,
            contact_info=spec.contact_info,
        )
        signer = (
            HsmSigner(self._hsm, credential)
            if mandate is None
            else HsmSigner(
                self._hsm,
                credential,
                extra_signed_attributes=extra_attributes,
                extra_certificates_der=extra_certificates,
            )
        )
        stamp = mandate.stamp if mandate is not None else None
        pdf_signer = (
            signers.PdfSigner(meta, signer=signer, timestamper=timestamper)
            if stamp is None
            else signers.PdfSigner(
                meta,
                signer=signer,
                timestamper=timestamper,
                stamp_style=stamp_style(stamp, self._stamp_font),
                new_field_spec=self._stamp_field(writer, stamp, field_name),
            )
        )
        reserved = self._bytes_reserved(credential, level, tsa_data)
        if mandate is not None:
            reserved += 2 * (
                len(mandate.leaf_ac_der)
                + sum(map(len, extra_certificates))
                + _MANDATE_ATTRIBUTES_OVERHEAD
            )
        output = BytesIO()
        try:
            await pdf_signer.async_sign_pdf(writer, bytes_reserved=reserved, output=output)
            if level.long_term:
                assert signer_data is not None and tsa_data is not None
                assert timestamper is not None  # long-term levels are timestamped
                data = signer_data.merged(tsa_data)
                if mandate_data is not None:
                    data = data.merged(mandate_data)
                await self._add_long_term_data(
                    output,
                    data,
                    archival=level is PadesLevel.B_LTA,
                    timestamper=timestamper,
                )
        except TimestampRequestError as exc:
            raise TimestampFailed(
                f"the time-stamping authority refused or failed ({_root_cause(exc)})"
            ) from exc
        except PyHankoSigningError as exc:
            raise SigningError(f"pyHanko could not sign: {exc}") from exc
        signed = output.getvalue()
        return PadesResult(
            pdf=signed,
            level=level,
            field_name=field_name,
            document_sha256=hashlib.sha256(document).hexdigest(),
            signed_document_sha256=hashlib.sha256(signed).hexdigest(),
        )

    @staticmethod
    def _stamp_field(
        writer: IncrementalPdfFileWriter, stamp: MandateStamp, field_name: str
    ) -> SigFieldSpec | None:
        """A new visible field for the stamp (None: the named field exists already, and
        pyHanko draws the stamp in its own box)."""
        taken = {n for n, _, _ in fields.enumerate_sig_fields(writer.prev, filled_status=None)}
        if field_name in taken:
            return None
        count = int(writer.root["/Pages"]["/Count"])
        if not 0 <= stamp.page < count:
            raise DocumentError(f"the stamp's page {stamp.page} is not in the document")
        page_ref, _ = writer.find_page_for_modification(stamp.page)
        page = page_ref.get_object()
        try:
            box = tuple(float(v) for v in page["/MediaBox"])
        except KeyError:  # inherited: the parent's, else A4
            box = tuple(float(v) for v in page.get("/Parent", {}).get("/MediaBox", A4_BOX))
        return stamp_field(stamp, field_name, box)  # type: ignore[arg-type]

    @staticmethod
    async def _aa_validation_data(
        source: ValidationDataSource, mandate: MandateEvidence
    ) -> ValidationData:
        """The AA certificate's path and revocation data, and the AC's own CRL/OCSP, for
        the DSS. The AA is the service's own: a certificate of it that does not
        validate is the service's trouble (``SIGNING_FAILED``), not the signer's."""
        try:
            aa = await source.collect(
                mandate.aa_certificate_der,
                mandate.aa_chain_der,
                key_usage=frozenset({"digital_signature"}),
            )
        except SignerCertificateInvalid as exc:
            raise SigningError(
                f"the attribute authority's certificate does not validate: {exc}"
            ) from exc
        # (dataclasses.replace keeps the AA data's staleness; the AC's answers are the
        # caller's, fetched for this signature)
        return dataclasses.replace(
            aa,
            ocsps=tuple(dict.fromkeys(aa.ocsps + mandate.ac_ocsp_der)),
            crls=tuple(dict.fromkeys(aa.crls + mandate.ac_crls_der)),
        )

    @staticmethod
    def _bytes_reserved(
        credential: SigningCredential, level: PadesLevel, tsa_data: ValidationData | None
    ) -> int:
        size = (
            len(credential.certificate_der)
            + sum(map(len, credential.chain_der))
            + credential.algorithm.signature_size
            + _CMS_OVERHEAD
        )
        if level.timestamped:
            # The signature timestamp token carries the TSA certificate (maybe its chain).
            size += _TIMESTAMP_TOKEN_OVERHEAD + (
                sum(map(len, tsa_data.certs)) if tsa_data else 4096
            )
        return 2 * size  # hex encoding in /Contents

    @staticmethod
    async def _add_long_term_data(
        output: BytesIO, data: ValidationData, *, archival: bool, timestamper: TimeStamper
    ) -> None:
        """B-LT: a DSS revision; B-LTA: DSS and document timestamp in one revision."""
        output.seek(0)
        if not archival:
            DocumentSecurityStore.add_dss(
                output, sig_contents=None, force_write=True, **data.as_asn1()
            )
            return
        writer = IncrementalPdfFileWriter(output)
        DocumentSecurityStore.supply_dss_in_writer(writer, sig_contents=None, **data.as_asn1())
        ts_reserved = 2 * (_TIMESTAMP_TOKEN_OVERHEAD + sum(map(len, data.certs)))
        await signers.PdfTimeStamper(timestamper).async_timestamp_pdf(
            writer, "sha256", bytes_reserved=ts_reserved, in_place=True
        )
