"""People keep a keyed digest of the four basic items and a redacted reference to
their JPKI signing certificate instead of the certificate itself (issue 9 items 1
and 7); access tokens keep a representative's registration certificate, so a
revocation reaches the token (item 5).

Rows enrolled before this revision keep their signing certificate and have no
digest: the service computes the digest from it (and drops the certificate
unless ``keep_personal_data``) at the person's next login or re-bind. The digest
needs the HSM, which a migration does not open.

Downgrade: the old schema requires the certificate; rows that no longer hold it
get an empty value, which the old code refuses at login (those people re-enrol).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _people_columns() -> list[sa.Column]:
    return [
        sa.Column("signing_certificate_issuer", sa.Text(), nullable=True),
        sa.Column("signing_certificate_serial", sa.String(length=64), nullable=True),
        sa.Column("signing_certificate_not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signing_certificate_not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signing_certificate_status_ref", sa.LargeBinary(), nullable=True),
        sa.Column("identity_digest", sa.String(length=64), nullable=True),
        sa.Column("identity_key_id", sa.String(length=64), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("people") as batch:
        for column in _people_columns():
            batch.add_column(column)
        batch.alter_column("signing_certificate_der", existing_type=sa.LargeBinary(), nullable=True)
    with op.batch_alter_table("access_tokens") as batch:
        batch.add_column(sa.Column("certificate_der", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_tokens") as batch:
        batch.drop_column("certificate_der")
    op.get_bind().execute(
        sa.text(
            "UPDATE people SET signing_certificate_der = :empty "
            "WHERE signing_certificate_der IS NULL"
        ),
        {"empty": b""},
    )
    with op.batch_alter_table("people") as batch:
        batch.alter_column(
            "signing_certificate_der", existing_type=sa.LargeBinary(), nullable=False
        )
        for column in reversed(_people_columns()):
            batch.drop_column(column.name)
