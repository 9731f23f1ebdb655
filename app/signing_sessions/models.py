"""Database rows: signing sessions (DESIGN §6 signature activation) and their documents.

A session is opened with its documents and a card challenge (``to_sign``), authorised
once by the signed-in person's card (which issues a SAD, kept only as its SHA-256), and
signed once with that SAD. Documents are kept, as uploaded and as signed, only until
the signed one is fetched.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
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


class SessionStatus(enum.StrEnum):
    """Where a signing session is: opened, authorised by a card (SAD issued), signed."""

    OPEN = "open"
    AUTHORIZED = "authorized"
    SIGNED = "signed"


class SigningSession(Base):
    """One signature activation: a credential, a purpose, the mandate acted under, the
    documents, and the card challenge binding them all."""

    __tablename__ = "signing_sessions"
    __table_args__ = (CheckConstraint(enum_check("status", SessionStatus), name="status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    credential_id: Mapped[str] = mapped_column(ForeignKey("credentials.id"))
    credential_certificate_sha256: Mapped[str] = mapped_column(String(64))
    mandate_id: Mapped[str] = mapped_column(ForeignKey("mandates.id"))
    principal: Mapped[str] = mapped_column(String(13))
    # The signing purpose as asked (RFC 8785 JSON: principal, action, entity, case, amount).
    purpose: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(8))
    stamp: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.OPEN.value)
    # The card challenge: nonce, times and the members to_sign binds besides them (JSON).
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    binding: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    authorized_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    card_certificate_sha256: Mapped[str | None] = mapped_column(String(64))
    # The SAD: only its SHA-256 (hex); single use (sad_used_at set atomically).
    sad_sha256: Mapped[str | None] = mapped_column(String(64))
    sad_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sad_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class SessionDocument(Base):
    """A document of a session: its digest as uploaded, and the bytes until fetched."""

    __tablename__ = "signing_session_documents"
    __table_args__ = (UniqueConstraint("session_id", "position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("signing_sessions.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # the API's "index", from 0
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)  # dropped once signed
    signed_content: Mapped[bytes | None] = mapped_column(LargeBinary)  # dropped once fetched
    signed_sha256: Mapped[str | None] = mapped_column(String(64))
    signature_id: Mapped[str | None] = mapped_column(ForeignKey("signature_records.id"))
    fetched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
