"""Database rows: signing credentials (HSM keys and their certificates) and signatures."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UtcDateTime, enum_check, new_id, utc_now
from hsm import KeyAlgorithm, KeyRef


class CredentialStatus(enum.StrEnum):
    """Where a credential is in its key lifecycle."""

    PENDING = "pending"  # key generated, CSR exported, no certificate yet
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"  # its certificate revoked at the CA; signs nothing again
    DESTROYED = "destroyed"


class Credential(Base):
    """A signing key on the HSM and, once certified, its certificate and chain."""

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("token_label", "key_id", "key_version"),
        CheckConstraint(enum_check("algorithm", KeyAlgorithm), name="algorithm"),
        CheckConstraint(enum_check("status", CredentialStatus), name="status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    token_label: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32))  # hex of CKA_ID
    key_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=CredentialStatus.PENDING.value)
    subject: Mapped[str] = mapped_column(Text)
    certificate_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Issuing CA certificates, PEM, concatenated from the issuer upwards.
    chain_pem: Mapped[str | None] = mapped_column(Text)
    # SHA-256 (hex) of certificate_der: how a mandate's holder certificate finds its key.
    certificate_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    # The owner (DESIGN §6): the enrolled person and the corporation the key signs for.
    # Null only on rows made before owners were recorded; such a key holds no mandate.
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"), index=True)
    corporate_number: Mapped[str | None] = mapped_column(
        ForeignKey("corporations.corporate_number")
    )
    # When and why the certificate was revoked (RFC 5280 reason name), if it was.
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(32))
    # A renewal's new credential names the one it replaces (issue 11 item 1).
    renewed_from_id: Mapped[str | None] = mapped_column(ForeignKey("credentials.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, onupdate=utc_now)

    @property
    def key_ref(self) -> KeyRef:
        return KeyRef(self.token_label, self.key_id, self.key_version)
