"""Signing failures, each with a stable code.

``SIGNING_FAILED``, ``VALIDATION_DATA_UNAVAILABLE`` and ``TIMESTAMP_FAILED`` are
the service's trouble (a library, a revocation server or the time-stamping
authority failed), not the caller's: the API answers them 503 with Retry-After.
The ``DOCUMENT_*`` and ``SIGNER_CERTIFICATE_*`` codes describe the request.
"""

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
    """The time-stamping authority did not answer in time, refused the connection or
    the request, gave no usable token, or none is configured."""

    code = "TIMESTAMP_FAILED"
    # A TSA request is bounded by a few seconds; trying again soon is reasonable.
    retry_after = 10


class DocumentCertifiedNoChanges(DocumentError):
    """The document carries a certification signature whose DocMDP permissions (P=1)
    forbid any change, a new signature included."""

    code = "DOCUMENT_CERTIFIED_NO_CHANGES"
