"""Database rows: a browser's sign-in to the console, approved from another device.

A browser that asks to sign in gets a random secret in an HttpOnly cookie (only its
SHA-256 is kept) and a short code to read out. ``dairi client approve CODE`` answers a
login challenge opened for that code with the card; the access token it earns is bound
to the browser's secret, so the cookie the browser already holds becomes its session.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base, UtcDateTime, new_id


class ConsoleSignIn(Base):
    __tablename__ = "console_sign_ins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # What the user reads out and types into the client: 8 letters (no vowels).
    user_code: Mapped[str] = mapped_column(String(8), unique=True)
    # SHA-256 of the browser's cookie: the session's token once approved.
    browser_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_agent: Mapped[str] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # The login challenge opened for this code (the approving card answers it).
    challenge_id: Mapped[str | None] = mapped_column(String(36))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    token_id: Mapped[str | None] = mapped_column(ForeignKey("access_tokens.id"))
