"""Mandates (電子委任状) in the service: granting, revoking and judging chains (DESIGN §5).
The rules themselves are :mod:`delegation`'s; this module checks the grantors'
certificates, keeps the rows, and records every grant and revocation in the audit log,
in the caller's unit of work: it never commits (the request or command does). The
authority query is :mod:`app.mandates.authority`, the AA's CRL and OCSP
:mod:`app.mandates.ac_status`, a representative's later revocation
:mod:`app.mandates.chains` (checked) and :mod:`app.mandates.sweep` (recorded).

Concurrency: a grant under a parent locks the parent row (``SELECT … FOR UPDATE``)
before reading its status, and a revocation locks each mandate before revoking it and
only then reads its children. Whichever comes second sees the other's result, so a
child is never left valid under a revoked parent.

A grant instruction is accepted once (its digest is kept in ``mandate_instructions``)
and only while fresh (``instruction_max_age_seconds``); the holder certificate must
be a live credential of the grantee person for the principal (issue 9.3, 9.4). A
revocation re-makes the AA's published CRL in the same transaction
(:mod:`app.mandates.publication`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from asn1crypto import pem
from sqlalchemy import ColumnElement, cast, exists, func, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.credentials.models import Credential, CredentialStatus
from app.mandates.chains import hop_of, representative_revoked_at
from app.mandates.models import Mandate, MandateInstruction, MandateStatus
from app.mandates.publication import publish_crl
from app.people.caller import Caller, Permission, permits, require
from app.people.models import Corporation, Employment, Person
from app.settings import Settings
from dairi import DairiError
from delegation.certificates import (
    AttributeAuthority,
    MandateParty,
    MandateTerms,
    parse_mandate_certificate,
)
from delegation.chain import ChainVerdict, Hop, evaluate_chain, judge_hop
from delegation.instruction import (
    DelegationRefused,
    GrantInstruction,
    check_fresh,
    check_representative_grant,
    check_sub_delegation_grantor,
    check_sub_delegation_signers,
    instruction_signers,
)
from delegation.scope import Purpose, Scope
from identity.names import same_name
from identity.profiles import RegisteredCorporation
from identity.trust import TrustPurpose
from identity.validation import CertificateRefused, CertificateValidator

# CRL reasons (asn1crypto names) a revocation may give.
REVOCATION_REASONS = (
    "privilege_withdrawn",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "unspecified",
)


class MandateError(DairiError):
    """A mandate request that cannot be served: MANDATE_NOT_FOUND, MANDATE_ALREADY_REVOKED,
    PARENT_NOT_FOUND, GRANTEE_NOT_EMPLOYEE, HOLDER_NOT_GRANTEE, INSTRUCTION_REPLAYED,
    REVOCATION_REASON_INVALID."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def scope_lists(dialect: str, key: str, value: str) -> ColumnElement[bool]:
    """The mandate's scope (``scope_json``) has ``value`` in its list ``key``, judged by
    the database's own JSON functions."""
    if dialect == "postgresql":
        return cast(Mandate.scope_json, JSONB)[key].has_key(value)
    element = func.json_each(Mandate.scope_json, f"$.{key}").table_valued("value")
    return exists(select(1).select_from(element).where(element.c.value == value))


def scope_is_null(dialect: str, key: str) -> ColumnElement[bool]:
    """The scope's ``key`` is null (any entity, any case)."""
    if dialect == "postgresql":
        return func.jsonb_typeof(cast(Mandate.scope_json, JSONB)[key]) == "null"
    return func.json_type(Mandate.scope_json, f"$.{key}") == "null"


