"""Credentials revoked over the API (issue 11 item 1): the status ``revoked`` joins the
status CHECK, and ``revoked_at`` / ``revocation_reason`` record when and why.

On SQLite the CHECK's text is rewritten in the schema (SQLite's documented way to
change a CHECK constraint without rebuilding the table): a rebuild would drop
``credentials``, which SQLite refuses while ``signature_records`` and the mandates
refer to it. The new CHECK only widens the old one, so no stored row can violate it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD = "status IN ('pending', 'active', 'suspended', 'destroyed')"
NEW = "status IN ('pending', 'active', 'suspended', 'revoked', 'destroyed')"


def _set_status_check(old: str, new: str) -> None:
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        version = connection.exec_driver_sql("PRAGMA schema_version").scalar()
        connection.exec_driver_sql("PRAGMA writable_schema=ON")
        connection.exec_driver_sql(
            "UPDATE sqlite_master SET sql = replace(sql, ?, ?) "
            "WHERE type = 'table' AND name = 'credentials'",
            (old, new),
        )
        connection.exec_driver_sql(f"PRAGMA schema_version={int(version or 0) + 1}")
        connection.exec_driver_sql("PRAGMA writable_schema=OFF")
        return
    op.drop_constraint(op.f("ck_credentials_status"), "credentials", type_="check")
    op.create_check_constraint(op.f("ck_credentials_status"), "credentials", new)


def upgrade() -> None:
    op.add_column("credentials", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "credentials", sa.Column("revocation_reason", sa.String(length=32), nullable=True)
    )
    _set_status_check(OLD, NEW)


def downgrade() -> None:
    _set_status_check(NEW, OLD)
    with op.batch_alter_table("credentials") as batch_op:
        batch_op.drop_column("revocation_reason")
        batch_op.drop_column("revoked_at")
