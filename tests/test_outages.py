"""Database outages in process: time-outs, classification, the outage log, the WAL
checkpointer (issue 16 items 5, 6, 7, 9). The served process is tested in
test_faults_db.py and test_faults_tsa.py."""

from __future__ import annotations

import logging
import os
import time

import pytest
from helpers_faults import SilentDatabase, file_size
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from app.database import ReadinessProbe, WalCheckpointer, make_engine
from app.dev.private_schema import private_schema
from app.factory import create_app
from app.migrate import migrate
from app.outages import OutageLog, database_fault
from app.settings import load_settings
from dairi.problems import problem

UNKNOWN_TOKEN = {"Authorization": "Bearer dairi_at_unknown-outage-test"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_logged_when_it_starts_at_most_once_a_minute_and_when_it_ends(caplog):
    clock = FakeClock()
    outages = OutageLog(logging.getLogger("test.outages"), reminder_seconds=60, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.outages"):
        for _ in range(50):  # fifty failed requests within 25 s
            outages.failed("database", "OperationalError: disk I/O error")
            clock.now += 0.5
        clock.now += 40  # 65 s into the outage: one reminder
        outages.failed("database", "OperationalError: disk I/O error")
        outages.failed("database", "OperationalError: disk I/O error")
        outages.recovered("database")
        outages.recovered("database")  # nothing more to say
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "database unavailable: OperationalError: disk I/O error",
        "database still unavailable after 65 s (51 failures): OperationalError: disk I/O error",
        "database recovered after 65.0 s (52 failures)",
    ]
    assert not outages.down("database")


def test_a_failure_after_a_long_quiet_spell_is_a_new_outage(caplog):
    clock = FakeClock()
    outages = OutageLog(logging.getLogger("test.outages"), reminder_seconds=60, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.outages"):
        outages.failed("time-stamping authority", "the TSA refused")
        clock.now += 120  # no success seen (nothing time-stamped), no failure either
        outages.failed("time-stamping authority", "the TSA refused")
    assert [r.getMessage() for r in caplog.records] == [
        "time-stamping authority unavailable: the TSA refused"
    ] * 2


def test_outage_codes_are_503():
    for code in (
        "DATABASE_UNAVAILABLE",
        "STORAGE_FULL",
        "TIMESTAMP_FAILED",
        "VALIDATION_DATA_UNAVAILABLE",
        "SIGNING_FAILED",
    ):
        assert problem(code).status == 503


def test_new_settings_have_defaults_and_bounds():
    settings = load_settings(env={})
    assert (
        settings.database_connect_timeout_seconds,
        settings.database_statement_timeout_seconds,
        settings.sqlite_busy_timeout_seconds,
        settings.tsa_timeout_seconds,
    ) == (5, 5, 10, 5)
    assert (
        load_settings(
            env={"DAIRI_DATABASE_STATEMENT_TIMEOUT_SECONDS": "2"}
        ).database_statement_timeout_seconds
        == 2
    )
    with pytest.raises(ValueError, match="database_connect_timeout_seconds"):
        load_settings(env={"DAIRI_DATABASE_CONNECT_TIMEOUT_SECONDS": "0"})


def _hold_the_write_lock(url: str):
    """Another client's transaction holding what a refusal's audit append needs."""
    engine = make_engine(url)
    connection = engine.connect()
    transaction = connection.begin()  # SQLite: BEGIN IMMEDIATE, the write lock
    if engine.dialect.name == "postgresql":
        connection.execute(text("LOCK TABLE audit_head IN ACCESS EXCLUSIVE MODE"))
    return engine, connection, transaction


def test_a_lock_held_past_the_time_outs_is_503_database_unavailable(app_settings, hsm):
    migrate(app_settings.database_url)
    app = create_app(
        app_settings.replace(database_statement_timeout_seconds=1, sqlite_busy_timeout_seconds=1),
        hsm=hsm,
    )
    client = app.test_client()
    engine, connection, transaction = _hold_the_write_lock(app_settings.database_url)
    try:
        start = time.monotonic()
        response = client.get("/api/v1/me", headers=UNKNOWN_TOKEN)
        seconds = time.monotonic() - start
    finally:
        transaction.rollback()
        connection.close()
        engine.dispose()
    try:
        assert response.status_code == 503
        assert response.get_json()["code"] == "DATABASE_UNAVAILABLE"
        assert response.headers["Retry-After"] == "5"
        assert seconds < 10
        # The lock is gone: the same client is answered normally, on the same pool.
        assert client.get("/api/v1/me", headers=UNKNOWN_TOKEN).status_code == 401
    finally:
        app.extensions["dairi"].engine.dispose()


def test_a_defect_is_not_taken_for_an_outage(db_url):
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
            connection.execute(insert(ReadinessProbe).values(id=1))  # the row exists
    finally:
        engine.dispose()
    assert database_fault(caught.value) is None  # stays a 500 with its traceback


def test_a_server_that_never_answers_is_given_up_after_the_connect_timeout():
    with SilentDatabase() as silent:
        engine = make_engine(silent.url(), connect_timeout=2)
        start = time.monotonic()
        try:
            with pytest.raises(OperationalError) as caught:
                engine.connect()
        finally:
            engine.dispose()
        seconds = time.monotonic() - start
    assert seconds < 10
    fault = database_fault(caught.value)
    assert fault is not None and fault.code == "DATABASE_UNAVAILABLE"


needs_postgresql = [
    pytest.mark.postgresql,
    pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL"),
]


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_postgresql, id="postgresql")])
def test_postgresql_statements_are_bounded_and_the_url_options_kept(_):
    with private_schema(os.environ["TEST_DATABASE_URL"]) as url:
        schema = make_url(url).query["options"].split("=", 1)[1]
        engine = make_engine(url, statement_timeout=1)
        try:
            with engine.connect() as connection:
                assert connection.scalar(text("SHOW statement_timeout")) == "1s"
                assert connection.scalar(text("SHOW search_path")) == schema
                start = time.monotonic()
                with pytest.raises(OperationalError) as caught:
                    connection.execute(text("SELECT pg_sleep(5)"))
                assert time.monotonic() - start < 4
            fault = database_fault(caught.value)
            assert fault is not None and fault.code == "DATABASE_UNAVAILABLE"
            with engine.connect() as connection:  # the server ended it; the pool is fine
                assert connection.scalar(text("SELECT 1")) == 1
        finally:
            engine.dispose()


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_postgresql, id="postgresql")])
def test_a_postgresql_that_stops_answering_is_abandoned_and_its_connection_dropped(_):
    server = make_url(os.environ["TEST_DATABASE_URL"])
    with SilentDatabase((server.host or "127.0.0.1", server.port or 5432)) as relay:
        url = server.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        engine = make_engine(url, connect_timeout=2, statement_timeout=1)
        try:
            connection = engine.connect()
            assert connection.scalar(text("SELECT 1")) == 1
            relay.stall()
            start = time.monotonic()
            with pytest.raises(OperationalError, match="did not answer within 3 s"):
                connection.execute(text("SELECT 1"))
            seconds = time.monotonic() - start
            assert connection.invalidated  # never handed out again
            connection.close()
            relay.resume()
            with engine.connect() as fresh:
                assert fresh.scalar(text("SELECT 1")) == 1
        finally:
            engine.dispose()
    # The server's statement_timeout (1 s) cannot end it; the client gives up 2 s later.
    assert 2.5 < seconds < 8


def test_the_wal_checkpointer_truncates_when_due_and_not_before(tmp_path):
    url = f"sqlite:///{tmp_path / 'dairi.db'}"
    migrate(url)
    wal = tmp_path / "dairi.db-wal"
    engine = make_engine(url)
    clock = FakeClock()
    try:
        checkpointer = WalCheckpointer.for_engine(engine, 300, clock=clock)
        assert checkpointer is not None
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE ballast (b BLOB)"))
            connection.execute(text("INSERT INTO ballast VALUES (randomblob(2000000))"))
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE ballast"))
        grown = file_size(wal)
        assert grown > 1_000_000
        clock.now += 299
        checkpointer.maybe_checkpoint()
        assert file_size(wal) == grown  # not due yet
        clock.now += 2
        checkpointer.maybe_checkpoint()
        assert file_size(wal) == 0
        with engine.connect() as connection:  # the pooled connection still works
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
    finally:
        engine.dispose()
    assert WalCheckpointer.for_engine(make_engine("sqlite://"), 300) is None
