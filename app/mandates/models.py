"""Database rows for mandates (電子委任状): the signed instruction, the attribute
certificate the AA issued for it, and its status. A mandate's id is its AC serial
number written as a UUID (:func:`delegation.verify.mandate_id_of`).

Also what the service publishes about them and must serve alike from every worker
process without signing per request: the AA's current CRL and the signed 電子委任状
of each mandate in its current state.
"""

from __future__ import annotations

import enum
import json
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UtcDateTime, enum_check, utc_now
from delegation.scope import Scope
from delegation.verify import serial_of


class MandateStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class Mandate(Base):
    """One mandate: a representative's grant (depth 0) or a sub-delegation."""

    __tablename__ = "mandates"
    __table_args__ = (
        CheckConstraint(enum_check("status", MandateStatus), name="status"),
        # The authority query: live mandates of one principal at a time.
        Index("ix_mandates_principal_validity", "principal", "not_after", "not_before"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    principal: Mapped[str] = mapped_column(String(13))  # 法人番号
    principal_name: Mapped[str] = mapped_column(String(300))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("mandates.id"), index=True)
    # Re-issued by the AA to a renewed holder certificate: the mandate this one supersedes.
    reissued_from_id: Mapped[str | None] = mapped_column(ForeignKey("mandates.id"))
    depth: Mapped[int] = mapped_column(Integer)
    grantor_name: Mapped[str] = mapped_column(String(200))
    grantor_title: Mapped[str | None] = mapped_column(String(100))
    grantor_certificate_sha256: Mapped[str] = mapped_column(String(64))
    # Root grants: the representatives' registration certificates (PEM, concatenated).
    representative_certificates: Mapped[str | None] = mapped_column(Text)
    representative_revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    grantee_person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    grantee_name: Mapped[str] = mapped_column(String(200))
    grantee_certificate_sha256: Mapped[str] = mapped_column(String(64), index=True)
    grantee_certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    scope_json: Mapped[str] = mapped_column(Text)  # Scope.to_json()
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)
    instruction: Mapped[bytes] = mapped_column(LargeBinary)  # the canonical JSON signed
    instruction_sha256: Mapped[str] = mapped_column(String(64))
    signatures: Mapped[bytes] = mapped_column(LargeBinary)  # CMS SignedData, detached
    attribute_certificate: Mapped[bytes] = mapped_column(LargeBinary)  # DER ACv2
    status: Mapped[str] = mapped_column(String(16), default=MandateStatus.ACTIVE.value)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(100))
    revocation_reason: Mapped[str | None] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)

    @property
    def serial_number(self) -> int:
        return serial_of(self.id)

    @property
    def scope(self) -> Scope:
        return Scope.from_json(json.loads(self.scope_json))


class MandateInstruction(Base):
    """A grant instruction the service accepted: each is accepted once, so a signed
    grant cannot be replayed and a revoked one cannot be granted again (issue 9.3)."""

    __tablename__ = "mandate_instructions"

    instruction_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    mandate_id: Mapped[str] = mapped_column(ForeignKey("mandates.id"), index=True)
    accepted_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class PublishedCrl(Base):
    """The AA's current CRL of mandate ACs, one row (id 1, made by the migration with
    an empty CRL that counts as expired). Every worker serves these bytes; a
    revocation replaces them in its own transaction, and a request that finds them
    near their nextUpdate replaces them under the row lock."""

    __tablename__ = "published_crls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    number: Mapped[int] = mapped_column(BigInteger)  # cRLNumber: issue time in ms, rising
    crl_der: Mapped[bytes] = mapped_column(LargeBinary)
    this_update: Mapped[datetime] = mapped_column(UtcDateTime)
    next_update: Mapped[datetime] = mapped_column(UtcDateTime)


class SignedMandateDocument(Base):
    """The signed 電子委任状 of a mandate as last rendered, with a digest of everything
    it states but its issue time: served again while that state holds."""

    __tablename__ = "signed_mandate_documents"

    mandate_id: Mapped[str] = mapped_column(ForeignKey("mandates.id"), primary_key=True)
    state_sha256: Mapped[str] = mapped_column(String(64))
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
