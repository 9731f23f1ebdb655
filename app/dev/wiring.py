"""Development-only wiring of the service to the development PKI (``devpki``): its
attribute authority, its TSA answered in process and its CRLs/OCSP fetched in process.

``app.context`` imports this module only in development mode (``dev_mode = true``),
when it first needs one of these; a production process never imports ``devpki``
through it and builds the same objects from settings instead (the AA key by label and
its certificate file, ``RevocationFetcherBackend`` over HTTP, ``HTTPTimeStamper``).
"""

from __future__ import annotations

from pathlib import Path

from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator.fetchers.api import FetcherBackend

from devpki import DevPki, InProcessTimeStamper, TransportFetcherBackend
from identity.revocation_fetch import ResponderBreaker


def development_pki(pki_dir: Path) -> DevPki | None:
    """The development PKI stored in ``pki_dir`` (None if it was never created)."""
    return DevPki(pki_dir) if DevPki.exists(pki_dir) else None


def in_process_fetchers(
    pki: DevPki, *, budget_seconds: float, breaker: ResponderBreaker
) -> FetcherBackend:
    """OCSP, CRLs and CA certificates answered by ``pki`` in this process, with the
    budget and breaker the HTTP backend has."""
    return TransportFetcherBackend(pki.serve_url, budget_seconds=budget_seconds, breaker=breaker)


def in_process_timestamper(pki: DevPki) -> TimeStamper:
    return InProcessTimeStamper(pki.tsa)
