"""Database rows for who may call the service: corporations, enrolled people and
their certificates, roles, invitations, login challenges, access tokens and API
clients. Secrets (invitation codes, tokens, client secrets) are stored only as
SHA-256 hashes: they are 32 random bytes, so a fast hash is enough.
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
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.database import Base, UtcDateTime, enum_check, new_id, utc_now


class Role(enum.StrEnum):
    """What a caller may do. Employee and representative hold per corporation."""

    EMPLOYEE = "employee"
    REPRESENTATIVE = "representative"
    AUDITOR = "auditor"
    ADMINISTRATOR = "administrator"


GLOBAL_ROLES = (Role.AUDITOR, Role.ADMINISTRATOR)


class PersonStatus(enum.StrEnum):
    ACTIVE = "active"
    REENROLL_REQUIRED = "reenroll_required"  # signing certificate revoked (affiliationChanged)


class Corporation(Base):
    """A corporation known by its 法人番号 (13 digits)."""

    __tablename__ = "corporations"

    corporate_number: Mapped[str] = mapped_column(String(13), primary_key=True)
    registered_number: Mapped[str] = mapped_column(String(12))  # 会社法人等番号
    name: Mapped[str] = mapped_column(String(300))
    # 共同代表: how many distinct representatives must sign one grant instruction.
    joint_representatives: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Person(Base):
    """Someone enrolled with a My Number Card: bound to one JPKI authentication
    certificate (used at every login) and the signing certificate that proved
    the four basic items.

    Only the name is kept unless ``keep_personal_data`` is set: of the signing
    certificate (whose subjectAltName holds address, birth date and sex) the row
    keeps its hash, issuer, serial, validity and a redacted status reference
    (:meth:`identity.validation.ValidatedCertificate.status_reference`), and of the
    four items only a keyed digest (HMAC-SHA256 with a key held in the HSM) with
    which a reissued card is compared. Rows enrolled before migration 0005 hold
    the certificate and no digest until their next login or re-bind."""

    __tablename__ = "people"
    __table_args__ = (CheckConstraint(enum_check("status", PersonStatus), name="status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(24), default=PersonStatus.ACTIVE.value)
    auth_certificate_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    auth_certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    signing_certificate_sha256: Mapped[str] = mapped_column(String(64), index=True)
    # The whole certificate only when keep_personal_data is set (and on legacy rows).
    signing_certificate_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    signing_certificate_issuer: Mapped[str | None] = mapped_column(Text)
    signing_certificate_serial: Mapped[str | None] = mapped_column(String(64))  # hex
    signing_certificate_not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    signing_certificate_not_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    signing_certificate_status_ref: Mapped[bytes | None] = mapped_column(LargeBinary)
    # HMAC-SHA256 (hex) of the four basic items, and the CKA_ID (hex) of its HSM key.
    identity_digest: Mapped[str | None] = mapped_column(String(64))
    identity_key_id: Mapped[str | None] = mapped_column(String(64))
    # JSON of address, birth date and sex; only when keep_personal_data is set.
    personal_data: Mapped[str | None] = mapped_column(Text)
    enrolled_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    rebound_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    employments: Mapped[list[Employment]] = relationship(back_populates="person")
    role_assignments: Mapped[list[RoleAssignment]] = relationship(back_populates="person")


class Employment(Base):
    """A person acting for a corporation as its employee (使用人)."""

    __tablename__ = "employments"
    __table_args__ = (UniqueConstraint("person_id", "corporate_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    corporate_number: Mapped[str] = mapped_column(
        ForeignKey("corporations.corporate_number"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    person: Mapped[Person] = relationship(back_populates="employments")


class RoleAssignment(Base):
    """A service-wide role (auditor, administrator) held by a person."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        UniqueConstraint("person_id", "role"),
        CheckConstraint(enum_check("role", Role), name="role"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)

    person: Mapped[Person] = relationship(back_populates="role_assignments")


class Invitation(Base):
    """A one-time code with which a named employee enrols (or a known one re-binds
    a reissued card) for a corporation; created by its representative."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    corporate_number: Mapped[str] = mapped_column(
        ForeignKey("corporations.corporate_number"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AuthChallenge(Base):
    """An open proof-of-possession challenge; kept after use (replay detection)
    until it expires, then purged."""

    __tablename__ = "auth_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    purpose: Mapped[str] = mapped_column(String(32))
    client_key: Mapped[str] = mapped_column(String(100), index=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AccessToken(Base):
    """A bearer token from a login, bound to the person (or representative) and the
    certificate that proved it. Roles are worked out per request, so a revoked
    role or employment takes effect at once; the certificate is re-validated
    (through the validator's cache) at every use, so a revocation ends the token
    within ``revocation_cache_seconds``."""

    __tablename__ = "access_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"), index=True)
    # A representative's login: the corporation and the name on the certificate.
    corporate_number: Mapped[str | None] = mapped_column(
        ForeignKey("corporations.corporate_number")
    )
    name: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(100))
    certificate_sha256: Mapped[str] = mapped_column(String(64))
    # A representative's registration certificate (it carries no JPKI personal
    # data); a person's token is checked against the person's enrolled certificate.
    certificate_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiClient(Base):
    """A relying party (e.g. a procurement system) calling with client id + secret.

    It reads the data of the corporations it is registered for (its
    ``corporations`` rows), or of every corporation when ``all_corporations`` is
    set — which only an administrator may register, and which the client's
    representation shows."""

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(Text)  # space-separated
    all_corporations: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    corporations: Mapped[list[ApiClientCorporation]] = relationship(
        cascade="all, delete-orphan", order_by="ApiClientCorporation.corporate_number"
    )

    @property
    def corporate_numbers(self) -> list[str]:
        """The 法人番号 the client is registered for, in order (empty: all or none)."""
        return [c.corporate_number for c in self.corporations]


class ApiClientCorporation(Base):
    """A corporation whose data an API client may read."""

    __tablename__ = "api_client_corporations"

    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), primary_key=True)
    corporate_number: Mapped[str] = mapped_column(
        ForeignKey("corporations.corporate_number"), primary_key=True
    )
