"""Employee signing credentials: a key generated in the HSM and its certificate.

Two ways to certify a key: the development employee-signing CA (``issue``), or a
real CA through a CSR (``request`` then ``import_certificate``). A failure after
the key was generated destroys the key again, so nothing is left half-made.

Every credential belongs to a person of a corporation (DESIGN §6): an enrolled
employee, named in the certificate as enrolled. A mandate AC may only certify a
live credential of its grantee (issue 9.4).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.credentials.models import Credential, CredentialStatus
from app.mandates.reissue import MandateReissue, ReissuedMandate
from app.people.models import Corporation, Employment, Person
from dairi import DairiError
from delegation.certificates import AttributeAuthority
from hsm import Hsm, HsmError, KeyAlgorithm, KeyRef, build_csr
from signing import SigningCredential

if TYPE_CHECKING:  # development PKI: imported where a development certificate is made
    from devpki import DevPki, EndEntity

DER = serialization.Encoding.DER
MAX_NAME_LENGTH = 200


class CredentialError(DairiError):
    """A credential request that cannot be honoured."""

    code = "CREDENTIAL_INVALID"


def _validate_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise CredentialError(
            f"a credential name has 1 to {MAX_NAME_LENGTH} characters", "CREDENTIAL_NAME_INVALID"
        )
    return name


def read_certificates(data: bytes) -> list[bytes]:
    """DER certificates from PEM (one or many) or a single DER certificate."""
    if pem.detect(data):
        ders = [der for _, _, der in pem.unarmor(data, multiple=True)]
    else:
        ders = [data]
    for der in ders:
        try:
            x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise CredentialError("not an X.509 certificate", "CERTIFICATE_INVALID") from exc
    return ders


@dataclass(frozen=True)
class CredentialOwner:
    """Whose key it is: an enrolled person and the corporation (法人番号) they sign for."""

    person_id: str
    corporate_number: str


@dataclass(frozen=True)
class _Employee:
    name: str  # as enrolled (the JPKI signing certificate's name)
    corporation_name: str


@dataclass(frozen=True)
class CredentialRenewal:
    """What a renewal made: the new credential, the old one (now revoked as
    superseded), the mandates re-issued to the new certificate, and whether the CA
    revoked the old certificate."""

    credential: Credential
    previous: Credential
    reissued: tuple[ReissuedMandate, ...]
    revoked_at_ca: bool


class CredentialService:
    """Creates, certifies and looks up credentials (database + HSM)."""

    def __init__(self, session: Session, hsm: Hsm, pki: DevPki | None) -> None:
        self._session = session
        self._hsm = hsm
        self._pki = pki

    def get(self, name_or_id: str) -> Credential:
        """The credential with this name or id; raises ``CREDENTIAL_UNKNOWN``."""
        found = self._session.scalars(
            select(Credential).where(
                (Credential.name == name_or_id) | (Credential.id == name_or_id)
            )
        ).first()
        if found is None:
            raise CredentialError(f"no credential {name_or_id!r}", "CREDENTIAL_UNKNOWN")
        return found

    def list(self) -> list[Credential]:
        return list(self._session.scalars(select(Credential).order_by(Credential.created_at)))

    def owned(
        self, *, person_id: str | None = None, corporate_number: str | None = None
    ) -> Sequence[Credential]:
        """The credentials of a person and/or a corporation, oldest first."""
        query = self.owned_query(person_id=person_id, corporate_number=corporate_number)
        return self._session.scalars(query).all()

    @staticmethod
    def owned_query(
        *, person_id: str | None = None, corporate_number: str | None = None
    ) -> Select[Credential]:
        """The query of :meth:`owned`, for a listing to page (``app.http.paging``)."""
        query = select(Credential).order_by(Credential.created_at, Credential.id)
        if person_id is not None:
            query = query.where(Credential.person_id == person_id)
        if corporate_number is not None:
            query = query.where(Credential.corporate_number == corporate_number)
        return query

    def revoke(self, credential: Credential, reason: x509.ReasonFlags, now: datetime) -> bool:
        """Revoke ``credential``: its certificate at the development CA that issued it,
        and its status ``revoked`` for good (it signs nothing again, see
        :meth:`signing_credential`). Returns whether the CA revoked the certificate
        (False: no development PKI, or a certificate of an outside CA, whose operator
        must be asked). Raises ``CREDENTIAL_ALREADY_REVOKED`` or, for a destroyed key,
        ``CREDENTIAL_NOT_ACTIVE``."""
        if credential.status == CredentialStatus.REVOKED:
            raise CredentialError("the credential is revoked already", "CREDENTIAL_ALREADY_REVOKED")
        if credential.status == CredentialStatus.DESTROYED:
            raise CredentialError("the credential's key was destroyed", "CREDENTIAL_NOT_ACTIVE")
        at_ca = False
        if credential.certificate_der is not None and self._pki is not None:
            certificate = x509.load_der_x509_certificate(credential.certificate_der)
            ca = self._pki.cas["employee-signing"]
            if certificate.issuer == ca.certificate.subject:
                from devpki.ca import UnknownCertificate

                with contextlib.suppress(UnknownCertificate):
                    ca.revoke(certificate.serial_number, reason, now=now)
                    at_ca = True
        credential.status = CredentialStatus.REVOKED.value
        credential.revoked_at = now
        credential.revocation_reason = reason.value
        self._session.flush()
        return at_ca

    def renew(
        self,
        credential: Credential,
        name: str,
        algorithm: KeyAlgorithm,
        *,
        common_name: str | None,
        authority: AttributeAuthority,
        actor: str,
        now: datetime,
    ) -> CredentialRenewal:
        """Renew an active credential (DESIGN §6): a new key and certificate for the
        same owner (as :meth:`issue`, ``renewed_from_id`` naming the old one); the
        attribute authority re-issues every live mandate held by the old certificate,
        and their live descendants, to the new one and revokes the old ACs as
        ``superseded`` (:mod:`app.mandates.reissue`); the old credential is revoked,
        reason ``superseded``, at the CA too, so it signs nothing again.

        All in the caller's unit of work. A failure after the new key was made rolls
        the session back and destroys that key, so nothing is left half-made (the
        development CA's record of the certificate it issued stays, never used).
        Raises ``CREDENTIAL_NOT_ACTIVE`` (the old credential is pending, suspended,
        revoked or destroyed, as read under its row lock) and what :meth:`issue` raises.
        """
        locked = self._session.scalars(
            select(Credential)
            .where(Credential.id == credential.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        if (
            locked.status != CredentialStatus.ACTIVE
            or locked.certificate_sha256 is None
            or locked.person_id is None
            or locked.corporate_number is None
        ):
            raise CredentialError(
                f"credential {locked.id} is {locked.status}: only an active one is renewed",
                "CREDENTIAL_NOT_ACTIVE",
            )
        owner = CredentialOwner(locked.person_id, locked.corporate_number)
        new = self.issue(name, algorithm, owner, common_name=common_name)
        try:
            new.renewed_from_id = locked.id
            reissued = MandateReissue(self._session, authority, now, actor).reissue_held_by(
                locked.certificate_sha256, _certificate(new), renewal=new.id
            )
            at_ca = self.revoke(locked, x509.ReasonFlags.superseded, now)
        except BaseException:
            self._session.rollback()
            with contextlib.suppress(HsmError):
                self._hsm.destroy_key(new.key_ref)
            raise
        return CredentialRenewal(new, locked, tuple(reissued), at_ca)

    def issue(
        self,
        name: str,
        algorithm: KeyAlgorithm,
        owner: CredentialOwner,
        *,
        common_name: str | None = None,
    ) -> Credential:
        """Generate a key for ``owner`` and certify it with the development
        employee-signing CA; the certificate names the person (``common_name``: the
        name on the JPKI signing certificate just proven; default: as enrolled), the
        corporation's 商号 and ``NTRJP-<法人番号>``.

        Raises ``PERSON_NOT_FOUND`` / ``PERSON_NOT_EMPLOYEE`` (the owner is not an
        enrolled employee of the corporation), ``DEV_PKI_UNAVAILABLE``,
        ``CREDENTIAL_NAME_INVALID`` / ``CREDENTIAL_NAME_TAKEN``.
        """
        if self._pki is None:
            raise CredentialError(
                "no development PKI: use `credential request` and a real CA", "DEV_PKI_UNAVAILABLE"
            )
        pki = self._pki
        employee = self._employee(owner)
        return self._create(
            name,
            algorithm,
            owner,
            lambda ref: pki.issue_employee_certificate(
                common_name or employee.name,
                self._public_key(ref),
                corporate_name=employee.corporation_name,
                corporate_number=owner.corporate_number,
            ),
        )

    def request(
        self, name: str, algorithm: KeyAlgorithm, subject: asn1_x509.Name, owner: CredentialOwner
    ) -> tuple[Credential, bytes]:
        """Generate a key for ``owner`` and return a CSR for a real CA; the credential
        stays pending. Raises as :meth:`issue` does (but needs no development PKI)."""
        csrs: list[bytes] = []
        self._employee(owner)

        def make_csr(ref: KeyRef) -> None:
            csrs.append(build_csr(self._hsm, ref, subject))

        credential = self._create(name, algorithm, owner, make_csr)
        return credential, csrs[0]

    def employee_subject(self, owner: CredentialOwner) -> asn1_x509.Name:
        """The subject a CSR for ``owner`` asks for: the person as enrolled, the 商号
        and ``NTRJP-<法人番号>``."""
        employee = self._employee(owner)
        return asn1_x509.Name.build(
            {
                "country_name": "JP",
                "organization_name": employee.corporation_name,
                "organization_identifier": f"NTRJP-{owner.corporate_number}",
                "common_name": employee.name,
            }
        )

    # Sequence, not list: in this class body `list` names the method above, so mypy read
    # `list[bytes]` as an invalid type and checked no caller of chain_der (issue 10.7).
    def import_certificate(
        self, name_or_id: str, certificate_der: bytes, chain_der: Sequence[bytes]
    ) -> Credential:
        """Attach the certificate a CA returned; it must certify this credential's key."""
        credential = self.get(name_or_id)
        if credential.status == CredentialStatus.DESTROYED:
            raise CredentialError("the credential's key was destroyed", "CREDENTIAL_NOT_ACTIVE")
        cert = x509.load_der_x509_certificate(certificate_der)
        spki = cert.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if spki != self._hsm.public_key_info(credential.key_ref):
            raise CredentialError("the certificate is for another key", "CERTIFICATE_KEY_MISMATCH")
        try:
            usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or not (usage.digital_signature or usage.content_commitment):
            raise CredentialError(
                "the certificate does not allow signing", "CERTIFICATE_KEY_USAGE_INVALID"
            )
        self._hsm.store_certificate(credential.key_ref, certificate_der)
        credential.certificate_der = certificate_der
        credential.certificate_sha256 = hashlib.sha256(certificate_der).hexdigest()
        credential.chain_pem = _pem_chain(chain_der)
        credential.subject = cert.subject.rfc4514_string()
        credential.status = CredentialStatus.ACTIVE.value
        self._session.flush()  # the caller's unit of work commits, with its audit event
        return credential

    def signing_credential(self, credential: Credential) -> SigningCredential:
        """The signing view of an active credential; raises ``CREDENTIAL_NOT_ACTIVE``."""
        if credential.status != CredentialStatus.ACTIVE or credential.certificate_der is None:
            raise CredentialError(
                f"credential {credential.name!r} is {credential.status}", "CREDENTIAL_NOT_ACTIVE"
            )
        chain = read_certificates(credential.chain_pem.encode()) if credential.chain_pem else []
        return SigningCredential(
            credential.key_ref,
            KeyAlgorithm(credential.algorithm),
            credential.certificate_der,
            tuple(chain),
        )

    # -- internals ----------------------------------------------------------

    def _public_key(self, ref: KeyRef):  # type: ignore[no-untyped-def]
        return serialization.load_der_public_key(self._hsm.public_key_info(ref))

    def _employee(self, owner: CredentialOwner) -> _Employee:
        """The owner as enrolled, if an employee of the corporation now."""
        person = self._session.get(Person, owner.person_id)
        if person is None:
            raise CredentialError(f"no person {owner.person_id}", "PERSON_NOT_FOUND")
        corporation = self._session.get(Corporation, owner.corporate_number)
        employed = (
            corporation is not None
            and self._session.scalars(
                select(Employment.id).where(
                    Employment.person_id == owner.person_id,
                    Employment.corporate_number == owner.corporate_number,
                    Employment.ended_at.is_(None),
                )
            ).first()
        )
        if not employed:
            raise CredentialError(
                f"person {owner.person_id} is not an enrolled employee of {owner.corporate_number}",
                "PERSON_NOT_EMPLOYEE",
            )
        assert corporation is not None
        return _Employee(person.name, corporation.name)

    def _create(
        self,
        name: str,
        algorithm: KeyAlgorithm,
        owner: CredentialOwner,
        certify: Callable[[KeyRef], EndEntity | None],
    ) -> Credential:
        name = _validate_name(name)
        if self._session.scalars(select(Credential.id).where(Credential.name == name)).first():
            raise CredentialError(f"a credential named {name!r} exists", "CREDENTIAL_NAME_TAKEN")
        ref = self._hsm.generate_key(algorithm)
        try:
            issued = certify(ref)
            credential = Credential(
                name=name,
                algorithm=algorithm.value,
                token_label=ref.token_label,
                key_id=ref.key_id,
                key_version=ref.version,
                status=CredentialStatus.PENDING.value,
                subject=name,
                person_id=owner.person_id,
                corporate_number=owner.corporate_number,
            )
            if issued is not None:
                cert_der = issued.certificate.public_bytes(DER)
                self._hsm.store_certificate(ref, cert_der)
                credential.certificate_der = cert_der
                credential.certificate_sha256 = hashlib.sha256(cert_der).hexdigest()
                credential.chain_pem = _pem_chain([c.public_bytes(DER) for c in issued.chain])
                credential.subject = issued.certificate.subject.rfc4514_string()
                credential.status = CredentialStatus.ACTIVE.value
            self._session.add(credential)
            # Flushed, not committed: whoever runs the service commits the unit of
            # work (with the audit event that records the issuance).
            self._session.flush()
        except BaseException as exc:
            self._session.rollback()
            with contextlib.suppress(HsmError):
                self._hsm.destroy_key(ref)
            if isinstance(exc, IntegrityError):
                raise CredentialError(
                    f"a credential named {name!r} exists", "CREDENTIAL_NAME_TAKEN"
                ) from exc
            raise
        return credential


def _certificate(credential: Credential) -> bytes:
    assert credential.certificate_der is not None  # issued by the development CA
    return credential.certificate_der


def _pem_chain(chain_der: Iterable[bytes]) -> str:
    return "".join(pem.armor("CERTIFICATE", der).decode() for der in chain_der)
