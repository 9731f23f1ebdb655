"""Database rows: the signatures the service made."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.credentials.models import Credential
from app.database import Base, UtcDateTime, enum_check, new_id, utc_now
from hsm import KeyRef
from signing import PadesLevel


class SignatureFormat(enum.StrEnum):
    PADES = "pades"
    XADES = "xades"
    CMS = "cms"  # detached CMS over a grant instruction (a sub-delegation)


class SignatureRecord(Base):
    """One signature made by the service, with the key reference that made it."""

    __tablename__ = "signature_records"
    __table_args__ = (
        CheckConstraint(enum_check("format", SignatureFormat), name="format"),
        CheckConstraint(enum_check("level", PadesLevel), name="level"),
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
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, index=True)
    # A signature made in a signing session (DESIGN §6): the session, the mandate it was
    # made under and the person who activated it; null for the operator's signatures.
    session_id: Mapped[str | None] = mapped_column(ForeignKey("signing_sessions.id"), index=True)
    mandate_id: Mapped[str | None] = mapped_column(ForeignKey("mandates.id"))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"))

    credential: Mapped[Credential] = relationship()

    @property
    def key_ref(self) -> KeyRef:
        return KeyRef(self.token_label, self.key_id, self.key_version)
