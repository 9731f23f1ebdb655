"""Signing credentials over the API (issue 11 item 1, DESIGN §6): an enrolled employee
obtains one with a fresh proof by the JPKI signing certificate, lists their own, a
representative lists the corporation's, and the owner, a representative or an
administrator revokes one.

Issuance: open a challenge of purpose ``credential`` (``POST /api/v1/auth/challenges``),
have the card's signing key sign its ``to_sign``, and send certificate and signature
with the 法人番号 of the employer. The card must be the caller's own (the enrolled
signing certificate, or a reissued one carrying the same four basic items), and the
name it proves is the certificate's ``CN``.
"""

from __future__ import annotations

import secrets
from typing import Any

import marshmallow as ma
from cryptography import x509
from flask_smorest import Blueprint

from app.audit_trail.log import AuditLog, record_refusal
from app.credentials.models import Credential
from app.credentials.service import CredentialOwner, CredentialService
from app.http.paging import page_of
from app.http.problems import ProblemError
from app.http.request_scope import (
    audit_refusals,
    current_context,
    get_session,
    refusal_recorded,
)
from app.http.schemas import Base64Bytes, PageArgs, corporate_number_field, guard_json_body
from app.http.security import allow, current_caller
from app.people.caller import Caller, CallerKind
from app.people.identity_digest import enrolled_digest, identity_digest
from app.people.models import Person, Role
from app.people.sign_in import AuthError, AuthService, ChallengePurpose
from app.people.sign_in_views import ProofSchema, card_proof
from dairi import DairiError
from hsm import KeyAlgorithm
from identity.trust import TrustPurpose
from identity.validation import ValidatedCertificate

blp = Blueprint(
    "credentials",
    __name__,
    url_prefix="/api/v1",
    description="Employee signing credentials: a key in the HSM and its "
    "certificate naming the person and the corporation",
)
blp.before_request(guard_json_body)
audit_refusals(blp.name, "credential:request:refused")

CORPORATION = "corporate_number"
# RFC 5280 reasons an owner, representative or administrator may give.
REVOCATION_REASONS = (
    x509.ReasonFlags.unspecified,
    x509.ReasonFlags.key_compromise,
    x509.ReasonFlags.affiliation_changed,
    x509.ReasonFlags.superseded,
    x509.ReasonFlags.cessation_of_operation,
)


# -- schemas ------------------------------------------------------------------


class CredentialIssueRequestSchema(ma.Schema):
    corporate_number = corporate_number_field(
        required=True,
        metadata={
            "description": "The 法人番号 of the corporation the caller is employed by and "
            "signs for (the certificate's organizationIdentifier NTRJP-…)"
        },
    )
    challenge_id = ma.fields.String(
        required=True,
        validate=ma.validate.Length(max=36),
        metadata={"description": "A challenge of purpose `credential`, unanswered"},
    )
    signing = ma.fields.Nested(
        ProofSchema,
        required=True,
        metadata={
            "description": "The JPKI signing certificate (署名用) and its signature over the "
            "challenge's to_sign"
        },
    )
    name = ma.fields.String(
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "A label for the credential, unique (default: made up)"},
    )
    algorithm = ma.fields.String(
        validate=ma.validate.OneOf([a.value for a in KeyAlgorithm]),
        metadata={"description": "Default: the service's"},
    )


class CredentialSchema(ma.Schema):
    id = ma.fields.String()
    name = ma.fields.String()
    status = ma.fields.String(
        metadata={"description": "pending, active, suspended, revoked or destroyed"}
    )
    algorithm = ma.fields.String()
    subject = ma.fields.String(metadata={"description": "RFC 4514 subject of the certificate"})
    person_id = ma.fields.String(allow_none=True)
    corporate_number = ma.fields.String(allow_none=True)
    certificate = Base64Bytes(
        attribute="certificate_der", allow_none=True, metadata={"description": "DER, base64"}
    )
    certificate_sha256 = ma.fields.String(allow_none=True)
    chain_pem = ma.fields.String(
        allow_none=True, metadata={"description": "The issuing CA certificates, PEM, issuer first"}
    )
    created_at = ma.fields.DateTime()
    revoked_at = ma.fields.DateTime(allow_none=True)
    revocation_reason = ma.fields.String(allow_none=True)
    renewed_from_id = ma.fields.String(
        allow_none=True,
        metadata={"description": "The credential this one renewed (POST …/renewal), if any"},
    )


class CredentialPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CredentialSchema))
    page = ma.fields.Integer()
    page_size = ma.fields.Integer()
    total = ma.fields.Integer()


class CredentialRevocationRequestSchema(ma.Schema):
    reason = ma.fields.String(
        load_default=x509.ReasonFlags.unspecified.value,
        validate=ma.validate.OneOf([r.value for r in REVOCATION_REASONS]),
        metadata={"description": "RFC 5280 reason"},
    )


