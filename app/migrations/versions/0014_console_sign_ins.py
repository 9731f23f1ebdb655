"""The console's cross-device sign-ins (issue 15): a browser's pending sign-in, its
code, the login challenge opened for it and the access token its approval bound to
the browser's cookie.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sign_ins",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_code", sa.String(length=8), nullable=False),
        sa.Column("browser_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("challenge_id", sa.String(length=36), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["access_tokens.id"],
            name=op.f("fk_console_sign_ins_token_id_access_tokens"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sign_ins")),
        sa.UniqueConstraint("browser_sha256", name=op.f("uq_console_sign_ins_browser_sha256")),
        sa.UniqueConstraint("user_code", name=op.f("uq_console_sign_ins_user_code")),
    )
    op.create_index(
        op.f("ix_console_sign_ins_expires_at"), "console_sign_ins", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sign_ins_expires_at"), table_name="console_sign_ins")
    op.drop_table("console_sign_ins")
