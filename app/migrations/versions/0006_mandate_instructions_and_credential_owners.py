"""Mandate instructions accepted once; credential owners; the AA's published CRL and the
signed mandate documents, shared by every worker (issue 9, items 3, 4 and 12).

- ``mandate_instructions``: the digest of every accepted grant instruction (primary
  key), filled from the existing mandates (the first mandate of a digest, should a
  replay have left two);
- ``credentials``: ``person_id``, ``corporate_number`` (the owner; null on older rows,
  which hold no mandate until re-issued) and ``certificate_sha256`` (filled here);
- ``published_crls``: one row, made here with an empty CRL that counts as expired;
- ``signed_mandate_documents``: the signed 電子委任状 per mandate and state.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    op.create_table(
        "mandate_instructions",
        sa.Column("instruction_sha256", sa.String(length=64), nullable=False),
        sa.Column("mandate_id", sa.String(length=36), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mandate_id"],
            ["mandates.id"],
            name=op.f("fk_mandate_instructions_mandate_id_mandates"),
        ),
        sa.PrimaryKeyConstraint("instruction_sha256", name=op.f("pk_mandate_instructions")),
    )
    with op.batch_alter_table("mandate_instructions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mandate_instructions_mandate_id"), ["mandate_id"], unique=False
        )
    connection = op.get_bind()
    mandates = sa.table(
        "mandates",
        sa.column("id", sa.String),
        sa.column("instruction_sha256", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    first: dict[str, dict[str, object]] = {}
    for mandate_id, digest, created_at in connection.execute(
        sa.select(mandates.c.id, mandates.c.instruction_sha256, mandates.c.created_at).order_by(
            mandates.c.created_at, mandates.c.id
        )
    ):
        first.setdefault(
            digest,
            {"instruction_sha256": digest, "mandate_id": mandate_id, "accepted_at": created_at},
        )
    if first:
        op.bulk_insert(
            sa.table(
                "mandate_instructions",
                sa.column("instruction_sha256"),
                sa.column("mandate_id"),
                sa.column("accepted_at"),
            ),
            list(first.values()),
        )

    # The owner's columns are added in place. On SQLite their foreign keys go inline
    # (ADD COLUMN accepts a REFERENCES clause): batch mode would copy the table and
    # drop the old one, which SQLite refuses while signature_records refers to it.
    op.add_column(
        "credentials", sa.Column("certificate_sha256", sa.String(length=64), nullable=True)
    )
    owner = (
        ("person_id", 36, "people", "id"),
        ("corporate_number", 13, "corporations", "corporate_number"),
    )
    for column, length, table, target in owner:
        name = f"fk_credentials_{column}_{table}"
        if connection.dialect.name == "sqlite":
            op.execute(
                f"ALTER TABLE credentials ADD COLUMN {column} VARCHAR({length}) "
                f"CONSTRAINT {name} REFERENCES {table} ({target})"
            )
        else:
            op.add_column("credentials", sa.Column(column, sa.String(length=length), nullable=True))
            op.create_foreign_key(op.f(name), "credentials", table, [column], [target])
    op.create_index(
        op.f("ix_credentials_certificate_sha256"),
        "credentials",
        ["certificate_sha256"],
        unique=False,
    )
    op.create_index(op.f("ix_credentials_person_id"), "credentials", ["person_id"], unique=False)
    credentials = sa.table(
        "credentials",
        sa.column("id", sa.String),
        sa.column("certificate_der", sa.LargeBinary),
        sa.column("certificate_sha256", sa.String),
    )
    for credential_id, der in connection.execute(
        sa.select(credentials.c.id, credentials.c.certificate_der).where(
            credentials.c.certificate_der.is_not(None)
        )
    ).all():
        connection.execute(
            credentials.update()
            .where(credentials.c.id == credential_id)
            .values(certificate_sha256=hashlib.sha256(der).hexdigest())
        )

    op.create_table(
        "published_crls",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("crl_der", sa.LargeBinary(), nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_published_crls")),
    )
    op.bulk_insert(
        sa.table(
            "published_crls",
            sa.column("id"),
            sa.column("number"),
            sa.column("crl_der"),
            sa.column("this_update"),
            sa.column("next_update", sa.DateTime(timezone=True)),
        ),
        [{"id": 1, "number": 0, "crl_der": b"", "this_update": EPOCH, "next_update": EPOCH}],
    )

    op.create_table(
        "signed_mandate_documents",
        sa.Column("mandate_id", sa.String(length=36), nullable=False),
        sa.Column("state_sha256", sa.String(length=64), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["mandate_id"],
            ["mandates.id"],
            name=op.f("fk_signed_mandate_documents_mandate_id_mandates"),
        ),
        sa.PrimaryKeyConstraint("mandate_id", name=op.f("pk_signed_mandate_documents")),
    )


def downgrade() -> None:
    op.drop_table("signed_mandate_documents")
    op.drop_table("published_crls")
    op.drop_index(op.f("ix_credentials_person_id"), table_name="credentials")
    op.drop_index(op.f("ix_credentials_certificate_sha256"), table_name="credentials")
    if op.get_bind().dialect.name == "sqlite":
        _drop_owner_columns_on_sqlite()
    else:
        op.drop_constraint(
            "fk_credentials_corporate_number_corporations", "credentials", type_="foreignkey"
        )
        op.drop_constraint("fk_credentials_person_id_people", "credentials", type_="foreignkey")
        for column in ("corporate_number", "person_id", "certificate_sha256"):
            op.drop_column("credentials", column)
    with op.batch_alter_table("mandate_instructions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mandate_instructions_mandate_id"))
    op.drop_table("mandate_instructions")


def _drop_owner_columns_on_sqlite() -> None:
    """SQLite drops a column with a foreign key only by copying the table (batch mode),
    and dropping the old copy fails while signature_records rows refer to it (the
    foreign-key pragma cannot be turned off inside the migration's transaction), so
    those rows step aside into a temporary table for the copy and come back."""
    op.execute("CREATE TEMPORARY TABLE signature_records_0006 AS SELECT * FROM signature_records")
    op.execute("DELETE FROM signature_records")
    with op.batch_alter_table("credentials", schema=None, recreate="always") as batch_op:
        batch_op.drop_column("corporate_number")
        batch_op.drop_column("person_id")
        batch_op.drop_column("certificate_sha256")
    op.execute("INSERT INTO signature_records SELECT * FROM signature_records_0006")
    op.execute("DROP TABLE signature_records_0006")
