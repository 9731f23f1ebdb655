"""API clients read only the corporations they are registered for (issue 9.14):
``api_client_corporations`` names them; ``api_clients.all_corporations`` marks a
client an administrator registered for every corporation.

Clients registered before this revision were global (only administrators could
register them), so they are marked ``all_corporations`` and keep working; their
representation now says so, and an administrator can replace one with a client
registered for named corporations.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_clients") as batch:
        batch.add_column(
            sa.Column("all_corporations", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.get_bind().execute(sa.text("UPDATE api_clients SET all_corporations = :all"), {"all": True})
    op.create_table(
        "api_client_corporations",
        sa.Column("client_id", sa.String(length=36), nullable=False),
        sa.Column("corporate_number", sa.String(length=13), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["api_clients.id"],
            name=op.f("fk_api_client_corporations_client_id_api_clients"),
        ),
        sa.ForeignKeyConstraint(
            ["corporate_number"],
            ["corporations.corporate_number"],
            name=op.f("fk_api_client_corporations_corporate_number_corporations"),
        ),
        sa.PrimaryKeyConstraint(
            "client_id", "corporate_number", name=op.f("pk_api_client_corporations")
        ),
    )


def downgrade() -> None:
    op.drop_table("api_client_corporations")
    with op.batch_alter_table("api_clients") as batch:
        batch.drop_column("all_corporations")