class CredentialRevocationSchema(CredentialSchema):
    revoked_at_ca = ma.fields.Boolean(
        metadata={
            "description": "Whether the issuing CA revoked the certificate (false: an outside "
            "CA, whose operator must be asked)"
        }
    )


class CredentialRenewalRequestSchema(ma.Schema):
    challenge_id = ma.fields.String(
        required=True,
        validate=ma.validate.Length(max=36),
        metadata={"description": "A challenge of purpose `credential`, unanswered"},
    )
    signing = ma.fields.Nested(
        ProofSchema,
        required=True,
        metadata={
            "description": "The owner's JPKI signing certificate (署名用) and its signature "
            "over the challenge's to_sign, as for issuance"
        },
    )
    name = ma.fields.String(
        validate=ma.validate.Length(min=1, max=200),
        metadata={"description": "A label for the new credential, unique (default: made up)"},
    )
    algorithm = ma.fields.String(
        validate=ma.validate.OneOf([a.value for a in KeyAlgorithm]),
        metadata={"description": "Default: the old credential's"},
    )


class ReissuedMandateSchema(ma.Schema):
    from_ = ma.fields.String(
        data_key="from", attribute="from", metadata={"description": "The superseded mandate"}
    )
    to = ma.fields.String(metadata={"description": "The mandate re-issued in its place"})


class CredentialRenewalSchema(CredentialSchema):
    renewed_from = ma.fields.String(metadata={"description": "The old credential's id"})
    reissued_mandates = ma.fields.List(
        ma.fields.Nested(ReissuedMandateSchema),
        metadata={
            "description": "Each live mandate held by the old certificate, and each live "
            "descendant of one, with the mandate the attribute authority re-issued in its "
            "place (parents first); the old ones are revoked as superseded"
        },
    )


# -- helpers ------------------------------------------------------------------


def _service() -> CredentialService:
    context = current_context()
    return CredentialService(get_session(), context.hsm, context.dev_pki)


def _refused(
    tag: str, exc: DairiError, *, subject: str | None = None, principal: str | None = None
) -> None:
    get_session().rollback()
    record_refusal(
        current_context().session_factory,
        tag,
        actor=current_caller().actor,
        code=exc.code,
        subject=subject,
        principal=principal,
    )
    refusal_recorded()


def _readable(caller: Caller, credential: Credential) -> bool:
    """The owner, a representative of its corporation, an auditor or an administrator."""
    return (
        (caller.person_id is not None and caller.person_id == credential.person_id)
        or (caller.reads_all_corporations and caller.kind is not CallerKind.CLIENT)
        or (
            credential.corporate_number is not None
            and caller.holds(Role.REPRESENTATIVE, credential.corporate_number)
        )
    )


def _may_revoke(caller: Caller, credential: Credential) -> bool:
    """The owner, a representative of its corporation, or an administrator."""
    return (
        (caller.person_id is not None and caller.person_id == credential.person_id)
        or (caller.holds(Role.ADMINISTRATOR))
        or (
            credential.corporate_number is not None
            and caller.holds(Role.REPRESENTATIVE, credential.corporate_number)
        )
    )


def _visible(credential_id: str) -> Credential:
    """The credential, if the caller may see it; otherwise as if it did not exist."""
    row = get_session().get(Credential, credential_id)
    if row is None or not _readable(current_caller(), row):
        raise ProblemError("CREDENTIAL_UNKNOWN", detail=f"no credential {credential_id}")
    return row


def _shown(credential: Credential) -> dict[str, Any]:
    """The credential's :class:`CredentialSchema` attributes, to extend a response with."""
    return {
        field.attribute or name: getattr(credential, field.attribute or name)
        for name, field in CredentialSchema().fields.items()
    }


def _same_person(person: Person, signed: ValidatedCertificate) -> None:
    """Refuse a signing certificate that is not ``person``'s (``CARD_OF_ANOTHER_PERSON``):
    it must be the one enrolled, or a reissued card whose four basic items give the
    digest proven at enrolment."""
    if signed.sha256 == person.signing_certificate_sha256:
        return
    hsm = current_context().hsm
    enrolled = enrolled_digest(hsm, person)
    if (
        enrolled is not None
        and signed.personal_data is not None
        and identity_digest(hsm, signed.personal_data, key_id=enrolled.key_id).matches(enrolled)
    ):
        return
    raise AuthError(
        "the signing certificate is not the card of the person logged in", "CARD_OF_ANOTHER_PERSON"
    )


