"""Mandates (電子委任状): signed instructions, their attribute certificates and status;
joint representation per corporation.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mandates",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("principal", sa.String(length=13), nullable=False),
        sa.Column("principal_name", sa.String(length=300), nullable=False),
        sa.Column("parent_id", sa.String(length=36), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("grantor_name", sa.String(length=200), nullable=False),
        sa.Column("grantor_title", sa.String(length=100), nullable=True),
        sa.Column("grantor_certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("representative_certificates", sa.Text(), nullable=True),
        sa.Column("representative_revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grantee_person_id", sa.String(length=36), nullable=False),
        sa.Column("grantee_name", sa.String(length=200), nullable=False),
        sa.Column("grantee_certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("grantee_certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("scope_json", sa.Text(), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("instruction", sa.LargeBinary(), nullable=False),
        sa.Column("instruction_sha256", sa.String(length=64), nullable=False),
        sa.Column("signatures", sa.LargeBinary(), nullable=False),
        sa.Column("attribute_certificate", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=100), nullable=True),
        sa.Column("revocation_reason", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f("ck_mandates_status")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["mandates.id"], name=op.f("fk_mandates_parent_id_mandates")
        ),
        sa.ForeignKeyConstraint(
            ["grantee_person_id"], ["people.id"], name=op.f("fk_mandates_grantee_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mandates")),
    )
    with op.batch_alter_table("mandates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mandates_grantee_certificate_sha256"),
            ["grantee_certificate_sha256"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_mandates_grantee_person_id"), ["grantee_person_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_mandates_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(
            "ix_mandates_principal_validity", ["principal", "not_after", "not_before"], unique=False
        )

    with op.batch_alter_table("corporations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("joint_representatives", sa.Integer(), server_default="1", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("corporations", schema=None) as batch_op:
        batch_op.drop_column("joint_representatives")

    with op.batch_alter_table("mandates", schema=None) as batch_op:
        batch_op.drop_index("ix_mandates_principal_validity")
        batch_op.drop_index(batch_op.f("ix_mandates_parent_id"))
        batch_op.drop_index(batch_op.f("ix_mandates_grantee_person_id"))
        batch_op.drop_index(batch_op.f("ix_mandates_grantee_certificate_sha256"))

    op.drop_table("mandates")
