"""Credentials and signature records.

Revision ID: 0001
Revises:
Create Date: 2025-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("token_label", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("certificate_der", sa.LargeBinary(), nullable=True),
        sa.Column("chain_pem", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("name", name=op.f("uq_credentials_name")),
        sa.UniqueConstraint(
            "token_label",
            "key_id",
            "key_version",
            name=op.f("uq_credentials_token_label_key_id_key_version"),
        ),
        sa.CheckConstraint(
            "algorithm IN ('rsa-2048', 'rsa-3072', 'ec-p256')",
            name=op.f("ck_credentials_algorithm"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'suspended', 'destroyed')",
            name=op.f("ck_credentials_status"),
        ),
    )
    op.create_table(
        "signature_records",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("credential_id", sa.String(36), nullable=False),
        sa.Column("token_label", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("document_sha256", sa.String(64), nullable=False),
        sa.Column("signed_document_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_records")),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_signature_records_credential_id_credentials"),
        ),
        sa.CheckConstraint(
            "format IN ('pades', 'xades')", name=op.f("ck_signature_records_format")
        ),
        sa.CheckConstraint(
            "level IN ('B-B', 'B-T', 'B-LT', 'B-LTA')", name=op.f("ck_signature_records_level")
        ),
    )
    op.create_index(
        op.f("ix_signature_records_credential_id"), "signature_records", ["credential_id"]
    )
    op.create_index(
        op.f("ix_signature_records_signed_document_sha256"),
        "signature_records",
        ["signed_document_sha256"],
    )
    op.create_index(op.f("ix_signature_records_created_at"), "signature_records", ["created_at"])


def downgrade() -> None:
    op.drop_table("signature_records")
    op.drop_table("credentials")
