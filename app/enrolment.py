"""Enrolment (DESIGN §4): a representative invites a named employee; the employee
proves the four basic items once with the JPKI signing certificate and binds the
JPKI authentication certificate used at every later login. A reissued card is
re-bound the same way, with an invitation for the known person.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit_log import AuditLog
from app.auth import AuthError, AuthService, CardProof, ChallengePurpose, sha256_hex
from app.identity_models import Corporation, Employment, Invitation, Person, PersonStatus
from app.settings import Settings
from identity.trust import TrustPurpose

INVITATION_LIFETIME = timedelta(days=7)


def same_name(a: str, b: str) -> bool:
    """Names compare without their spaces (ASCII or the ideographic U+3000)."""
    return "".join(a.split()) == "".join(b.split())


@dataclass(frozen=True)
class IssuedInvitation:
    code: str  # shown once; only its hash is stored
    row: Invitation


@dataclass(frozen=True)
class Enrolment:
    """A redeemed invitation: who, for which corporation, and whether a card was re-bound."""

    person: Person
    corporate_number: str
    rebound: bool


class EnrolmentService:
    def __init__(self, session: Session, settings: Settings, auth: AuthService,
                 clock: Callable[[], datetime]) -> None:
        self.session = session
        self.settings = settings
        self.auth = auth
        self.clock = clock

    def invite(self, corporate_number: str, name: str, *, created_by: str,
               person_id: str | None = None) -> IssuedInvitation:
        """An invitation for ``name`` to enrol for the corporation (or, with
        ``person_id``, for that employee to re-bind a new card).

        Raises ``CORPORATION_NOT_FOUND`` or ``PERSON_NOT_FOUND``.
        """
        if self.session.get(Corporation, corporate_number) is None:
            raise AuthError("no such corporation (its representative has not logged in yet)",
                            "CORPORATION_NOT_FOUND")
        if person_id is not None:
            employed = self.session.scalar(select(Employment).where(
                Employment.person_id == person_id,
                Employment.corporate_number == corporate_number,
                Employment.ended_at.is_(None)))
            if employed is None:
                raise AuthError("no such employee of this corporation", "PERSON_NOT_FOUND")
            name = employed.person.name
        code = secrets.token_urlsafe(24)
        now = self.clock()
        row = Invitation(code_sha256=sha256_hex(code), corporate_number=corporate_number,
                         name=name, person_id=person_id, created_by=created_by, created_at=now,
                         expires_at=now + INVITATION_LIFETIME)
        self.session.add(row)
        self.session.flush()
        AuditLog(self.session).append("enrolment:invitation:created", actor=created_by,
                                      subject=row.id, principal=corporate_number,
                                      details={"rebind": person_id is not None})
        return IssuedInvitation(code, row)

    def enrol(self, invitation_code: str, challenge_id: str, authentication: CardProof,
              signing: CardProof) -> Enrolment:
        """Redeem an invitation with proofs from both certificates over one challenge.

        Raises ``INVITATION_INVALID``, ``INVITATION_EXPIRED``, the challenge and
        certificate refusals, ``ENROLMENT_NAME_MISMATCH`` or
        ``CERTIFICATE_ALREADY_ENROLLED``. Commits nothing on refusal (the
        challenge excepted: it is spent).
        """
        now = self.clock()
        invitation = self.session.scalar(
            select(Invitation).where(Invitation.code_sha256 == sha256_hex(invitation_code)))
        if invitation is None or invitation.used_at is not None:
            raise AuthError("the invitation code is unknown or already used",
                            "INVITATION_INVALID")
        if invitation.expires_at <= now:
            raise AuthError("the invitation has expired", "INVITATION_EXPIRED")
        challenge = self.auth.consume_challenge(challenge_id, ChallengePurpose.ENROLMENT)
        signed = self.auth.check_proof(challenge, signing, TrustPurpose.JPKI_SIGN)
        authenticated = self.auth.check_proof(challenge, authentication, TrustPurpose.JPKI_AUTH)
        personal = signed.personal_data
        assert personal is not None  # the JPKI_SIGN profile always parses it
        if not same_name(personal.name, invitation.name):
            raise AuthError("the name on the signing certificate is not the invited name",
                            "ENROLMENT_NAME_MISMATCH")
        bound = self.session.scalar(
            select(Person).where(Person.auth_certificate_sha256 == authenticated.sha256))
        person = (self.session.get(Person, invitation.person_id) if invitation.person_id
                  else bound)
        if bound is not None and person is not None and bound.id != person.id:
            raise AuthError("this authentication certificate is bound to someone else",
                            "CERTIFICATE_ALREADY_ENROLLED")
        rebind = person is not None
        if person is None:
            person = Person(name=personal.name, auth_certificate_sha256=authenticated.sha256,
                            auth_certificate_der=authenticated.der,
                            signing_certificate_sha256=signed.sha256,
                            signing_certificate_der=signed.der, enrolled_at=now)
            self.session.add(person)
        else:
            if not same_name(personal.name, person.name):
                raise AuthError("the name on the signing certificate is not the enrolled name",
                                "ENROLMENT_NAME_MISMATCH")
            person.auth_certificate_sha256 = authenticated.sha256
            person.auth_certificate_der = authenticated.der
            person.signing_certificate_sha256 = signed.sha256
            person.signing_certificate_der = signed.der
            person.status = PersonStatus.ACTIVE.value
            person.rebound_at = now
        if self.settings.keep_personal_data:
            person.personal_data = json.dumps({
                "birth_date": personal.birth_date.value.isoformat() if personal.birth_date
                else None,
                "sex": personal.sex, "address": personal.address,
            }, ensure_ascii=False)
        self.session.flush()
        employed = self.session.scalar(select(Employment).where(
            Employment.person_id == person.id,
            Employment.corporate_number == invitation.corporate_number))
        if employed is None:
            self.session.add(Employment(person_id=person.id,
                                        corporate_number=invitation.corporate_number))
        elif employed.ended_at is not None:
            employed.ended_at = None
        invitation.used_at = now
        AuditLog(self.session).append(
            "enrolment:person:rebound" if rebind else "enrolment:person:enrolled",
            actor=f"person:{person.id}", subject=person.id,
            principal=invitation.corporate_number,
            details={"invitation": invitation.id,
                     "auth_certificate_sha256": authenticated.sha256,
                     "signing_certificate_sha256": signed.sha256})
        self.session.commit()
        return Enrolment(person, invitation.corporate_number, rebind)
