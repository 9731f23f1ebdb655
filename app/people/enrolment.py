"""Enrolment (DESIGN §4): a representative invites a named employee; the employee
proves the four basic items once with the JPKI signing certificate and binds the
JPKI authentication certificate used at every later login. A reissued card is
re-bound the same way, with an invitation for the known person.

A re-bind must prove it is the same person (issue 9 item 1): either the enrolled
authentication certificate signs again (it survives a move, which reissues only
the signing certificate), or the new signing certificate's four basic items are
those proven at enrolment — compared by their keyed digest
(:mod:`app.people.identity_digest`), so no items need be kept. A holder of a global role
(administrator, auditor) is never re-bound through a corporation's invitation,
and a re-bind ends every access token of the person.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.people.identity_digest import bind_signing_certificate, enrolled_digest, identity_digest
from app.people.models import (
    AccessToken,
    Corporation,
    Employment,
    Invitation,
    Person,
    PersonStatus,
)
from app.people.sign_in import AuthError, AuthService, CardProof, ChallengePurpose, sha256_hex
from app.settings import Settings
from identity.names import same_name
from identity.profiles import JpkiPersonalData
from identity.trust import TrustPurpose
from identity.validation import ValidatedCertificate

INVITATION_LIFETIME = timedelta(days=7)


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
    def __init__(
        self, session: Session, settings: Settings, auth: AuthService, clock: Callable[[], datetime]
    ) -> None:
        self.session = session
        self.settings = settings
        self.auth = auth
        self.clock = clock

    def invite(
        self, corporate_number: str, name: str, *, created_by: str, person_id: str | None = None
    ) -> IssuedInvitation:
        """An invitation for ``name`` to enrol for the corporation (or, with
        ``person_id``, for that employee to re-bind a new card).

        Raises ``CORPORATION_NOT_FOUND``, ``PERSON_NOT_FOUND`` or, for a person
        holding a global role, ``REBIND_NOT_PERMITTED``.
        """
        if self.session.get(Corporation, corporate_number) is None:
            raise AuthError(
                "no such corporation (its representative has not logged in yet)",
                "CORPORATION_NOT_FOUND",
            )
        if person_id is not None:
            employed = self.session.scalar(
                select(Employment).where(
                    Employment.person_id == person_id,
                    Employment.corporate_number == corporate_number,
                    Employment.ended_at.is_(None),
                )
            )
            if employed is None:
                raise AuthError("no such employee of this corporation", "PERSON_NOT_FOUND")
            _refuse_global_role(employed.person)
            name = employed.person.name
        code = secrets.token_urlsafe(24)
        now = self.clock()
        row = Invitation(
            code_sha256=sha256_hex(code),
            corporate_number=corporate_number,
            name=name,
            person_id=person_id,
            created_by=created_by,
            created_at=now,
            expires_at=now + INVITATION_LIFETIME,
        )
        self.session.add(row)
        self.session.flush()
        AuditLog(self.session).append(
            "enrolment:invitation:created",
            actor=created_by,
            subject=row.id,
            principal=corporate_number,
            details={"rebind": person_id is not None},
        )
        return IssuedInvitation(code, row)

    def enrol(
        self, invitation_code: str, challenge_id: str, authentication: CardProof, signing: CardProof
    ) -> Enrolment:
        """Redeem an invitation with proofs from both certificates over one challenge.

        Raises ``INVITATION_INVALID``, ``INVITATION_EXPIRED``, the challenge and
        certificate refusals, ``ENROLMENT_NAME_MISMATCH``,
        ``CERTIFICATE_ALREADY_ENROLLED``, and for a re-bind ``REBIND_NOT_PERMITTED``
        or ``REBIND_IDENTITY_MISMATCH``. Commits nothing on refusal (the challenge
        excepted: it is spent).
        """
        now = self.clock()
        invitation = self.session.scalar(
            select(Invitation).where(Invitation.code_sha256 == sha256_hex(invitation_code))
        )
        if invitation is None or invitation.used_at is not None:
            raise AuthError("the invitation code is unknown or already used", "INVITATION_INVALID")
        if invitation.expires_at <= now:
            raise AuthError("the invitation has expired", "INVITATION_EXPIRED")
        challenge = self.auth.consume_challenge(challenge_id, ChallengePurpose.ENROLMENT)
        signed = self.auth.check_proof(challenge, signing, TrustPurpose.JPKI_SIGN)
        authenticated = self.auth.check_proof(challenge, authentication, TrustPurpose.JPKI_AUTH)
        personal = signed.personal_data
        assert personal is not None  # the JPKI_SIGN profile always parses it
        if not same_name(personal.name, invitation.name):
            raise AuthError(
                "the name on the signing certificate is not the invited name",
                "ENROLMENT_NAME_MISMATCH",
            )
        bound = self.session.scalar(
            select(Person).where(Person.auth_certificate_sha256 == authenticated.sha256)
        )
        person = self.session.get(Person, invitation.person_id) if invitation.person_id else bound
        if bound is not None and person is not None and bound.id != person.id:
            raise AuthError(
                "this authentication certificate is bound to someone else",
                "CERTIFICATE_ALREADY_ENROLLED",
            )
        hsm = self.auth.hsm
        assert hsm is not None  # enrolment keeps the identity digest
        digest = identity_digest(hsm, personal)
        rebind = person is not None
        details: dict[str, object] = {
            "invitation": invitation.id,
            "auth_certificate_sha256": authenticated.sha256,
            "signing_certificate_sha256": signed.sha256,
        }
        if person is None:
            person = Person(
                name=personal.name,
                auth_certificate_sha256=authenticated.sha256,
                auth_certificate_der=authenticated.der,
                enrolled_at=now,
            )
            self.session.add(person)
        else:
            if not same_name(personal.name, person.name):
                raise AuthError(
                    "the name on the signing certificate is not the enrolled name",
                    "ENROLMENT_NAME_MISMATCH",
                )
            if invitation.person_id is not None:  # a card re-bound for a known person
                details["proof"] = self._check_same_person(person, authenticated, personal)
            person.auth_certificate_sha256 = authenticated.sha256
            person.auth_certificate_der = authenticated.der
            person.status = PersonStatus.ACTIVE.value
            person.rebound_at = now
        bind_signing_certificate(
            person, signed, digest, keep_personal_data=self.settings.keep_personal_data
        )
        self.session.flush()
        if invitation.person_id is not None:
            ended = self.session.execute(
                update(AccessToken)
                .where(AccessToken.person_id == person.id, AccessToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            details["tokens_ended"] = cast("CursorResult[Any]", ended).rowcount
        employed = self.session.scalar(
            select(Employment).where(
                Employment.person_id == person.id,
                Employment.corporate_number == invitation.corporate_number,
            )
        )
        if employed is None:
            self.session.add(
                Employment(person_id=person.id, corporate_number=invitation.corporate_number)
            )
        elif employed.ended_at is not None:
            employed.ended_at = None
        invitation.used_at = now
        AuditLog(self.session).append(
            "enrolment:person:rebound" if rebind else "enrolment:person:enrolled",
            actor=f"person:{person.id}",
            subject=person.id,
            principal=invitation.corporate_number,
            details=details,
        )
        self.session.flush()  # the unit of work commits it, with the spent invitation
        return Enrolment(person, invitation.corporate_number, rebind)

    def _check_same_person(
        self, person: Person, authenticated: ValidatedCertificate, items: JpkiPersonalData
    ) -> str:
        """Refuse a re-bind that does not prove ``person``; returns how it was proven.

        The enrolled authentication certificate signing again proves it (a move
        reissues only the signing certificate, whose address then differs);
        otherwise the new card's four basic items must give the enrolled digest.
        A person enrolled before digests were kept is compared through the digest
        of the signing certificate stored then. Raises ``REBIND_NOT_PERMITTED`` or
        ``REBIND_IDENTITY_MISMATCH`` (whose message names no item).
        """
        _refuse_global_role(person)
        if authenticated.sha256 == person.auth_certificate_sha256:
            return "authentication-certificate"
        hsm = self.auth.hsm
        assert hsm is not None
        enrolled = enrolled_digest(hsm, person)
        if enrolled is None or not identity_digest(hsm, items, key_id=enrolled.key_id).matches(
            enrolled
        ):
            raise AuthError(
                "the new card does not carry the basic items (name, birth date, "
                "sex, address) proven at enrolment: it cannot be re-bound to "
                "this person",
                "REBIND_IDENTITY_MISMATCH",
            )
        return "basic-items"


def _refuse_global_role(person: Person) -> None:
    """A holder of a global role is re-bound by no corporation (``REBIND_NOT_PERMITTED``):
    an invitation is a corporation's act, and must not reach service-wide powers."""
    if person.role_assignments:
        raise AuthError(
            "a holder of an administrator or auditor role cannot be re-bound "
            "through a corporation's invitation",
            "REBIND_NOT_PERMITTED",
        )
