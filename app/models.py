"""Database rows: signing credentials (HSM keys and their certificates) and signatures."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UtcDateTime
from hsm import KeyAlgorithm, KeyRef
from signing import PadesLevel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class CredentialStatus(enum.StrEnum):
    """Where a credential is in its key lifecycle."""

    PENDING = "pending"  # key generated, CSR exported, no certificate yet
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DESTROYED = "destroyed"


class SignatureFormat(enum.StrEnum):
    PADES = "pades"
    XADES = "xades"


def _in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Credential(Base):
    """A signing key on the HSM and, once certified, its certificate and chain."""

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("token_label", "key_id", "key_version"),
        CheckConstraint(_in("algorithm", KeyAlgorithm), name="algorithm"),
        CheckConstraint(_in("status", CredentialStatus), name="status"),
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
        ForeignKey("corporations.corporate_number"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    @property
    def key_ref(self) -> KeyRef:
        return KeyRef(self.token_label, self.key_id, self.key_version)


class SignatureRecord(Base):
    """One signature made by the service, with the key reference that made it."""

    __tablename__ = "signature_records"
    __table_args__ = (
        CheckConstraint(_in("format", SignatureFormat), name="format"),
        CheckConstraint(_in("level", PadesLevel), name="level"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"), index=True)
    token_label: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str] = mapped_column(String(32))
    key_version: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16), default=SignatureFormat.PADES.value)
    level: Mapped[str] = mapped_column(String(8))
    document_sha256: Mapped[str] = mapped_column(String(64))
    signed_document_sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)

    credential: Mapped[Credential] = relationship()

    @property
    def key_ref(self) -> KeyRef:
        return KeyRef(self.token_label, self.key_id, self.key_version)
