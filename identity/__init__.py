"""Identity: JPKI and commercial-registration certificate profiles, the 法人番号
check digit, trust anchors per purpose (:mod:`identity.trust`) and certificate
path validation with revocation (:mod:`identity.validation`). A plain library.

Importing :mod:`identity.validation` (as this package does) widens
pyhanko-certvalidator's supported critical extensions by exactly the three
commercial-registration extensions (DESIGN §4); see that module.
"""

from identity.trust import TrustPurpose, TrustStore, TrustStoreError
from identity.validation import CertificateRefused, CertificateValidator, ValidatedCertificate

__all__ = [
    "CertificateRefused",
    "CertificateValidator",
    "TrustPurpose",
    "TrustStore",
    "TrustStoreError",
    "ValidatedCertificate",
]