def _proven_signing_card(args: dict[str, Any]) -> tuple[Person, ValidatedCertificate]:
    """The caller and the JPKI signing certificate they have just proven: spends the
    ``credential`` challenge named by ``args["challenge_id"]`` (whatever the outcome),
    checks ``args["signing"]`` over it (path, policy, revocation now) and that the card
    is the caller's own. What issuance and renewal both require; raises the sign-in
    codes (``CHALLENGE_EXPIRED``, ``CHALLENGE_REPLAYED`` …) or ``CARD_OF_ANOTHER_PERSON``."""
    context = current_context()
    session = get_session()
    proof = card_proof(args["signing"])
    auth = AuthService(
        session, context.settings, context.certificate_validator, context.clock, hsm=context.hsm
    )
    challenge = auth.consume_challenge(args["challenge_id"], ChallengePurpose.CREDENTIAL)
    signed = auth.check_proof(challenge, proof, TrustPurpose.JPKI_SIGN)
    person = session.get(Person, current_caller().person_id)
    if person is None:  # allow(EMPLOYEE) lets only people through
        raise AuthError("only an enrolled employee holds a credential", "FORBIDDEN")
    _same_person(person, signed)
    return person, signed


# -- views --------------------------------------------------------------------


@blp.route("/credentials", methods=["POST"])
@allow(Role.EMPLOYEE)
@blp.arguments(CredentialIssueRequestSchema)
@blp.response(201, CredentialSchema)
def issue(args: dict[str, Any]) -> Credential:
    """Obtain a signing credential: a key generated in the HSM (not extractable) and a
    certificate from the service's employee-signing CA whose subject is ``CN`` = the
    name on the JPKI signing certificate just proven, ``O`` = 商号,
    ``organizationIdentifier`` = ``NTRJP-<法人番号>``.

    Needs a fresh proof over a ``credential`` challenge by the caller's own JPKI signing
    certificate (another person's card: 403 ``CARD_OF_ANOTHER_PERSON``); the caller must
    be an employee of the corporation named (``PERSON_NOT_EMPLOYEE``). The challenge is
    spent by this call, whatever the outcome.
    """
    context = current_context()
    session = get_session()
    caller = current_caller()
    corporate_number = args["corporate_number"]
    try:
        person, signed = _proven_signing_card(args)
        assert signed.personal_data is not None  # the JPKI_SIGN profile always parses it
        algorithm = KeyAlgorithm(args.get("algorithm") or context.settings.default_key_algorithm)
        name = args.get("name") or f"{person.id} {corporate_number} {secrets.token_hex(4)}"
        credential = _service().issue(
            name,
            algorithm,
            CredentialOwner(person.id, corporate_number),
            common_name=signed.personal_data.name,
        )
    except DairiError as exc:
        _refused(
            "credential:issuance:refused",
            exc,
            subject=args["challenge_id"],
            principal=corporate_number,
        )
        raise
    AuditLog(session).append(
        "credential:key:issued",
        actor=caller.actor,
        subject=credential.id,
        principal=corporate_number,
        details={
            "algorithm": credential.algorithm,
            "key_id": credential.key_id,
            "certificate_sha256": credential.certificate_sha256,
            "jpki_signing_certificate_sha256": signed.sha256,
        },
    )
    return credential


@blp.route("/credentials", methods=["GET"])
@allow(Role.EMPLOYEE)
@blp.arguments(PageArgs, location="query")
@blp.response(200, CredentialPageSchema)
def list_own(args: dict[str, Any]) -> dict[str, Any]:
    """The caller's own credentials, oldest first, in every status."""
    query = CredentialService.owned_query(person_id=current_caller().person_id)
    return page_of(get_session(), query, args)


@blp.route("/corporations/<corporate_number>/credentials", methods=["GET"])
@allow(Role.REPRESENTATIVE, Role.ADMINISTRATOR, corporation_arg=CORPORATION)
@blp.arguments(PageArgs, location="query")
@blp.response(200, CredentialPageSchema)
def list_corporation(args: dict[str, Any], corporate_number: str) -> dict[str, Any]:
    """The credentials of a corporation's employees, oldest first."""
    query = CredentialService.owned_query(corporate_number=corporate_number)
    return page_of(get_session(), query, args)


@blp.route("/credentials/<credential_id>", methods=["GET"])
@allow(Role.EMPLOYEE, Role.REPRESENTATIVE, Role.AUDITOR, Role.ADMINISTRATOR)
@blp.response(200, CredentialSchema)
def get_credential(credential_id: str) -> Credential:
    """One credential: its owner, a representative of its corporation, an auditor or an
    administrator sees it; anyone else is told there is none (``CREDENTIAL_UNKNOWN``)."""
    return _visible(credential_id)


