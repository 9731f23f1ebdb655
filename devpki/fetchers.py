"""pyhanko-certvalidator fetchers whose transport is a function instead of the network.

The URL handling, OCSP request building and response checks are pyhanko-
certvalidator's own, and so are the budget, OCSP/CRL overlap and breaker of
:mod:`identity.revocation_fetch` when given: only the transport differs, so tests
and the embedded default exercise the same path a networked deployment does.
"""

from __future__ import annotations

from pyhanko_certvalidator.fetchers.api import FetchLimits

from identity.revocation_fetch import ResponderBreaker, RevocationFetcherBackend, Transport

__all__ = ["Transport", "TransportFetcherBackend"]


class TransportFetcherBackend(RevocationFetcherBackend):
    """A fetcher backend that sends every OCSP, CRL and certificate request to ``transport``.

    No budget and no breaker unless given (the service gives both, as it does to
    its HTTP backend).
    """

    def __init__(self, transport: Transport, limits: FetchLimits = FetchLimits(),  # noqa: B008
                 *, budget_seconds: float | None = None,
                 breaker: ResponderBreaker | None = None) -> None:
        super().__init__(budget_seconds=budget_seconds, breaker=breaker, transport=transport,
                         limits=limits)
