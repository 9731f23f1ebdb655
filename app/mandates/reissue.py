"""The attribute authority re-issues a renewed certificate's live mandates (DESIGN §5,
§6; issue 11 item 1): when a signing credential is renewed, every live mandate whose
AC holder is the old certificate gets a new AC (a new serial, so a new mandate id) for
the new certificate, from the same instruction, scope, validity and parent; every live
descendant of those is re-issued too, under the new rows, so that no live chain keeps a
superseded ancestor in its provenance. Then each old AC is revoked with reason
``superseded`` (RFC 5280 / RFC 5755 CRLReason) and the AA's CRL is published again, in
the caller's unit of work. Nothing here commits.

Holder binding of a re-issued mandate (the rule the chain evaluation relies on):

* An AC binds its terms to exactly one certificate: its holder ``baseCertificateID``
  (issuer and serial) and its ``Mandate`` value's grantee ``certificateDigest`` both
  name it. A re-issued AC is no exception: both name the **renewed** certificate. So
  :func:`delegation.chain.evaluate_chain` (``HOLDER_MISMATCH``) and
  :meth:`delegation.verify.MandateChainReader.evaluate` (``is_held_by`` and the digest)
  need no special case, and accept the re-issued leaf for the renewed certificate and
  for nothing else: the old certificate is ``HOLDER_MISMATCH`` on the new AC, and its
  own AC is revoked (``MANDATE_REVOKED``).
* Each child's grantor is its parent's grantee (``GRANTOR_NOT_PARENT_GRANTEE``): a
  re-issued child of a re-issued mandate names the parent's new holder certificate as
  its grantor's ``certificateDigest``. Deeper descendants keep their grantor (the holder
  above them did not change) and get a provenance naming the new ancestors.
* ``instructionDigest`` still names the instruction the grantor signed, whose
  ``grantee.certificate_sha256`` names the certificate at grant time. An AC whose grantee
  digest differs from its instruction's is a re-issue, and the AA alone attests the
  link: the renewal is audited (``credential:renewal:made``, ``mandate:grant:reissued``)
  and the rows link old to new (``credentials.renewed_from_id``,
  ``mandates.reissued_from_id``). The instruction is not accepted again: its digest
  stays in ``mandate_instructions`` under the first mandate, and nothing here consults
  the replay check.

Concurrency: each mandate is locked before it is read for re-issue, and its children
are read (and locked) only after, as :meth:`app.mandates.service.MandateService.revoke`
does; a sub-delegation waiting on the lock of an old mandate then finds it revoked
(``ANCESTOR_REVOKED``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit_trail.log import AuditLog
from app.mandates.models import Mandate, MandateStatus
from app.mandates.publication import publish_crl
from delegation.certificates import AttributeAuthority, parse_mandate_certificate

SUPERSEDED = "superseded"  # asn1crypto's CRLReason name (RFC 5280 §5.3.1, value 4)


@dataclass(frozen=True)
class ReissuedMandate:
    """One re-issue: the superseded mandate and the one that replaces it."""

    old: Mandate
    new: Mandate


class MandateReissue:
    """The AA's re-issue of a renewed holder's mandates, in the caller's session."""

    def __init__(
        self, session: Session, authority: AttributeAuthority, now: datetime, actor: str
    ) -> None:
        self.session = session
        self.aa = authority
        self.now = now
        self.actor = actor

    def reissue_held_by(
        self, old_certificate_sha256: str, new_certificate_der: bytes, *, renewal: str
    ) -> list[ReissuedMandate]:
        """Re-issue every live (unrevoked, unexpired) mandate held by the certificate
        whose SHA-256 (hex) is ``old_certificate_sha256`` to ``new_certificate_der``, and
        every live descendant of those under the new rows; revoke the old ones as
        ``superseded`` (no cascade: their descendants were re-issued, not revoked by an
        ancestor); publish the AA's CRL. ``renewal`` (the new credential's id) goes into
        the audit events. Returns the re-issues, parents before their children.

        Raises :class:`delegation.certificates.MandateCertificateError` if the AA cannot
        certify (the caller's unit of work then rolls back: nothing is half-written).
        """
        held = self.session.scalars(
            self._live()
            .where(Mandate.grantee_certificate_sha256 == old_certificate_sha256.lower())
            .order_by(Mandate.depth, Mandate.created_at, Mandate.id)
        ).all()
        held_ids = {row.id for row in held}
        replaced: dict[str, Mandate] = {}
        done: list[ReissuedMandate] = []
        pending = deque(held)
        while pending:
            old = pending.popleft()
            if old.id in replaced:
                continue
            holder = new_certificate_der if old.id in held_ids else old.grantee_certificate_der
            parent = None
            if old.parent_id is not None:
                parent = replaced.get(old.parent_id) or self.session.get(Mandate, old.parent_id)
            new = self._reissue(old, parent, holder)
            replaced[old.id] = new
            done.append(ReissuedMandate(old, new))
            pending.extend(
                self.session.scalars(
                    self._live().where(Mandate.parent_id == old.id).order_by(Mandate.id)
                ).all()
            )
        for item in done:
            old = item.old
            old.status = MandateStatus.REVOKED.value
            old.revoked_at = self.now
            old.revoked_by = self.actor
            old.revocation_reason = SUPERSEDED
        self.session.flush()
        log = AuditLog(self.session)
        for item in done:
            log.append(
                "mandate:grant:reissued",
                actor=self.actor,
                subject=item.new.id,
                principal=item.new.principal,
                at=self.now,
                details={
                    "reissued_from": item.old.id,
                    "parent": item.new.parent_id,
                    "depth": item.new.depth,
                    "grantee_person_id": item.new.grantee_person_id,
                    "grantee_certificate_sha256": item.new.grantee_certificate_sha256,
                    "grantor_certificate_sha256": item.new.grantor_certificate_sha256,
                    "instruction_sha256": item.new.instruction_sha256,
                    "credential_renewal": renewal,
                },
            )
        for item in done:
            log.append(
                "mandate:revoked",
                actor=self.actor,
                subject=item.old.id,
                principal=item.old.principal,
                at=self.now,
                details={"reason": SUPERSEDED, "superseded_by": item.new.id, "cascaded": []},
            )
        if done:
            # The CRL lists the superseded ACs from this commit on.
            publish_crl(self.session, self.aa, self.now)
        return done

    def _live(self):  # type: ignore[no-untyped-def]
        """Mandates not revoked and not expired now, locked (``SELECT … FOR UPDATE``)."""
        return (
            select(Mandate)
            .where(Mandate.revoked_at.is_(None), Mandate.not_after > self.now)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def _reissue(self, old: Mandate, parent: Mandate | None, holder_der: bytes) -> Mandate:
        """A new AC and row for ``old``: held by ``holder_der``, under ``parent`` (the
        re-issued parent or the unchanged one), with the same terms otherwise."""
        parsed = parse_mandate_certificate(old.attribute_certificate)
        terms = parsed.terms
        holder_sha256 = hashlib.sha256(holder_der).digest()
        grantor = terms.grantor
        if parent is not None:  # a child's grantor is its parent's (possibly new) holder
            grantor = dataclasses.replace(
                grantor, certificate_sha256=bytes.fromhex(parent.grantee_certificate_sha256)
            )
        terms = dataclasses.replace(
            terms,
            grantor=grantor,
            grantee=dataclasses.replace(terms.grantee, certificate_sha256=holder_sha256),
        )
        ancestors: list[bytes] = []
        if parent is not None:
            parent_ac = parse_mandate_certificate(parent.attribute_certificate)
            ancestors = [*parent_ac.ancestors, parent.attribute_certificate]
        mandate_id = str(uuid.uuid4())
        ac = self.aa.issue(
            terms,
            holder_der,
            serial_number=uuid.UUID(mandate_id).int,
            ancestors=ancestors,
            depth=len(ancestors),
            targets=parsed.targets,
        )
        row = Mandate(
            id=mandate_id,
            principal=old.principal,
            principal_name=old.principal_name,
            parent_id=None if parent is None else parent.id,
            reissued_from_id=old.id,
            depth=len(ancestors),
            grantor_name=old.grantor_name,
            grantor_title=old.grantor_title,
            grantor_certificate_sha256=grantor.certificate_sha256.hex(),
            representative_certificates=old.representative_certificates,
            representative_revoked_at=old.representative_revoked_at,
            grantee_person_id=old.grantee_person_id,
            grantee_name=old.grantee_name,
            grantee_certificate_sha256=holder_sha256.hex(),
            grantee_certificate_der=holder_der,
            scope_json=old.scope_json,
            not_before=old.not_before,
            not_after=old.not_after,
            instruction=old.instruction,
            instruction_sha256=old.instruction_sha256,
            signatures=old.signatures,
            attribute_certificate=ac,
            status=MandateStatus.ACTIVE.value,
            created_by=self.actor,
            created_at=self.now,
        )
        self.session.add(row)
        self.session.flush()
        return row
