"""Signature creation: PAdES (pyHanko) now; XAdES, signature activation and
validation reports follow. A plain library: no web, no database."""

from signing.credential import SigningCredential
from signing.errors import (
    DocumentCertifiedNoChanges,
    DocumentEncrypted,
    DocumentError,
    DocumentMalformed,
    DocumentNotPdf,
    DocumentTooLarge,
    SignerCertificateInvalid,
    SignerCertificateRevoked,
    SigningError,
    TimestampFailed,
    ValidationDataUnavailable,
)
from signing.hsm_signer import HsmSigner, sign_detached
from signing.mandate_evidence import (
    MANDATE_SIGNATURE_POLICY_OID,
    EvidenceFile,
    MandateEvidence,
    MandateStamp,
    evidence_file_names,
)
from signing.pades import PadesLevel, PadesResult, PadesSigner, PadesSpec, check_pdf
from signing.validation_data import TimestampAuthority, ValidationData, ValidationDataSource
from signing.verification import (
    DocumentNotSigned,
    Indication,
    VerificationReport,
    VerificationTrust,
    verify_pdf,
)
from signing.verification_xml import SIGNATURE_WRAPPING, verify_xml
from signing.xades import XadesLevel, XadesResult, XadesSigner, XadesSpec, XmlAlreadySigned
from signing.xml_key import HsmXmlKey
from signing.xml_safety import DocumentNotXml, XmlUnsafe, parse_untrusted_xml

__all__ = [
    "MANDATE_SIGNATURE_POLICY_OID",
    "SIGNATURE_WRAPPING",
    "DocumentCertifiedNoChanges",
    "DocumentEncrypted",
    "DocumentError",
    "DocumentMalformed",
    "DocumentNotPdf",
    "DocumentNotSigned",
    "DocumentNotXml",
    "DocumentTooLarge",
    "EvidenceFile",
    "HsmSigner",
    "HsmXmlKey",
    "Indication",
    "MandateEvidence",
    "MandateStamp",
    "PadesLevel",
    "PadesResult",
    "PadesSigner",
    "PadesSpec",
    "SignerCertificateInvalid",
    "SignerCertificateRevoked",
    "SigningCredential",
    "SigningError",
    "TimestampAuthority",
    "TimestampFailed",
    "ValidationData",
    "ValidationDataSource",
    "ValidationDataUnavailable",
    "VerificationReport",
    "VerificationTrust",
    "XadesLevel",
    "XadesResult",
    "XadesSigner",
    "XadesSpec",
    "XmlAlreadySigned",
    "XmlUnsafe",
    "check_pdf",
    "evidence_file_names",
    "parse_untrusted_xml",
    "sign_detached",
    "verify_pdf",
    "verify_xml",
]
