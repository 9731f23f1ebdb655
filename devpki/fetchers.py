"""pyhanko-certvalidator fetchers whose transport is a function instead of the network.

They implement the library's public fetcher interfaces (``OCSPFetcher``,
``CRLFetcher``, ``CertificateFetcher``) with its public request and response helpers
(``format_ocsp_request``, ``process_ocsp_response_data``, the CRL distribution point
and caIssuers URL readers), so OCSP requests and response checks are the library's
own; and :mod:`identity.revocation_fetch` puts the same budget, OCSP/CRL overlap and
breaker around them as around its HTTP fetchers. Development mode and tests only: a
deployment (and ``tests/test_production_mode.py``) fetches over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

from asn1crypto import crl, ocsp, pem, x509
from pyhanko_certvalidator.errors import CertificateFetchError, CRLFetchError, OCSPFetchError
from pyhanko_certvalidator.fetchers.api import (
    CertificateFetcher,
    CRLFetcher,
    Fetchers,
    FetchLimits,
    OCSPFetcher,
)
from pyhanko_certvalidator.fetchers.common_utils import (
    enumerate_delivery_point_urls,
    format_ocsp_request,
    gather_aia_issuer_urls,
    process_ocsp_response_data,
    unpack_cert_content,
)
from pyhanko_certvalidator.util import get_ocsp_urls, get_relevant_crl_dps, issuer_serial

from identity.revocation_fetch import ResponderBreaker, RevocationFetcherBackend

__all__ = ["Transport", "TransportFetcherBackend", "transport_fetchers"]

# (method, absolute URL, body) -> (status, content type, body): a responder reached
# in process instead of over the network (the development PKI, tests).
Transport = Callable[[str, str, bytes | None], tuple[int, str, bytes]]


def _call(transport: Transport, method: str, url: str, body: bytes | None) -> tuple[str, bytes]:
    status, content_type, content = transport(method, url, body)
    if status != 200:  # an OSError, as requests' errors are: the responder failed
        raise ConnectionError(f"status code {status}")
    return content_type, content


class _OCSP(OCSPFetcher):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._results: dict[Any, ocsp.OCSPResponse] = {}

    async def fetch(self, cert, authority):  # type: ignore[no-untyped-def]
        tag = (issuer_serial(cert), authority.hashable)
        if tag in self._results:
            return self._results[tag]
        request = format_ocsp_request(cert, authority, certid_hash_algo="sha1", request_nonces=True)
        urls = list(get_ocsp_urls(cert))
        if not urls:
            raise OCSPFetchError("No URLs to fetch OCSP responses from")
        failure: Exception | None = None
        for url in urls:
            try:
                _, content = _call(self.transport, "POST", url, request.dump())
                response = process_ocsp_response_data(content, ocsp_request=request, ocsp_url=url)
            except Exception as exc:  # the next URL, then a fetch error
                failure = exc
                continue
            self._results[tag] = response
            return response
        raise OCSPFetchError(f"Failed to fetch OCSP response from {urls[-1]}") from failure

    def fetched_responses(self) -> Iterable[ocsp.OCSPResponse]:
        return list(self._results.values())

    def fetched_responses_for_cert(self, cert):  # type: ignore[no-untyped-def]
        target = issuer_serial(cert)
        return [r for (subject, _), r in self._results.items() if subject == target]


class _CRL(CRLFetcher):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._by_url: dict[str, crl.CertificateList] = {}
        self._by_cert: dict[Any, list[crl.CertificateList]] = {}

    async def fetch(self, cert, *, use_deltas=True):  # type: ignore[no-untyped-def]
        key = issuer_serial(cert)
        if key in self._by_cert:
            return self._by_cert[key]
        found: list[crl.CertificateList] = []
        failure: Exception | None = None
        for point in get_relevant_crl_dps(cert, use_deltas=use_deltas):
            for url in enumerate_delivery_point_urls(point):
                try:
                    if url not in self._by_url:
                        _, data = _call(self.transport, "GET", url, None)
                        if pem.detect(data):
                            _, _, data = pem.unarmor(data)
                        self._by_url[url] = crl.CertificateList.load(data)
                    found.append(self._by_url[url])
                except Exception as exc:  # a fetch error if none arrives
                    failure = exc
        if failure is not None and not found:
            raise CRLFetchError("Failure to fetch CRL") from failure
        self._by_cert[key] = found
        return found

    def fetched_crls(self) -> Iterable[crl.CertificateList]:
        return list(self._by_url.values())

    def fetched_crls_for_cert(self, cert):  # type: ignore[no-untyped-def]
        return self._by_cert[issuer_serial(cert)]


class _Certs(CertificateFetcher):
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._fetched: list[x509.Certificate] = []

    async def _from(self, urls: Iterable[str]) -> AsyncGenerator[x509.Certificate, None]:
        for url in urls:
            try:
                content_type, data = _call(self.transport, "GET", url, None)
                certs = list(unpack_cert_content(data, content_type, url, permit_pem=True))
            except (OSError, ValueError, TypeError, CertificateFetchError):
                continue  # skipped, as the library's own fetcher does
            self._fetched.extend(certs)
            for cert in certs:
                yield cert

    def fetch_cert_issuers(self, cert):  # type: ignore[no-untyped-def]
        return self._from(list(gather_aia_issuer_urls(cert)))

    def fetch_crl_issuers(self, certificate_list):  # type: ignore[no-untyped-def]
        return self._from(list(certificate_list.issuer_cert_urls))

    def fetched_certs(self) -> Iterable[x509.Certificate]:
        return list(self._fetched)


def transport_fetchers(transport: Transport) -> Callable[[float, FetchLimits], Fetchers]:
    """A fetchers factory for :class:`RevocationFetcherBackend` that asks ``transport``."""

    def make(_timeout: float, _limits: FetchLimits) -> Fetchers:
        return Fetchers(
            ocsp_fetcher=_OCSP(transport),
            crl_fetcher=_CRL(transport),
            cert_fetcher=_Certs(transport),
        )

    return make


class TransportFetcherBackend(RevocationFetcherBackend):
    """A fetcher backend that sends every OCSP, CRL and certificate request to ``transport``.

    No budget and no breaker unless given (the service gives both, as it does to
    its HTTP backend).
    """

    def __init__(
        self,
        transport: Transport,
        limits: FetchLimits = FetchLimits(),  # noqa: B008
        *,
        budget_seconds: float | None = None,
        breaker: ResponderBreaker | None = None,
    ) -> None:
        super().__init__(
            budget_seconds=budget_seconds,
            breaker=breaker,
            fetchers=transport_fetchers(transport),
            limits=limits,
        )
