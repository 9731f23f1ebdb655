"""Signing failures, each with a stable code."""

from dairi import DairiError


class SigningError(DairiError):
    """Base of signing failures."""

    code = "SIGNING_FAILED"


class DocumentError(SigningError):
    """The document cannot be signed as given."""

    code = "DOCUMENT_INVALID"


class DocumentNotPdf(DocumentError):
    code = "DOCUMENT_NOT_PDF"


class DocumentMalformed(DocumentError):
    """Truncated or otherwise unreadable PDF."""

    code = "DOCUMENT_MALFORMED"


class DocumentEncrypted(DocumentError):
    code = "DOCUMENT_ENCRYPTED"


class DocumentTooLarge(DocumentError):
    code = "DOCUMENT_TOO_LARGE"


class SignerCertificateInvalid(SigningError):
    """The signer's certificate does not validate now (expired, untrusted, wrong usage)."""

    code = "SIGNER_CERTIFICATE_INVALID"


class SignerCertificateRevoked(SignerCertificateInvalid):
    code = "SIGNER_CERTIFICATE_REVOKED"


class ValidationDataUnavailable(SigningError):
    """Revocation data for B-LT could not be obtained (OCSP/CRL unreachable)."""

    code = "VALIDATION_DATA_UNAVAILABLE"


class TimestampFailed(SigningError):
    code = "TIMESTAMP_FAILED"
