"""The development PKI: JPKI-like, registrar-like and service CAs, a TSA, CRLs and OCSP.

A plain library (no web, no database): the tests use it in process and the
running service serves it under ``/pki/`` in development mode.
"""

from devpki.ca import DevCA, UnknownCertificate
from devpki.fetchers import TransportFetcherBackend
from devpki.pki import DevPki, EndEntity, PkiError
from devpki.tsa import DevTsa, InProcessTimeStamper

__all__ = [
    "DevCA",
    "DevPki",
    "DevTsa",
    "EndEntity",
    "InProcessTimeStamper",
    "PkiError",
    "TransportFetcherBackend",
    "UnknownCertificate",
]
