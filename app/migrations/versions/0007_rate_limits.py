"""Rate limits as atomic counters per (key, window), and refusal counts waiting to be
folded into the audit chain (issue 9, items 8 and 10).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_limit_counters")),
    )
    op.create_index(
        op.f("ix_rate_limit_counters_window_end"),
        "rate_limit_counters",
        ["window_end"],
        unique=False,
    )
    op.create_table(
        "audit_refusal_windows",
        sa.Column("kind_sha256", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=True),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=True),
        sa.Column("principal", sa.String(length=13), nullable=True),
        sa.Column("first_sequence", sa.Integer(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "kind_sha256", "window_start", name=op.f("pk_audit_refusal_windows")
        ),
    )
    op.create_index(
        op.f("ix_audit_refusal_windows_window_end"),
        "audit_refusal_windows",
        ["window_end"],
        unique=False,
    )


def downgrade() -> None:
    # Counts still waiting are dropped with the table; fold them first
    # (app.audit_trail.log.fold_refusals with open_windows=True) to keep them.
    op.drop_index(op.f("ix_audit_refusal_windows_window_end"), table_name="audit_refusal_windows")
    op.drop_table("audit_refusal_windows")
    op.drop_index(op.f("ix_rate_limit_counters_window_end"), table_name="rate_limit_counters")
    op.drop_table("rate_limit_counters")
