"""Login by proof of possession (DESIGN §4), access tokens and API clients.

A login is: open a challenge, have the card sign its canonical bytes, send back
certificate and signature. The challenge is consumed by the first answer, right
or wrong, so each one buys at most one attempt. Employees prove themselves with
the JPKI authentication certificate they enrolled; representatives with the
commercial-registration certificate, which itself names the corporation.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from sqlalchemy import bindparam, delete, func, literal, select, update
from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.http.ratelimit import enforce
from app.people.caller import LiveToken
from app.people.identity_digest import bind_signing_certificate, enrolled_digest
from app.people.models import (
    AccessToken,
    ApiClient,
    ApiClientCorporation,
    AuthChallenge,
    Corporation,
    Employment,
    Person,
    PersonStatus,
    Role,
    RoleAssignment,
)
from app.settings import Settings
from app.unit_of_work import separate_transaction
from dairi import DairiError
from hsm import Hsm
from identity.profiles import CertificateKind, certificate_kind
from identity.proof import Challenge, verify_possession
from identity.trust import TrustPurpose
from identity.validation import CertificateRefused, CertificateValidator, ValidatedCertificate

TOKEN_PREFIX = "dairi_at_"  # noqa: S105 - a prefix, not a secret
# challenge_rate_per_minute counts per minute.
CHALLENGE_RATE_WINDOW_SECONDS = 60


class AuthError(DairiError):
    """A login, token or challenge is refused; ``code`` says why."""


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


class ChallengePurpose:
    LOGIN = "login"
    ENROLMENT = "enrolment"
    # A fresh proof by the JPKI signing certificate for a signing credential
    # (app.credentials.views): the name it proves goes into the certificate.
    CREDENTIAL = "credential"
    ALL = (LOGIN, ENROLMENT, CREDENTIAL)


@dataclass(frozen=True)
class CardProof:
    """A certificate and its signature over the challenge's bytes."""

    certificate_der: bytes
    signature: bytes
    intermediates: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once; only its hash is stored
    row: AccessToken


@dataclass(frozen=True)
class IssuedClient:
    client_secret: str  # shown once
    row: ApiClient


