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
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from dataclasses import dataclass
from io import BytesIO

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.validation.dss import DocumentSecurityStore

from hsm import Hsm
from signing.credential import SigningCredential
from signing.errors import (
    DocumentEncrypted,
    DocumentMalformed,
    DocumentNotPdf,
    DocumentTooLarge,
    SigningError,
    TimestampFailed,
)
from signing.hsm_signer import HsmSigner
from signing.mandate_evidence import MandateEvidence
from signing.validation_data import TimestampAuthority, ValidationData, ValidationDataSource

# Room for signed attributes, algorithm identifiers and CMS structure around the
# certificates and the signature value; generous, the unused part is zero bytes.
_CMS_OVERHEAD = 2048
_TIMESTAMP_TOKEN_OVERHEAD = 3072


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


def check_pdf(document: bytes, max_bytes: int) -> IncrementalPdfFileWriter:
    """Open ``document`` for an incremental update, refusing what cannot be signed.

    Raises :class:`DocumentTooLarge`, :class:`DocumentNotPdf`,
    :class:`DocumentMalformed` or :class:`DocumentEncrypted`.
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
    return writer


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
    ) -> None:
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
        pdf_signer = signers.PdfSigner(
            meta, signer=HsmSigner(self._hsm, credential), timestamper=timestamper
        )
        reserved = self._bytes_reserved(credential, level, tsa_data)
        output = BytesIO()
        try:
            await pdf_signer.async_sign_pdf(writer, bytes_reserved=reserved, output=output)
            if level.long_term:
                assert signer_data is not None and tsa_data is not None
                assert timestamper is not None  # long-term levels are timestamped
                await self._add_long_term_data(
                    output,
                    signer_data.merged(tsa_data),
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
