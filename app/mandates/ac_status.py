"""The attribute authority's status answers for mandate ACs: its CRL and its OCSP
responder (the caching behind both is :mod:`app.mandates.publication`'s)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from app.mandates.publication import current_crl, ocsp_answer
from delegation.certificates import AttributeAuthority


class AcStatus:
    def __init__(
        self, session: Session, authority: AttributeAuthority, clock: Callable[[], datetime]
    ) -> None:
        self.session = session
        self.aa = authority
        self.clock = clock

    def crl(self) -> bytes:
        """The AA's published CRL of mandate ACs (re-made only near its nextUpdate, in
        the caller's unit of work)."""
        return current_crl(self.session, self.aa, self.clock())

    def ocsp_response(self, request_der: bytes) -> bytes:
        """The AA's OCSP answer, reused while it still states the mandates' status."""
        return ocsp_answer(self.session, self.aa, request_der, self.clock())
