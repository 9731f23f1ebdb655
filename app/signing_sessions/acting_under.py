"""The mandate a signing session acts under: found (the one covering the purpose held
by the credential's certificate), or named and judged (its chain holds now for the
purpose, for the principal, with the credential as the leaf's holder), or for a
sub-delegation the parent its instruction names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app.credentials.models import Credential
from app.mandates.authority import AuthorityQuery
from app.mandates.models import Mandate
from app.mandates.service import MandateService
from app.signing_sessions.activation import SessionRefused, SigningPurpose, Upload
from delegation.instruction import GrantInstruction


def judge(
    mandates: MandateService,
    mandate_id: str,
    purpose: SigningPurpose,
    credential: Credential,
    now: datetime,
) -> list[Mandate]:
    """The mandate's chain, root first, if it holds now for ``purpose`` with
    ``credential`` as the leaf's holder; else its first reason code."""
    judged = None if purpose.sub_delegation else purpose.at(now)
    rows, verdict = mandates.chain(mandate_id, judged, at=now)
    if rows[0].principal != purpose.principal:
        raise SessionRefused(
            f"mandate {mandate_id} is not for {purpose.principal}", "PRINCIPAL_MISMATCH"
        )
    if rows[-1].grantee_certificate_sha256 != credential.certificate_sha256:
        raise SessionRefused(
            "the credential's certificate is not the mandate's holder", "HOLDER_MISMATCH"
        )
    if not verdict.holds:
        codes = verdict.codes()
        raise SessionRefused(f"the mandate chain does not hold: {', '.join(codes)}", codes[0])
    if purpose.sub_delegation and rows[-1].scope.max_depth < 1:
        raise SessionRefused(
            f"mandate {mandate_id} allows no sub-delegation", "SUBDELEGATION_NOT_ALLOWED"
        )
    return rows


def covering_mandate(
    session: Session, credential: Credential, purpose: SigningPurpose, now: datetime
) -> str:
    """The one mandate covering ``purpose`` now whose holder is ``credential``'s
    certificate: ``NO_COVERING_MANDATE`` if none, ``MANDATE_AMBIGUOUS`` (with their ids)
    if several."""
    found = [
        a.mandate.id
        for a in AuthorityQuery(session).find(purpose.principal, purpose.at(now))
        if a.grantee_certificate_sha256 == credential.certificate_sha256
    ]
    if not found:
        raise SessionRefused(
            "no mandate held by this credential covers the purpose", "NO_COVERING_MANDATE"
        )
    if len(found) > 1:
        raise SessionRefused(
            "several mandates cover the purpose; name one as mandate_id",
            "MANDATE_AMBIGUOUS",
            mandates=sorted(found),
        )
    return found[0]


def instruction_parent(
    uploads: Sequence[Upload], purpose: SigningPurpose, mandate_id: str | None
) -> str:
    """The parent mandate a sub-delegation instruction names: the one mandate acted
    under. Raises ``INSTRUCTION_MALFORMED``, ``SESSION_FORMAT_INVALID`` (not one
    sub-delegation instruction, or another mandate named) or ``PRINCIPAL_MISMATCH``."""
    if len(uploads) != 1:
        raise SessionRefused(
            "a sub-delegation session signs one instruction", "SESSION_FORMAT_INVALID"
        )
    instruction = GrantInstruction.parse(uploads[0].data)
    if instruction.parent is None or mandate_id not in (None, instruction.parent):
        raise SessionRefused(
            "the instruction is not a sub-delegation of the mandate named", "SESSION_FORMAT_INVALID"
        )
    if instruction.principal_corporate_number != purpose.principal:
        raise SessionRefused("the instruction is for another principal", "PRINCIPAL_MISMATCH")
    return instruction.parent