class MandateService:
    def __init__(
        self,
        session: Session,
        settings: Settings,
        validator: CertificateValidator,
        authority: AttributeAuthority,
        clock: Callable[[], datetime],
    ) -> None:
        self.session = session
        self.settings = settings
        self.validator = validator
        self.aa = authority
        self.clock = clock

    # -- granting -----------------------------------------------------------

    def grant(
        self,
        instruction: bytes,
        signatures: bytes,
        *,
        grantee_certificate: bytes,
        grantee_person_id: str,
        actor: Caller,
    ) -> Mandate:
        """Verify a signed grant instruction and issue its mandate AC.

        Raises :class:`DelegationRefused` (the rule that does not hold),
        :class:`CertificateRefused` (a certificate that does not validate now) or
        :class:`MandateError`. Nothing is written unless the mandate is issued, and
        then in the caller's unit of work (the caller commits).
        """
        # Canonical bytes, whole-second validity and everything the AA would refuse to
        # certify are judged here, before any certificate is validated.
        parsed = GrantInstruction.parse(instruction)
        require(
            actor,
            Permission.GRANT,
            parsed.principal_corporate_number,
            message=f"you do not act for {parsed.principal_corporate_number}",
        )
        digest = _sha256(instruction)
        if self.session.get(MandateInstruction, digest) is not None:
            raise MandateError(
                "this grant instruction was accepted before; a grant is "
                "accepted once (sign a new instruction)",
                "INSTRUCTION_REPLAYED",
            )
        check_fresh(
            parsed, self.clock(), timedelta(seconds=self.settings.instruction_max_age_seconds)
        )
        scope = parsed.scope
        signers = instruction_signers(instruction, signatures)
        if _sha256(grantee_certificate) != parsed.grantee_certificate_sha256:
            raise DelegationRefused(
                "the grantee certificate is not the one the instruction names", "HOLDER_MISMATCH"
            )
        now = self.clock()
        grantee = self._grantee(grantee_person_id, parsed)
        self._check_holder(grantee, parsed)
        # The grant rules (delegation.chain.judge_hop, the one chain evaluation uses) are
        # judged first without any certificate check, so a grant that cannot be made
        # fetches no revocation status; then again on what the certificates and the
        # locked parent say.
        if parsed.parent is None:
            self._judge(parsed, _sha256(signers[0].certificate_der), [], now)
        else:
            signer = check_sub_delegation_signers(parsed, signers)
            self._judge(
                parsed,
                _sha256(signer.certificate_der),
                self._ancestry(self.get(parsed.parent, missing="PARENT_NOT_FOUND")),
                now,
            )
        self._validate(grantee_certificate, TrustPurpose.SERVICE, "the grantee's certificate")
        parent: Mandate | None = None
        if parsed.parent is None:
            grantor, representatives = self._check_representatives(parsed, signers, actor)
            self._judge(parsed, grantor.certificate_sha256.hex(), [], now)
            ancestors: list[bytes] = []
        else:
            # Checked before the parent is locked: these may fetch OCSP.
            self._validate(
                signer.certificate_der,
                TrustPurpose.SERVICE,
                "the grantor's signing certificate",
                signer.other_certificates,
            )
            root = self._ancestry(self.get(parsed.parent, missing="PARENT_NOT_FOUND"))[0]
            revoked_at = representative_revoked_at(self.validator, root, self.clock)
            parent = self._lock(parsed.parent, missing="PARENT_NOT_FOUND")
            # The grant happens now, once the parent is locked: a revocation that
            # committed while this request waited for the lock is dated before this
            # moment, so the chain judged at it counts that revocation.
            now = self.clock()
            self._judge(
                parsed,
                _sha256(signer.certificate_der),
                self._ancestry(parent, fresh=True),
                now,
                representative_revoked_at=revoked_at,
            )
            check_sub_delegation_grantor(parsed, parent.grantee_name)
            grantor = MandateParty(
                parent.grantee_name, None, bytes.fromhex(parent.grantee_certificate_sha256)
            )
            representatives = None
            parent_ac = parse_mandate_certificate(parent.attribute_certificate)
            ancestors = [*parent_ac.ancestors, parent.attribute_certificate]
        mandate_id = str(uuid.uuid4())
        terms = MandateTerms(
            principal_corporate_number=parsed.principal_corporate_number,
            principal_name=parsed.principal_name,
            grantor=grantor,
            grantee=MandateParty(
                grantee.name, None, bytes.fromhex(parsed.grantee_certificate_sha256)
            ),
            scope=scope,
            instruction_digest=hashlib.sha256(instruction).digest(),
        )
        ac = self.aa.issue(
            terms,
            grantee_certificate,
            serial_number=uuid.UUID(mandate_id).int,
            ancestors=ancestors,
            depth=len(ancestors),
        )
        row = Mandate(
            id=mandate_id,
            principal=parsed.principal_corporate_number,
            principal_name=parsed.principal_name,
            parent_id=parsed.parent,
            depth=len(ancestors),
            grantor_name=grantor.name,
            grantor_title=grantor.title,
            grantor_certificate_sha256=grantor.certificate_sha256.hex(),
            representative_certificates=representatives,
            grantee_person_id=grantee.id,
            grantee_name=grantee.name,
            grantee_certificate_sha256=parsed.grantee_certificate_sha256,
            grantee_certificate_der=grantee_certificate,
            scope_json=json.dumps(scope.to_json(), ensure_ascii=False),
            not_before=scope.not_before,
            not_after=scope.not_after,
            instruction=instruction,
            instruction_sha256=digest,
            signatures=signatures,
            attribute_certificate=ac,
            status=MandateStatus.ACTIVE.value,
            created_by=actor.actor,
            created_at=now,
        )
        self.session.add(row)
        self.session.add(
            MandateInstruction(instruction_sha256=digest, mandate_id=mandate_id, accepted_at=now)
        )
        try:
            self.session.flush()
        except IntegrityError:
            self.session.rollback()
            if self.session.get(MandateInstruction, digest) is None:
                raise
            # The same instruction was granted at this moment by another request.
            raise MandateError(
                "this grant instruction was accepted before; a grant is "
                "accepted once (sign a new instruction)",
                "INSTRUCTION_REPLAYED",
            ) from None
        AuditLog(self.session).append(
            "mandate:granted",
            actor=actor.actor,
            subject=mandate_id,
            principal=parsed.principal_corporate_number,
            at=now,
            details={
                "parent": parsed.parent,
                "depth": row.depth,
                "grantee_person_id": grantee.id,
                "grantee_certificate_sha256": parsed.grantee_certificate_sha256,
                "instruction_sha256": row.instruction_sha256,
                "scope": scope.to_json(),
            },
        )
        return row

    def _grantee(self, person_id: str, parsed: GrantInstruction) -> Person:
        person = self.session.get(Person, person_id)
        employed = (
            person is not None
            and self.session.scalars(
                select(Employment.id).where(
                    Employment.person_id == person_id,
                    Employment.corporate_number == parsed.principal_corporate_number,
                    Employment.ended_at.is_(None),
                )
            ).first()
        )
        if person is None or not employed:
            raise MandateError(
                f"the grantee {person_id} is not an enrolled employee of "
                f"{parsed.principal_corporate_number}",
                "GRANTEE_NOT_EMPLOYEE",
            )
        if not same_name(person.name, parsed.grantee_name):
            raise MandateError(
                "the instruction's grantee name is not the employee's name", "GRANTEE_NOT_EMPLOYEE"
            )
        return person

    def _check_holder(self, grantee: Person, parsed: GrantInstruction) -> None:
        """The holder certificate must be a live (active) credential of the grantee,
        issued for the principal: the AC certifies the grantee's own key, nobody else's."""
        owned = self.session.scalars(
            select(Credential.id).where(
                Credential.certificate_sha256 == parsed.grantee_certificate_sha256,
                Credential.person_id == grantee.id,
                Credential.corporate_number == parsed.principal_corporate_number,
                Credential.status == CredentialStatus.ACTIVE.value,
            )
        ).first()
        if owned is None:
            raise MandateError(
                "the holder certificate is not a live credential of the grantee for "
                f"{parsed.principal_corporate_number}",
                "HOLDER_NOT_GRANTEE",
            )

    def _validate(
        self, der: bytes, purpose: TrustPurpose, what: str, intermediates: Iterable[bytes] = ()
    ) -> RegisteredCorporation | None:
        """Validate a grant's certificate with revocation checked fresh: a grant is
        never judged from the login cache (issue 9 item 5)."""
        try:
            return self.validator.validate_now(
                der, purpose, intermediates=intermediates, fresh=True
            ).corporation
        except CertificateRefused as exc:
            raise CertificateRefused(
                f"{what}: {exc.message}",
                exc.code,
                reason=exc.reason,
                revocation_source=exc.revocation_source,
            ) from None

    def _check_representatives(
        self, parsed: GrantInstruction, signers: Sequence, actor: Caller
    ) -> tuple[MandateParty, str]:
        corporations: list[RegisteredCorporation] = []
        for signer in signers:
            try:
                corporation = self._validate(
                    signer.certificate_der,
                    TrustPurpose.REGISTRAR,
                    "a grantor's registration certificate",
                    signer.other_certificates,
                )
            except CertificateRefused as exc:
                if exc.code == "CERTIFICATE_REVOKED":
                    raise DelegationRefused(
                        f"{exc.message} (revoked before the grant)", "REPRESENTATIVE_CERT_REVOKED"
                    ) from None
                if exc.code == "REVOCATION_STATUS_UNAVAILABLE":
                    raise
                raise DelegationRefused(
                    f"a signer is not a representative with a valid registration certificate "
                    f"({exc.code}: {exc.message})",
                    "GRANTOR_NOT_REPRESENTATIVE",
                ) from None
            assert corporation is not None  # the REGISTRAR profile always parses it
            corporations.append(corporation)
        # The grantee's employment (checked first) means the corporation is known.
        row = self.session.get(Corporation, parsed.principal_corporate_number)
        assert row is not None
        named = check_representative_grant(
            parsed,
            corporations,
            representative_titles=self.settings.representative_titles,
            required_signatures=row.joint_representatives,
        )
        if not permits(
            actor, Permission.GRANT_AS_REPRESENTATIVE, parsed.principal_corporate_number
        ):
            raise DelegationRefused(
                "only a representative of the principal (or an administrator) may submit its grant",
                "SUBMITTER_NOT_REPRESENTATIVE",
            )
        corporation, signer = corporations[named], signers[named]
        grantor = MandateParty(
            corporation.representative_name or parsed.grantor_name,
            corporation.representative_title,
            hashlib.sha256(signer.certificate_der).digest(),
        )
        certificates = "".join(
            pem.armor("CERTIFICATE", s.certificate_der).decode() for s in signers
        )
        return grantor, certificates

    def _judge(
        self,
        parsed: GrantInstruction,
        grantor_certificate_sha256: str,
        ancestors: Sequence[Mandate],
        now: datetime,
        *,
        representative_revoked_at: datetime | None = None,
    ) -> None:
        """Refuse the grant unless :func:`delegation.chain.judge_hop` holds the proposed
        hop under ``ancestors`` (root first) at ``now``; the refusal's code is the first
        reason, its detail names them all."""
        hop = Hop(
            mandate_id="(proposed)",
            principal=parsed.principal_corporate_number,
            grantor_certificate_sha256=grantor_certificate_sha256,
            grantee_certificate_sha256=parsed.grantee_certificate_sha256,
            scope=parsed.scope,
            grantor_is_representative=not ancestors,
        )
        chain = [hop_of(a) for a in ancestors]
        if chain and representative_revoked_at is not None:
            chain[0] = hop_of(ancestors[0], representative_revoked_at)
        principal = chain[0].principal if chain else parsed.principal_corporate_number
        verdict = judge_hop(chain, hop, principal=principal, at=now, proposed=True)
        if not verdict.holds:
            raise DelegationRefused(
                f"the grant does not hold under its chain: {', '.join(verdict.reasons)}",
                verdict.reasons[0],
            )

    # -- reading ------------------------------------------------------------

    def get(self, mandate_id: str, *, missing: str = "MANDATE_NOT_FOUND") -> Mandate:
        row = self.session.get(Mandate, mandate_id) if _is_uuid(mandate_id) else None
        if row is None:
            raise MandateError(f"no mandate {mandate_id}", missing)
        return row

    def _lock(self, mandate_id: str, *, missing: str = "MANDATE_NOT_FOUND") -> Mandate:
        row = (
            self.session.scalars(
                select(Mandate)
                .where(Mandate.id == mandate_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            if _is_uuid(mandate_id)
            else None
        )
        if row is None:
            raise MandateError(f"no mandate {mandate_id}", missing)
        return row

    def _ancestry(self, row: Mandate, *, fresh: bool = False) -> list[Mandate]:
        """``row`` and its ancestors, root first. ``fresh`` reads each ancestor from the
        database again rather than from the session: after a parent is locked, an
        ancestor loaded before the lock may since have been revoked and committed."""
        chain = [row]
        while (parent_id := chain[0].parent_id) is not None:
            if fresh:
                ancestor = self.session.scalars(
                    select(Mandate)
                    .where(Mandate.id == parent_id)
                    .execution_options(populate_existing=True)
                ).one()
            else:
                ancestor = self.get(parent_id)
            chain.insert(0, ancestor)
        return chain

    def search(
        self,
        *,
        principals: Iterable[str] | None,
        grantee: str | None = None,
        status: str | None = None,
        at: datetime | None = None,
        action: str | None = None,
        procuring_entity: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Mandate], int]:
        """Mandates of ``principals`` (None: all), newest first, and how many match.

        ``status`` "active" / "revoked" is the status at ``at`` (default now):
        active means within its validity window and not revoked by then. ``action``:
        its scope names that action; ``procuring_entity``: its scope names that entity
        or any (a scope without entities).
        """
        query = select(Mandate)
        dialect = self.session.get_bind().dialect.name
        if action is not None:
            query = query.where(scope_lists(dialect, "actions", action))
        if procuring_entity is not None:
            query = query.where(
                or_(
                    scope_is_null(dialect, "procuring_entities"),
                    scope_lists(dialect, "procuring_entities", procuring_entity),
                )
            )
        if principals is not None:
            query = query.where(Mandate.principal.in_(list(principals)))
        if grantee is not None:
            query = query.where(
                or_(
                    Mandate.grantee_person_id == grantee,
                    Mandate.grantee_certificate_sha256 == grantee.lower(),
                )
            )
        moment = at or self.clock()
        if status == MandateStatus.ACTIVE:
            query = query.where(
                Mandate.not_before <= moment,
                Mandate.not_after > moment,
                or_(Mandate.revoked_at.is_(None), Mandate.revoked_at > moment),
            )
        elif status == MandateStatus.REVOKED:
            query = query.where(Mandate.revoked_at <= moment)
        elif at is not None:
            query = query.where(Mandate.created_at <= moment)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(
            query.order_by(Mandate.created_at.desc(), Mandate.id).limit(limit).offset(offset)
        ).all()
        return list(rows), total

    # -- revoking -----------------------------------------------------------

    def revoke(
        self, mandate_id: str, *, actor: Caller, reason: str = "privilege_withdrawn"
    ) -> list[Mandate]:
        """Revoke a mandate and, with it, every descendant; returns them, the mandate first.

        Allowed to an administrator, a representative of the principal, and anyone who
        granted the mandate or one of its ancestors (the grantee of an ancestor).
        """
        if reason not in REVOCATION_REASONS:
            raise MandateError(
                f"reason must be one of {', '.join(REVOCATION_REASONS)}",
                "REVOCATION_REASON_INVALID",
            )
        row = self._lock(mandate_id)
        chain = self._ancestry(row)
        require(
            actor,
            Permission.REVOKE,
            row.principal,
            granted_by={m.grantee_person_id for m in chain[:-1]},
            message="only its grantors, a representative of the principal or an "
            "administrator may revoke this mandate",
        )
        if row.revoked_at is not None:
            raise MandateError(
                f"mandate {mandate_id} was revoked at {row.revoked_at.isoformat()}",
                "MANDATE_ALREADY_REVOKED",
            )
        now = self.clock()
        revoked = []
        pending = [row]
        while pending:
            current = pending.pop(0)
            if current.revoked_at is None:
                current.status = MandateStatus.REVOKED.value
                current.revoked_at = now
                current.revoked_by = actor.actor if current is row else f"cascade:{row.id}"
                current.revocation_reason = reason
                revoked.append(current)
            self.session.flush()
            # Children are read only after their parent is locked and revoked, so a
            # grant waiting on that lock finds the parent revoked, and a grant that got
            # the lock first has committed its child by now.
            pending.extend(
                self.session.scalars(
                    select(Mandate)
                    .where(Mandate.parent_id == current.id)
                    .order_by(Mandate.id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                ).all()
            )
        AuditLog(self.session).append(
            "mandate:revoked",
            actor=actor.actor,
            subject=row.id,
            principal=row.principal,
            at=now,
            details={"reason": reason, "cascaded": [m.id for m in revoked[1:]]},
        )
        # The published CRL lists it from this commit on, whichever worker is asked.
        publish_crl(self.session, self.aa, now)
        return revoked

    # -- judging ------------------------------------------------------------

    def chain(
        self, mandate_id: str, purpose: Purpose | None, *, at: datetime
    ) -> tuple[list[Mandate], ChainVerdict]:
        """The mandate's chain, root first, and the verdict on it at ``at`` for
        ``purpose`` (None: whether the chain stands, for any purpose).

        Writes nothing: a root representative revoked since the grant and not yet
        recorded by the sweep is checked now and counts in the verdict all the same.
        """
        rows = self._ancestry(self.get(mandate_id))
        unrecorded = representative_revoked_at(self.validator, rows[0], self.clock)
        leaf = rows[-1]
        check = purpose or _some_purpose(leaf.scope, at)
        hops = [hop_of(rows[0], unrecorded)] + [hop_of(r) for r in rows[1:]]
        verdict = evaluate_chain(
            hops,
            check,
            signer_certificate_sha256=leaf.grantee_certificate_sha256,
            principal=rows[0].principal,
        )
        if purpose is None:  # only what does not depend on a purpose
            verdict = ChainVerdict(
                verdict.hops,
                tuple(
                    r for r in verdict.reasons if r in {"MANDATE_EXPIRED", "MANDATE_NOT_YET_VALID"}
                ),
            )
        return rows, verdict


def status_at(row: Mandate, at: datetime) -> str:
    """active, revoked, expired or not_yet_valid: the mandate's own status at ``at``."""
    if row.revoked_at is not None and row.revoked_at <= at:
        return "revoked"
    if at < row.not_before:
        return "not_yet_valid"
    if at >= row.not_after:
        return "expired"
    return "active"


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except (ValueError, AttributeError, TypeError):
        return False


def _some_purpose(scope: Scope, at: datetime) -> Purpose:
    """A purpose the scope grants an action for, to judge a chain apart from any purpose."""
    action = sorted(scope.actions)[0]
    return Purpose(action.replace("*", "any"), None, None, None, at)  # wildcard: one instance
