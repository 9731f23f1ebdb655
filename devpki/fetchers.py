"""pyhanko-certvalidator fetchers whose transport is a function instead of the network.

The URL handling, OCSP request building and response checks are pyhanko-
certvalidator's own (its requests-based fetchers); only the transport differs,
so tests and the embedded default exercise the same path a networked
deployment does. Pinned to pyhanko-certvalidator 0.33's ``_get``/``_post`` seam.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import requests
from pyhanko_certvalidator.fetchers.api import FetcherBackend, Fetchers, FetchLimits
from pyhanko_certvalidator.fetchers.common_utils import FetchBudget
from pyhanko_certvalidator.fetchers.requests_fetchers.cert_fetch_client import (
    RequestsCertificateFetcher,
)
from pyhanko_certvalidator.fetchers.requests_fetchers.crl_client import RequestsCRLFetcher
from pyhanko_certvalidator.fetchers.requests_fetchers.ocsp_client import RequestsOCSPFetcher

# (method, absolute URL, body) -> (status, content type, body)
Transport = Callable[[str, str, bytes | None], tuple[int, str, bytes]]


def _response(transport: Transport, method: str, url: str, body: bytes | None
              ) -> requests.Response:
    status, content_type, content = transport(method, url, body)
    if status != 200:
        raise requests.RequestException(f"status code {status}")
    response = requests.Response()
    response.status_code = status
    response.headers["Content-Type"] = content_type
    response._content = content
    response.url = url
    return response


class _TransportMixin:
    transport: Transport

    async def _get_async(self, url: str) -> requests.Response:
        return _response(self.transport, "GET", url, None)

    def _get(self, url, *, acceptable_content_types):  # type: ignore[no-untyped-def]
        return asyncio.ensure_future(self._get_async(url))

    async def _post_async(self, url: str, data: bytes) -> requests.Response:
        return _response(self.transport, "POST", url, data)

    def _post(self, url, data, *, content_type, acceptable_content_types):  # type: ignore[no-untyped-def]
        return asyncio.ensure_future(self._post_async(url, data))


class _OCSP(_TransportMixin, RequestsOCSPFetcher):
    pass


class _CRL(_TransportMixin, RequestsCRLFetcher):
    pass


class _Certs(_TransportMixin, RequestsCertificateFetcher):
    pass


class TransportFetcherBackend(FetcherBackend):
    """A fetcher backend that sends every OCSP, CRL and certificate request to ``transport``."""

    def __init__(self, transport: Transport, limits: FetchLimits = FetchLimits()) -> None:  # noqa: B008
        self.transport = transport
        self.limits = limits

    def get_fetchers(self) -> Fetchers:
        budget = FetchBudget(self.limits)
        fetchers = Fetchers(
            ocsp_fetcher=_OCSP(budget=budget),
            crl_fetcher=_CRL(budget=budget),
            cert_fetcher=_Certs(budget=budget),
        )
        for f in (fetchers.ocsp_fetcher, fetchers.crl_fetcher, fetchers.cert_fetcher):
            f.transport = self.transport  # type: ignore[attr-defined]
        return fetchers

    async def close(self) -> None:
        return None
