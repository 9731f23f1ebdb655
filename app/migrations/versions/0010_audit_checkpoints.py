"""Audit checkpoints: the chain's head signed by the audit key and time-stamped
(issue 14 item 1). One row per head sequence; rows are never updated or deleted.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("signature_der", sa.LargeBinary(), nullable=False),
        sa.Column("timestamp_der", sa.LargeBinary(), nullable=True),
        sa.Column("signer_certificate_der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index(
        op.f("ix_audit_checkpoints_taken_at"), "audit_checkpoints", ["taken_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_checkpoints_taken_at"), table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
