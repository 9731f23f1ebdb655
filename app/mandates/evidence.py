"""The evidence a signature made under a mandate carries (DESIGN §5, §6; issue 11
item 3), gathered from storage for :class:`signing.PadesSigner`.

For each hop of the chain, root first: the grant instruction as signed (RFC 8785
JSON), its detached CMS signature (at depth 0 the representative's, made with the
registration certificate: the form of 電子委任状 signed by the principal) and the
hop's attribute certificate, as files the signer embeds in the PDF before signing,
so the signature covers them. The leaf AC goes into the CMS signer attributes; the
AA certificate among the CMS certificates; at B-LT/B-LTA the AA's current CRL and an
OCSP answer for the leaf AC go into the DSS.
"""

from __future__ import annotations

from asn1crypto import cms, ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator.authority import AuthorityWithCert
from pyhanko_certvalidator.fetchers.common_utils import format_ocsp_request
from sqlalchemy.orm import Session

from app.context import ServiceContext
from app.mandates.models import Mandate
from app.mandates.publication import current_crl, ocsp_answer
from signing.mandate_evidence import (
    EvidenceFile,
    MandateEvidence,
    MandateStamp,
    evidence_file_names,
)

# RFC 5877: the media type of an attribute certificate.
AC_MIME_TYPE = "application/pkix-attr-cert"


def _signed_by(row: Mandate) -> str:
    if row.depth == 0:
        return f"signed by the representative {row.grantor_name} / 代表者 {row.grantor_name} の署名"
    return f"signed by the grantor {row.grantor_name} / 委任者 {row.grantor_name} の署名"


def hop_files(row: Mandate) -> tuple[EvidenceFile, EvidenceFile, EvidenceFile]:
    """The three embedded files of one hop, named by :func:`evidence_file_names`."""
    instruction, signature, certificate = evidence_file_names(row.depth)
    what_ja = "委任状" if row.depth == 0 else "再委任状"
    what_en = "grant instruction" if row.depth == 0 else "sub-delegation instruction"
    hop = f"depth {row.depth} (深さ {row.depth}), to {row.grantee_name}"
    return (
        EvidenceFile(
            name=instruction,
            data=bytes(row.instruction),
            mime_type="application/json",
            description=f"{what_ja} ({what_en}) {hop}; {_signed_by(row)}",
        ),
        EvidenceFile(
            name=signature,
            data=bytes(row.signatures),
            mime_type="application/pkcs7-signature",
            description=(
                f"{what_ja}の電子署名 (detached CMS signature over {instruction}) {hop}; "
                f"{_signed_by(row)}"
            ),
        ),
        EvidenceFile(
            name=certificate,
            data=bytes(row.attribute_certificate),
            mime_type=AC_MIME_TYPE,
            description=(
                f"委任の属性証明書 (mandate attribute certificate, RFC 5755) {hop}; "
                f"mandate {row.id}, issued by the attribute authority / 属性認証局の発行"
            ),
        ),
    )


def leaf_ocsp_request(aa_certificate_der: bytes, ac_der: bytes) -> bytes:
    """An OCSP request about ``ac_der`` as pyhanko-certvalidator formats it (SHA-1
    CertID, no nonce: the AA's answers are reused and carry none)."""
    return bytes(
        format_ocsp_request(
            cms.AttributeCertificateV2.load(ac_der),
            AuthorityWithCert(asn1_x509.Certificate.load(aa_certificate_der)),
            certid_hash_algo="sha1",
            request_nonces=False,
        ).dump()
    )


def mandate_evidence(
    context: ServiceContext,
    session: Session,
    rows: list[Mandate],
    *,
    long_term: bool,
    stamp: MandateStamp | None = None,
) -> MandateEvidence:
    """The :class:`~signing.MandateEvidence` of the chain ``rows`` (root first, as
    :meth:`MandateService.chain` returns them; judged by the caller).

    ``long_term`` (B-LT/B-LTA): the AA's current CRL (re-made first if near its
    nextUpdate, in the caller's unit of work) and the AA's OCSP answer for the leaf AC
    are included as the AC's revocation data.
    """
    if not rows:
        raise ValueError("a mandate chain has at least one hop")
    aa = context.attribute_authority
    certificates = context.aa_certificates
    leaf = rows[-1]
    crls: tuple[bytes, ...] = ()
    answers: tuple[bytes, ...] = ()
    if long_term:
        now = context.clock()
        crls = (current_crl(session, aa, now),)
        answer = ocsp_answer(
            session, aa, leaf_ocsp_request(aa.certificate_der, leaf.attribute_certificate), now
        )
        # Only a signed answer is evidence; an unsigned refusal is not kept.
        if ocsp.OCSPResponse.load(answer)["response_status"].native == "successful":
            answers = (answer,)
    files = tuple(f for row in rows for f in hop_files(row))
    return MandateEvidence(
        leaf_ac_der=bytes(leaf.attribute_certificate),
        aa_certificate_der=aa.certificate_der,
        aa_chain_der=tuple(certificates[1:]),
        ac_crls_der=crls,
        ac_ocsp_der=answers,
        files=files,
        stamp=stamp,
    )