@blp.route("/credentials/<credential_id>/revocation", methods=["POST"])
@allow(Role.EMPLOYEE, Role.REPRESENTATIVE, Role.AUDITOR, Role.ADMINISTRATOR)
@blp.arguments(CredentialRevocationRequestSchema, required=False)  # no body: reason unspecified
@blp.response(200, CredentialRevocationSchema)
def revoke(args: dict[str, Any], credential_id: str) -> dict[str, Any]:
    """Revoke a credential for good: its certificate at the issuing (development) CA, and
    its status ``revoked``, so it signs nothing again. Its owner, a representative of its
    corporation or an administrator may (others: 403 ``FORBIDDEN``; a credential the
    caller cannot see: 404 ``CREDENTIAL_UNKNOWN``)."""
    caller = current_caller()
    session = get_session()
    credential = _visible(credential_id)
    reason = x509.ReasonFlags(args["reason"])
    try:
        if not _may_revoke(caller, credential):
            raise AuthError(
                "only the owner, a representative of the corporation or an "
                "administrator revokes a credential",
                "FORBIDDEN",
            )
        at_ca = _service().revoke(credential, reason, current_context().clock())
    except DairiError as exc:
        _refused(
            "credential:revocation:refused",
            exc,
            subject=credential_id,
            principal=credential.corporate_number,
        )
        raise
    AuditLog(session).append(
        "credential:certificate:revoked",
        actor=caller.actor,
        subject=credential.id,
        principal=credential.corporate_number,
        details={
            "reason": reason.value,
            "revoked_at_ca": at_ca,
            "certificate_sha256": credential.certificate_sha256,
        },
    )
    return {**_shown(credential), "revoked_at_ca": at_ca}


@blp.route("/credentials/<credential_id>/renewal", methods=["POST"])
@allow(Role.EMPLOYEE)
@blp.arguments(CredentialRenewalRequestSchema)
@blp.response(201, CredentialRenewalSchema)
def renew(args: dict[str, Any], credential_id: str) -> dict[str, Any]:
    """Renew an active credential: a new key in the HSM and a new certificate (as
    issuance, naming the person as the card just proven), ``renewed_from_id`` the old
    credential. The attribute authority re-issues every live mandate held by the old
    certificate, and every live mandate granted under one, to the new certificate from
    the same instruction, scope and validity (new ids; ``reissued_from_id`` the old), and
    revokes the old ACs with reason ``superseded``; the old credential is revoked
    (``superseded``, at the CA too) and signs nothing again. One unit of work: all of it
    or nothing.

    The owner only (others who may see it: 403 ``FORBIDDEN``; others: 404
    ``CREDENTIAL_UNKNOWN``), with a fresh proof over a ``credential`` challenge by their
    own JPKI signing certificate (``CARD_OF_ANOTHER_PERSON``, ``CHALLENGE_EXPIRED`` …);
    the old credential must be active (409 ``CREDENTIAL_NOT_ACTIVE``). The challenge is
    spent by this call, whatever the outcome.
    """
    context = current_context()
    session = get_session()
    caller = current_caller()
    credential = _visible(credential_id)
    corporate_number = credential.corporate_number
    try:
        if caller.person_id is None or caller.person_id != credential.person_id:
            raise AuthError("only the credential's owner renews it", "FORBIDDEN")
        person, signed = _proven_signing_card(args)
        assert signed.personal_data is not None  # the JPKI_SIGN profile always parses it
        name = args.get("name") or f"{person.id} {corporate_number} {secrets.token_hex(4)}"
        renewal = _service().renew(
            credential,
            name,
            KeyAlgorithm(args.get("algorithm") or credential.algorithm),
            common_name=signed.personal_data.name,
            authority=context.attribute_authority,
            actor=caller.actor,
            now=context.clock(),
        )
    except DairiError as exc:
        _refused(
            "credential:renewal:refused", exc, subject=credential_id, principal=corporate_number
        )
        raise
    new, old = renewal.credential, renewal.previous
    reissued = [{"from": r.old.id, "to": r.new.id} for r in renewal.reissued]
    log = AuditLog(session)
    log.append(
        "credential:renewal:made",
        actor=caller.actor,
        subject=new.id,
        principal=corporate_number,
        details={
            "renewed_from": old.id,
            "algorithm": new.algorithm,
            "key_id": new.key_id,
            "certificate_sha256": new.certificate_sha256,
            "previous_certificate_sha256": old.certificate_sha256,
            "jpki_signing_certificate_sha256": signed.sha256,
            "reissued_mandates": reissued,
        },
    )
    log.append(
        "credential:certificate:revoked",
        actor=caller.actor,
        subject=old.id,
        principal=corporate_number,
        details={
            "reason": x509.ReasonFlags.superseded.value,
            "revoked_at_ca": renewal.revoked_at_ca,
            "certificate_sha256": old.certificate_sha256,
            "superseded_by": new.id,
        },
    )
    return {**_shown(new), "renewed_from": old.id, "reissued_mandates": reissued}
