"""Storage: engines, the packaged Alembic migrations, and the first two tables."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.credentials.models import Credential, CredentialStatus
from app.database import Base, engine_url, make_engine, make_session_factory
from app.migrate import alembic_config, migrate
from app.signatures.models import SignatureRecord
from hsm import KeyRef

TABLES = {"credentials", "signature_records", "alembic_version"}


@pytest.fixture
def migrated_session(db_url: str):
    migrate(db_url)
    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def _credential(
    name: str = "tanaka-bid",
    *,
    key_id: str = "ab" * 16,
    version: int = 1,
    status: str = CredentialStatus.PENDING,
) -> Credential:
    return Credential(
        name=name,
        algorithm="rsa-2048",
        token_label="dairi-test",
        key_id=key_id,
        key_version=version,
        status=status,
        subject="CN=Tanaka Taro",
    )


def test_engine_url_gives_postgresql_the_psycopg_driver():
    assert engine_url("postgresql://u@db.invalid/dairi").drivername == "postgresql+psycopg"
    assert engine_url("postgresql+psycopg://u@db.invalid/x").drivername == "postgresql+psycopg"
    assert engine_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_file_database_enforces_foreign_keys_and_uses_wal(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dairi.db'}")
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("PRAGMA foreign_keys")) == 1
            assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
    finally:
        engine.dispose()


def test_migrate_creates_the_tables_and_is_idempotent(db_url: str):
    migrate(db_url)
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
        head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head
            assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        engine.dispose()


def test_models_match_the_migrations(db_url: str):
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_credential_round_trip(migrated_session: Session):
    migrated_session.add(_credential())
    migrated_session.commit()
    migrated_session.expunge_all()
    stored = migrated_session.scalars(select(Credential)).one()
    assert len(stored.id) == 36
    assert stored.status == CredentialStatus.PENDING
    assert stored.key_ref == KeyRef("dairi-test", "ab" * 16, 1)
    assert stored.created_at.tzinfo is not None
    assert stored.created_at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - stored.created_at).total_seconds()) < 60
    assert stored.certificate_der is None and stored.chain_pem is None


def test_credential_names_are_unique(migrated_session: Session):
    migrated_session.add(_credential("same", key_id="01" * 16))
    migrated_session.commit()
    migrated_session.add(_credential("same", key_id="02" * 16))
    with pytest.raises(IntegrityError):
        migrated_session.commit()


def test_key_references_are_unique(migrated_session: Session):
    migrated_session.add(_credential("first"))
    migrated_session.commit()
    migrated_session.add(_credential("second"))
    with pytest.raises(IntegrityError):
        migrated_session.commit()
    migrated_session.rollback()
    migrated_session.add(_credential("second", version=2))  # a new version of the key
    migrated_session.commit()


def test_credential_status_is_constrained(migrated_session: Session):
    migrated_session.add(_credential(status="lost"))
    with pytest.raises(IntegrityError):
        migrated_session.commit()


def test_signature_record_needs_its_credential(migrated_session: Session):
    digest = hashlib.sha256(b"bid").hexdigest()
    record = SignatureRecord(
        credential_id="no-such-credential",
        token_label="dairi-test",
        key_id="ab" * 16,
        key_version=1,
        level="B-LT",
        document_sha256=digest,
        signed_document_sha256=digest,
    )
    migrated_session.add(record)
    with pytest.raises(IntegrityError):
        migrated_session.commit()
    migrated_session.rollback()

    credential = _credential()
    migrated_session.add(credential)
    migrated_session.flush()
    ref = credential.key_ref
    migrated_session.add(
        SignatureRecord(
            credential_id=credential.id,
            token_label=ref.token_label,
            key_id=ref.key_id,
            key_version=ref.version,
            level="B-LT",
            document_sha256=digest,
            signed_document_sha256=digest,
        )
    )
    migrated_session.commit()
    stored = migrated_session.scalars(select(SignatureRecord)).one()
    assert stored.format == "pades"
    assert stored.key_ref == ref
    assert stored.credential.name == "tanaka-bid"
