"""Credential renewal (issue 11 item 1): a renewed credential names the one it
replaces, and a mandate re-issued by the attribute authority to the new certificate
names the mandate it supersedes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.add_column(sa.Column("renewed_from_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_credentials_renewed_from_id_credentials"),
            "credentials",
            ["renewed_from_id"],
            ["id"],
        )
    with op.batch_alter_table("mandates") as batch_op:
        batch_op.add_column(sa.Column("reissued_from_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_mandates_reissued_from_id_mandates"),
            "mandates",
            ["reissued_from_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("mandates") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_mandates_reissued_from_id_mandates"), type_="foreignkey"
        )
        batch_op.drop_column("reissued_from_id")
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_credentials_renewed_from_id_credentials"), type_="foreignkey"
        )
        batch_op.drop_column("renewed_from_id")
