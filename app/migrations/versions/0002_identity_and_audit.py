"""Identity (corporations, people, roles, invitations, challenges, tokens, API
clients) and the hash-chained audit log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_clients",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_clients")),
        sa.UniqueConstraint("client_id", name=op.f("uq_api_clients_client_id")),
    )
    op.create_table(
        "audit_events",
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.String(length=100), nullable=True),
        sa.Column("principal", sa.String(length=13), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    op.create_index(
        op.f("ix_audit_events_occurred_at"), "audit_events", ["occurred_at"], unique=False
    )
    op.create_index(op.f("ix_audit_events_principal"), "audit_events", ["principal"], unique=False)
    op.create_index(op.f("ix_audit_events_subject"), "audit_events", ["subject"], unique=False)
    op.create_index(op.f("ix_audit_events_tag"), "audit_events", ["tag"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "auth_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("client_key", sa.String(length=100), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_challenges")),
    )
    op.create_index(
        op.f("ix_auth_challenges_client_key"), "auth_challenges", ["client_key"], unique=False
    )
    op.create_index(
        op.f("ix_auth_challenges_expires_at"), "auth_challenges", ["expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_auth_challenges_issued_at"), "auth_challenges", ["issued_at"], unique=False
    )

    op.create_table(
        "corporations",
        sa.Column("corporate_number", sa.String(length=13), nullable=False),
        sa.Column("registered_number", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("corporate_number", name=op.f("pk_corporations")),
    )
    op.create_table(
        "people",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("auth_certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("auth_certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("signing_certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("signing_certificate_der", sa.LargeBinary(), nullable=False),
        sa.Column("personal_data", sa.Text(), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rebound_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'reenroll_required')", name=op.f("ck_people_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint(
            "auth_certificate_sha256", name=op.f("uq_people_auth_certificate_sha256")
        ),
    )
    op.create_index(
        op.f("ix_people_signing_certificate_sha256"),
        "people",
        ["signing_certificate_sha256"],
        unique=False,
    )

    op.create_table(
        "access_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=True),
        sa.Column("corporate_number", sa.String(length=13), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=True),
        sa.Column("certificate_sha256", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["corporate_number"],
            ["corporations.corporate_number"],
            name=op.f("fk_access_tokens_corporate_number_corporations"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_access_tokens_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_access_tokens_token_sha256")),
    )
    op.create_index(
        op.f("ix_access_tokens_expires_at"), "access_tokens", ["expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_access_tokens_person_id"), "access_tokens", ["person_id"], unique=False
    )

    op.create_table(
        "employments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("corporate_number", sa.String(length=13), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["corporate_number"],
            ["corporations.corporate_number"],
            name=op.f("fk_employments_corporate_number_corporations"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_employments_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_employments")),
        sa.UniqueConstraint(
            "person_id", "corporate_number", name=op.f("uq_employments_person_id_corporate_number")
        ),
    )
    op.create_index(
        op.f("ix_employments_corporate_number"), "employments", ["corporate_number"], unique=False
    )
    op.create_index(op.f("ix_employments_person_id"), "employments", ["person_id"], unique=False)

    op.create_table(
        "invitations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("corporate_number", sa.String(length=13), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["corporate_number"],
            ["corporations.corporate_number"],
            name=op.f("fk_invitations_corporate_number_corporations"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_invitations_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("code_sha256", name=op.f("uq_invitations_code_sha256")),
    )
    op.create_index(
        op.f("ix_invitations_corporate_number"), "invitations", ["corporate_number"], unique=False
    )

    op.create_table(
        "role_assignments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('employee', 'representative', 'auditor', 'administrator')",
            name=op.f("ck_role_assignments_role"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_role_assignments_person_id_people")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_assignments")),
        sa.UniqueConstraint("person_id", "role", name=op.f("uq_role_assignments_person_id_role")),
    )
    op.create_index(
        op.f("ix_role_assignments_person_id"), "role_assignments", ["person_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_role_assignments_person_id"), table_name="role_assignments")

    op.drop_table("role_assignments")
    op.drop_index(op.f("ix_invitations_corporate_number"), table_name="invitations")

    op.drop_table("invitations")
    op.drop_index(op.f("ix_employments_person_id"), table_name="employments")
    op.drop_index(op.f("ix_employments_corporate_number"), table_name="employments")

    op.drop_table("employments")
    op.drop_index(op.f("ix_access_tokens_person_id"), table_name="access_tokens")
    op.drop_index(op.f("ix_access_tokens_expires_at"), table_name="access_tokens")

    op.drop_table("access_tokens")
    op.drop_index(op.f("ix_people_signing_certificate_sha256"), table_name="people")

    op.drop_table("people")
    op.drop_table("corporations")
    op.drop_index(op.f("ix_auth_challenges_issued_at"), table_name="auth_challenges")
    op.drop_index(op.f("ix_auth_challenges_expires_at"), table_name="auth_challenges")
    op.drop_index(op.f("ix_auth_challenges_client_key"), table_name="auth_challenges")

    op.drop_table("auth_challenges")
    op.drop_table("audit_head")
    op.drop_index(op.f("ix_audit_events_tag"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_subject"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_principal"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_occurred_at"), table_name="audit_events")

    op.drop_table("audit_events")
    op.drop_table("api_clients")
