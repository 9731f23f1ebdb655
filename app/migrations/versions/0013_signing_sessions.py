"""Signing sessions with signature activation (issue 11 items 2 and 7): the sessions,
their documents (as uploaded and as signed, until fetched), and on each signature
record the session, mandate and person it was made for; a signature record may be a
detached CMS (a sub-delegation instruction signed in a session).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

STATUS = "status IN ('open', 'authorized', 'signed')"
OLD_FORMATS = "format IN ('pades', 'xades')"
FORMATS = "format IN ('pades', 'xades', 'cms')"


def upgrade() -> None:
    op.create_table(
        "signing_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("credential_id", sa.String(length=36), nullable=False),
        sa.Column("credential_certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("mandate_id", sa.String(length=36), nullable=False),
        sa.Column("principal", sa.String(length=13), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("stamp", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("binding", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("authorized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("card_certificate_sha256", sa.String(length=64), nullable=True),
        sa.Column("sad_sha256", sa.String(length=64), nullable=True),
        sa.Column("sad_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sad_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(STATUS, name=op.f("ck_signing_sessions_status")),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_signing_sessions_credential_id_credentials"),
        ),
        sa.ForeignKeyConstraint(
            ["mandate_id"], ["mandates.id"], name=op.f("fk_signing_sessions_mandate_id_mandates")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_signing_sessions_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_sessions")),
    )
    op.create_index(
        op.f("ix_signing_sessions_person_id"), "signing_sessions", ["person_id"], unique=False
    )
    with op.batch_alter_table("signature_records") as batch_op:
        batch_op.add_column(sa.Column("session_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("mandate_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("person_id", sa.String(length=36), nullable=True))
        # A sub-delegation signed in a session is a detached CMS (issue 11 item 4).
        batch_op.drop_constraint(batch_op.f("ck_signature_records_format"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_signature_records_format"), FORMATS)
        batch_op.create_index(
            batch_op.f("ix_signature_records_session_id"), ["session_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_signature_records_session_id_signing_sessions"),
            "signing_sessions",
            ["session_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_signature_records_mandate_id_mandates"),
            "mandates",
            ["mandate_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_signature_records_person_id_people"), "people", ["person_id"], ["id"]
        )
    op.create_table(
        "signing_session_documents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("signed_content", sa.LargeBinary(), nullable=True),
        sa.Column("signed_sha256", sa.String(length=64), nullable=True),
        sa.Column("signature_id", sa.String(length=36), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["signing_sessions.id"],
            name=op.f("fk_signing_session_documents_session_id_signing_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["signature_id"],
            ["signature_records.id"],
            name=op.f("fk_signing_session_documents_signature_id_signature_records"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_session_documents")),
        sa.UniqueConstraint(
            "session_id", "position", name=op.f("uq_signing_session_documents_session_id_position")
        ),
    )
    op.create_index(
        op.f("ix_signing_session_documents_session_id"),
        "signing_session_documents",
        ["session_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_signing_session_documents_session_id"), table_name="signing_session_documents"
    )
    op.drop_table("signing_session_documents")
    with op.batch_alter_table("signature_records") as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_signature_records_person_id_people"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_signature_records_mandate_id_mandates"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_signature_records_session_id_signing_sessions"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_signature_records_session_id"))
        batch_op.drop_column("person_id")
        batch_op.drop_constraint(batch_op.f("ck_signature_records_format"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_signature_records_format"), OLD_FORMATS)
        batch_op.drop_column("mandate_id")
        batch_op.drop_column("session_id")
    op.drop_index(op.f("ix_signing_sessions_person_id"), table_name="signing_sessions")
    op.drop_table("signing_sessions")