class AuthService:
    """Challenges, logins and tokens against one database session.

    ``hsm`` computes identity digests (enrolment, and the upgrade of a person
    enrolled before digests were kept, at login); token checks do not need it.
    """

    def __init__(
        self,
        session: Session,
        settings: Settings,
        validator: CertificateValidator,
        clock: Callable[[], datetime],
        *,
        hsm: Hsm | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.validator = validator
        self.clock = clock
        self.hsm = hsm

    # -- challenges -----------------------------------------------------------

    def open_challenge(
        self, purpose: str, client_keys: Sequence[str]
    ) -> tuple[AuthChallenge, Challenge]:
        """Open a challenge for the client named by ``client_keys`` (its address
        first, then the authenticated person, certificate or API client, if any).

        The rate limit comes first, before anything else is written: one atomic
        counter per key and minute (:func:`app.http.ratelimit.enforce`), so it holds
        across workers. Then expired challenges are purged. Raises
        :class:`app.http.ratelimit.RateLimited` when one of the keys has opened
        ``challenge_rate_per_minute`` this minute and ``CHALLENGES_EXHAUSTED``
        when ``max_open_challenges`` are open.
        """
        now = self.clock()
        # The hit counts even when it is refused (429) or no challenge is left (503): in
        # a transaction of its own, which the refusal's rollback does not undo.
        with separate_transaction(self.session):
            enforce(
                self.session,
                [f"challenge:{key}" for key in client_keys],
                limit=self.settings.challenge_rate_per_minute,
                window_seconds=CHALLENGE_RATE_WINDOW_SECONDS,
                now=now,
                what="challenges from this client",
            )
            self.session.execute(delete(AuthChallenge).where(AuthChallenge.expires_at <= now))
            open_count = self.session.scalar(select(func.count()).select_from(AuthChallenge))
            if (open_count or 0) >= self.settings.max_open_challenges:
                raise AuthError("too many open challenges; retry shortly", "CHALLENGES_EXHAUSTED")
        challenge = Challenge.new(
            purpose=purpose,
            service=self.settings.public_base_url,
            now=now,
            lifetime=timedelta(seconds=self.settings.challenge_seconds),
        )
        row = AuthChallenge(
            nonce=challenge.nonce,
            purpose=purpose,
            client_key=client_keys[0],
            issued_at=challenge.issued_at,
            expires_at=challenge.expires_at,
        )
        self.session.add(row)  # the unit of work stores it with the answer that gives it
        self.session.flush()
        return row, challenge

    def consume_challenge(self, challenge_id: str, purpose: str) -> Challenge:
        """Mark the challenge used and return it. Spent in a transaction of its own
        (:func:`app.unit_of_work.separate_transaction`), before anything else of the
        request is written: a refused answer rolls the request back, yet the challenge
        must stay spent, or it could be answered again.

        Raises ``CHALLENGE_NOT_FOUND``, ``CHALLENGE_PURPOSE_MISMATCH``,
        ``CHALLENGE_REPLAYED`` (already answered) or ``CHALLENGE_EXPIRED``.
        """
        now = self.clock()
        with separate_transaction(self.session):
            row = self.session.execute(
                select(AuthChallenge).where(AuthChallenge.id == challenge_id).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise AuthError(
                    "no such challenge (unknown, or expired and purged)", "CHALLENGE_NOT_FOUND"
                )
            if row.used_at is not None:
                raise AuthError("the challenge was already answered", "CHALLENGE_REPLAYED")
            if row.expires_at <= now:
                raise AuthError("the challenge has expired; open a new one", "CHALLENGE_EXPIRED")
            if row.purpose != purpose:
                raise AuthError(
                    f"the challenge was opened for {row.purpose}, not {purpose}",
                    "CHALLENGE_PURPOSE_MISMATCH",
                )
            row.used_at = now
        return Challenge(
            row.nonce, row.purpose, self.settings.public_base_url, row.issued_at, row.expires_at
        )

    # -- proofs ---------------------------------------------------------------

    def check_proof(
        self, challenge: Challenge, proof: CardProof, purpose: TrustPurpose
    ) -> ValidatedCertificate:
        """Signature first (cheap), then path, policy, key usage and revocation now."""
        certificate = x509.load_der_x509_certificate(proof.certificate_der)
        verify_possession(certificate, challenge.to_sign(), proof.signature)
        return self.validator.validate_now(
            proof.certificate_der, purpose, intermediates=proof.intermediates
        )

    # -- login ----------------------------------------------------------------

    def login(self, challenge_id: str, proof: CardProof) -> IssuedToken:
        """Answer a login challenge; an access token for the person or representative.

        Raises :class:`AuthError`, :class:`identity.proof.ProofRefused` or
        :class:`identity.validation.CertificateRefused` with the refusal's code.
        """
        challenge = self.consume_challenge(challenge_id, ChallengePurpose.LOGIN)
        kind = certificate_kind(asn1_x509.Certificate.load(proof.certificate_der))
        if kind is CertificateKind.CORPORATE_REGISTRATION:
            return self._representative_token(
                self.check_proof(challenge, proof, TrustPurpose.REGISTRAR)
            )
        validated = self.check_proof(challenge, proof, TrustPurpose.JPKI_AUTH)
        person = self.session.scalar(
            select(Person).where(Person.auth_certificate_sha256 == validated.sha256)
        )
        if person is None:
            raise AuthError(
                "this authentication certificate is not enrolled", "CERTIFICATE_NOT_ENROLLED"
            )
        self.check_signing_certificate(person)
        return self._issue_token(
            person_id=person.id, name=person.name, certificate_sha256=validated.sha256
        )

    def check_signing_certificate(self, person: Person) -> None:
        """The enrolled signing certificate must still stand: revoked for
        ``affiliationChanged`` (or expired) means the card was reissued or the
        four items changed, so the person must re-enrol (``REENROLL_REQUIRED``).

        Checked from the row's status reference (issuer, serial, where its status
        is published), not from the certificate, which is not kept. A row enrolled
        before that validates its stored certificate once and is upgraded: digest
        and reference recorded, the certificate dropped unless keep_personal_data.
        """
        try:
            if person.signing_certificate_status_ref is not None:
                self.validator.check_status_now(
                    person.signing_certificate_status_ref, TrustPurpose.JPKI_SIGN
                )
            else:
                self._upgrade_enrolment(person)
        except CertificateRefused as exc:
            if exc.code in {"REENROLL_REQUIRED", "CERTIFICATE_EXPIRED"}:
                # Stands although the login is refused (and rolled back).
                with separate_transaction(self.session):
                    person.status = PersonStatus.REENROLL_REQUIRED.value
                raise AuthError(
                    "the enrolled signing certificate is no longer valid "
                    f"({exc.code}); enrol again with the new card",
                    "REENROLL_REQUIRED",
                ) from exc
            raise

    def _upgrade_enrolment(self, person: Person) -> None:
        """Give a person enrolled before migration 0005 a digest and a status reference
        from the stored signing certificate (validated now; raises its refusal)."""
        assert self.hsm is not None and person.signing_certificate_der is not None
        signed = self.validator.validate_now(person.signing_certificate_der, TrustPurpose.JPKI_SIGN)
        digest = enrolled_digest(self.hsm, person)
        assert digest is not None  # computed from the certificate just validated
        bind_signing_certificate(
            person, signed, digest, keep_personal_data=self.settings.keep_personal_data
        )

    def _representative_token(self, validated: ValidatedCertificate) -> IssuedToken:
        corporation = validated.corporation
        assert corporation is not None  # the REGISTRAR profile always parses it
        if corporation.representative_title not in self.settings.representative_titles:
            raise AuthError(
                f"the title {corporation.representative_title!r} is not a representative title",
                "NOT_A_REPRESENTATIVE",
            )
        row = self.session.get(Corporation, corporation.corporate_number)
        if row is None:
            self.session.add(
                Corporation(
                    corporate_number=corporation.corporate_number,
                    registered_number=corporation.registered_number,
                    name=corporation.corporate_name,
                )
            )
            self.session.flush()  # the token refers to it
        else:
            row.name = corporation.corporate_name  # the registry is authoritative
        return self._issue_token(
            corporate_number=corporation.corporate_number,
            name=corporation.representative_name or "",
            title=corporation.representative_title,
            certificate_sha256=validated.sha256,
            certificate_der=validated.der,
        )

    def _issue_token(
        self,
        *,
        certificate_sha256: str,
        name: str,
        person_id: str | None = None,
        corporate_number: str | None = None,
        title: str | None = None,
        certificate_der: bytes | None = None,
    ) -> IssuedToken:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        row = AccessToken(
            token_sha256=sha256_hex(token),
            person_id=person_id,
            corporate_number=corporate_number,
            name=name,
            title=title,
            certificate_sha256=certificate_sha256,
            certificate_der=certificate_der,
            issued_at=now,
            expires_at=now + timedelta(seconds=self.settings.access_token_seconds),
        )
        self.session.add(row)
        self.session.flush()
        return IssuedToken(token, row)

    # -- tokens and clients -----------------------------------------------------

    def token(self, presented: str) -> LiveToken:
        """The live token for a presented bearer token, whose certificate still stands.

        Raises ``TOKEN_INVALID`` (unknown, revoked, or its certificate no longer the
        enrolled one), ``TOKEN_EXPIRED``, ``TOKEN_CERTIFICATE_REVOKED`` (see
        :meth:`check_token_certificate`), or lets ``REVOCATION_STATUS_UNAVAILABLE``
        through (:class:`CertificateRefused`, a 503: the status cannot be vouched for).
        """
        # Every request runs this: one statement for the token and its person's
        # enrolled certificate, read as plain rows (no ORM objects to build).
        found = (
            self.session.connection()
            .execute(_TOKEN_AND_PERSON, {"token_sha256": sha256_hex(presented)})
            .first()
        )
        if found is None or found.revoked_at is not None:
            raise AuthError("the access token is not valid", "TOKEN_INVALID")
        token = LiveToken(
            found.id,
            found.person_id,
            found.corporate_number,
            found.name,
            found.certificate_sha256,
            found.expires_at,
        )
        if token.expires_at <= self.clock():
            raise AuthError("the access token has expired; log in again", "TOKEN_EXPIRED")
        if token.person_id is None:
            der, purpose = found.certificate_der, TrustPurpose.REGISTRAR
        else:
            bound = found.enrolled_sha256 == token.certificate_sha256
            der, purpose = (found.enrolled_der if bound else None), TrustPurpose.JPKI_AUTH
        self.check_token_certificate(token, der, purpose)
        return token

    def check_token_certificate(
        self, token: LiveToken, der: bytes | None, purpose: TrustPurpose
    ) -> None:
        """A token lives only as long as the certificate that earned it (``der``): a
        person's must still be the enrolled authentication certificate, a
        representative's registration certificate (kept on the token's row) must
        still validate. Checked through the validator's cache, so a revocation ends
        the token at most ``revocation_cache_seconds`` after it is published (or at
        the revocation data's nextUpdate, if sooner); the token is then revoked
        (audited) and later uses are plain ``TOKEN_INVALID``, with no revocation check.

        Raises ``TOKEN_CERTIFICATE_REVOKED`` (the certificate is revoked: a 401, where
        a login with it is a 403 ``CERTIFICATE_REVOKED``) or ``TOKEN_INVALID`` (any
        other refusal; no ``der``: not the enrolled certificate, or a token from before
        this binding).
        """
        if der is None:
            raise AuthError(
                "the access token's certificate is not the enrolled one; log in again",
                "TOKEN_INVALID",
            )
        try:
            self.validator.validate_now(der, purpose)
        except CertificateRefused as exc:
            if exc.code == "REVOCATION_STATUS_UNAVAILABLE":
                raise
            # Ended and audited once, when found, although this request is refused.
            with separate_transaction(self.session):
                self.revoke_token(token)
                AuditLog(self.session).append(
                    "auth:token:revoked",
                    actor="service",
                    subject=token.id,
                    principal=token.corporate_number,
                    details={"reason": exc.code, "certificate_sha256": token.certificate_sha256},
                )
            code = (
                "TOKEN_CERTIFICATE_REVOKED"
                if exc.code in {"CERTIFICATE_REVOKED", "REENROLL_REQUIRED"}
                else "TOKEN_INVALID"
            )
            raise AuthError(
                "the certificate that earned this access token is no longer "
                f"valid ({exc.code}); log in again",
                code,
            ) from None

    def revoke_token(self, token: LiveToken) -> None:
        self.session.execute(
            update(AccessToken)
            .where(AccessToken.id == token.id, AccessToken.revoked_at.is_(None))
            .values(revoked_at=self.clock())
        )

    def create_client(
        self,
        name: str,
        scopes: tuple[str, ...],
        created_by: str,
        *,
        corporations: tuple[str, ...] = (),
        all_corporations: bool = False,
    ) -> IssuedClient:
        """Register an API client that reads ``corporations`` (法人番号), or every
        corporation with ``all_corporations`` (the caller checks that an
        administrator asks); exactly one of the two. The secret is returned once.

        Raises ``CORPORATION_NOT_FOUND`` for a 法人番号 dairi does not know and
        ``CLIENT_CORPORATIONS_REQUIRED`` unless exactly one of the two is given.
        """
        if all_corporations == bool(corporations):
            raise AuthError(
                "register the client for named corporations or for all",
                "CLIENT_CORPORATIONS_REQUIRED",
            )
        named = sorted(set(corporations))
        for number in named:
            if self.session.get(Corporation, number) is None:
                raise AuthError(f"no corporation {number}", "CORPORATION_NOT_FOUND")
        secret = secrets.token_urlsafe(32)
        row = ApiClient(
            client_id="dairi_client_" + secrets.token_hex(8),
            name=name,
            secret_sha256=sha256_hex(secret),
            scopes=" ".join(sorted(set(scopes))),
            all_corporations=all_corporations,
            created_by=created_by,
            corporations=[ApiClientCorporation(corporate_number=n) for n in named],
        )
        self.session.add(row)
        self.session.flush()
        return IssuedClient(secret, row)

    def client(self, client_id: str, secret: str) -> ApiClient:
        """The live API client for these credentials; ``CLIENT_CREDENTIALS_INVALID`` otherwise."""
        row = self.session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
        expected = row.secret_sha256 if row is not None else "0" * 64
        matches = secrets.compare_digest(expected, sha256_hex(secret))
        if row is None or not matches or row.revoked_at is not None:
            raise AuthError("the client credentials are not valid", "CLIENT_CREDENTIALS_INVALID")
        return row


# Built once (each request runs them, with its own values): the token with its person,
# and a person's roles and current employers in one statement.
_TOKEN_AND_PERSON = (
    select(
        AccessToken.id,
        AccessToken.person_id,
        AccessToken.corporate_number,
        AccessToken.name,
        AccessToken.certificate_sha256,
        AccessToken.certificate_der,
        AccessToken.expires_at,
        AccessToken.revoked_at,
        Person.auth_certificate_sha256.label("enrolled_sha256"),
        Person.auth_certificate_der.label("enrolled_der"),
    )
    .outerjoin(Person, Person.id == AccessToken.person_id)
    .where(AccessToken.token_sha256 == bindparam("token_sha256"))
)
_ROLES_AND_EMPLOYERS = (
    select(literal(True).label("is_role"), RoleAssignment.role.label("value"))
    .where(RoleAssignment.person_id == bindparam("person_id"))
    .union_all(
        select(literal(False), Employment.corporate_number).where(
            Employment.person_id == bindparam("person_id"), Employment.ended_at.is_(None)
        )
    )
)


def roles_of(
    session: Session, token: LiveToken
) -> tuple[frozenset[Role], frozenset[str], frozenset[str]]:
    """(global roles, corporations employed by, corporations represented) for a token."""
    if token.person_id is None:
        return frozenset(), frozenset(), frozenset({token.corporate_number or ""})
    # Both in one statement, read now (never from a cache): a role or employment
    # taken away is refused on the very next request.
    held = session.connection().execute(_ROLES_AND_EMPLOYERS, {"person_id": token.person_id}).all()
    roles = frozenset(Role(value) for is_role, value in held if is_role)
    employers = frozenset(value for is_role, value in held if not is_role)
    return roles, employers, frozenset()
