"""Checkpoints in the service, the online verification and the ``dairi audit``
commands (issue 14 items 1, 3, 4 and "What must hold").

Each kind of tampering an insider with SQL could do — an edited, inserted,
deleted or swapped event, the log cut after the last checkpoint, a chain
recomputed after an edit, a forged checkpoint (wrong key, altered head, a
time-stamp over other data) — is found by :func:`verify_database` at the
sequence and with the kind written here by hand. The export → verify path is
run through the command line; events of a whole enrolment and login carry no
personal data beyond names.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from helpers_audit import dev_timestamp
from helpers_auth import enrolled_employee, new_corporation
from sqlalchemy import text

from app.audit_trail.checkpoints import (
    AuditKeyUnavailable,
    checkpoint_due,
    list_checkpoints,
    take_checkpoint,
    trust_for,
    verify_database,
)
from app.audit_trail.log import AuditLog
from app.audit_trail.models import AuditCheckpoint, AuditRecord
from app.audit_trail.service import verification
from app.cli.main import main
from audit import AuditEvent, CheckpointSigner, verify_export
from audit import take_checkpoint as sign_checkpoint
from audit.checkpoint import CheckpointStatement


def _append(ctx, first: int, last: int) -> None:  # type: ignore[no-untyped-def]
    with ctx.session_factory() as session, session.begin():
        log = AuditLog(session)
        for n in range(first, last + 1):
            log.append(
                "mandate:grant:issued",
                actor=f"person:{n % 5}",
                subject=f"m-{n}",
                principal="7010001008844",
                details={"n": n},
            )


@pytest.fixture
def ctx(app, pki):  # type: ignore[no-untyped-def]
    """30 events with checkpoints at 10 and 20."""
    context = app.extensions["dairi"]
    _append(context, 1, 10)
    assert take_checkpoint(context).sequence == 10
    _append(context, 11, 20)
    assert take_checkpoint(context).sequence == 20
    _append(context, 21, 30)
    return context


def verdict(ctx) -> tuple[int | None, str]:  # type: ignore[no-untyped-def]
    report = verify_database(ctx.session_factory, trust_for(ctx))
    assert not report.intact
    return report.first_break.sequence, report.first_break.kind


def execute(ctx, sql: str, **params) -> None:  # type: ignore[no-untyped-def]
    with ctx.engine.begin() as connection:
        connection.execute(text(sql), params)


def row_hash(ctx, sequence: int) -> str:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as connection:
        return connection.scalar(
            text("SELECT hash FROM audit_events WHERE sequence = :s"), {"s": sequence}
        )


def test_intact_chain_and_checkpoints_verify(ctx) -> None:
    report = verify_database(ctx.session_factory, trust_for(ctx))
    assert report.intact, report.as_dict()
    assert (report.events, report.checkpoints, report.last_checkpoint) == (30, 2, 20)
    assert report.as_dict()["unprotected_events"] == 10
    with ctx.session_factory() as session:  # a request's own session will do too
        assert verify_database(session, trust_for(ctx)).as_dict() == report.as_dict()
        listed = list_checkpoints(session)
        assert [c.sequence for c in listed] == [10, 20]
        assert list_checkpoints(session, after=10) == listed[1:]
    assert listed[0].head_hash == row_hash(ctx, 10)
    # From the last checkpoint only: events 21-30.
    recent = verify_database(ctx.session_factory, trust_for(ctx), from_checkpoint=True)
    assert recent.intact and (recent.first_sequence, recent.events) == (21, 10)
    # What GET /api/v1/audit/verification answers.
    answer = verification(ctx, ctx.session_factory, from_start=False)
    assert (answer["intact"], answer["checked_from"], answer["first_sequence"]) == (
        True,
        "checkpoint",
        21,
    )
    assert verification(ctx, ctx.session_factory, from_start=True)["events"] == 30
    # The same head is not signed twice.
    _append(ctx, 31, 31)
    first = take_checkpoint(ctx)
    assert take_checkpoint(ctx).taken_at == first.taken_at
    with ctx.session_factory() as session:
        assert session.query(AuditCheckpoint).count() == 3


def test_online_edited_event(ctx) -> None:
    execute(ctx, "UPDATE audit_events SET details = :d WHERE sequence = 15", d='{"n": 999}')
    assert verdict(ctx) == (15, "edited")


def test_online_inserted_event(ctx) -> None:
    # Room is made at 15 (the rest renumbered), a forged event linked to 14 put there.
    execute(ctx, "UPDATE audit_events SET sequence = sequence + 1000 WHERE sequence >= 15")
    execute(ctx, "UPDATE audit_events SET sequence = sequence - 999 WHERE sequence > 1000")
    forged = AuditEvent(
        15,
        ctx.clock(),
        "person:forger",
        "mandate:grant:issued",
        "m-x",
        "7010001008844",
        {"forged": True},
        row_hash(ctx, 14),
    )
    with ctx.session_factory() as session, session.begin():
        session.add(
            AuditRecord(
                sequence=15,
                occurred_at=forged.occurred_at,
                actor=forged.actor,
                tag=forged.tag,
                subject=forged.subject,
                principal=forged.principal,
                details='{"forged": true}',
                previous_hash=forged.previous_hash,
                hash=forged.digest(),
            )
        )
    assert verdict(ctx) == (15, "inserted")


def test_online_deleted_event(ctx) -> None:
    execute(ctx, "DELETE FROM audit_events WHERE sequence = 15")
    assert verdict(ctx) == (15, "deleted")


def test_online_swapped_events(ctx) -> None:
    execute(ctx, "UPDATE audit_events SET sequence = 1015 WHERE sequence = 15")
    execute(ctx, "UPDATE audit_events SET sequence = 15 WHERE sequence = 16")
    execute(ctx, "UPDATE audit_events SET sequence = 16 WHERE sequence = 1015")
    assert verdict(ctx) == (15, "swapped")


def test_online_truncated_after_the_last_checkpoint(ctx) -> None:
    execute(ctx, "DELETE FROM audit_events WHERE sequence > 25")
    assert verdict(ctx) == (26, "truncated")


def test_online_chain_recomputed_after_an_edit(ctx) -> None:
    # Edit 15 and recompute every hash after it, head row included: only the
    # checkpoint signed at 20 still knows the old head.
    previous = row_hash(ctx, 14)
    with ctx.session_factory() as session:
        records = list(AuditLog(session).events(after=14))
        for record in records:
            record.previous_hash = previous
            if record.sequence == 15:
                record.details = '{"n": 999}'
            record.hash = previous = record.event().digest()
        session.execute(text("UPDATE audit_head SET hash = :h"), {"h": previous})
        session.commit()
    assert verdict(ctx) == (11, "rewritten")


def _statement(ctx, sequence: int) -> CheckpointStatement:  # type: ignore[no-untyped-def]
    with ctx.session_factory() as session:
        return CheckpointStatement.parse(session.get(AuditCheckpoint, sequence).statement)


def test_online_checkpoint_signed_with_another_key(
    ctx, employee, hsm, base_settings, tmp_path
) -> None:
    statement = _statement(ctx, 20)
    other = CheckpointSigner(
        employee.certificate_der, employee.chain_der, lambda data: hsm.sign(employee.key_ref, data)
    )
    forged = sign_checkpoint(
        20, statement.head_hash, statement.taken_at, other, dev_timestamp(ctx.dev_pki)
    )
    execute(
        ctx,
        "UPDATE audit_checkpoints SET signature_der = :s, timestamp_der = :t WHERE sequence = 20",
        s=forged.signature_der,
        t=forged.timestamp_der,
    )
    # The employee key chains to the service root too: the service pins the audit
    # certificates of its own key.
    assert verdict(ctx) == (20, "checkpoint_wrong_key")


def test_online_checkpoint_with_an_altered_head(ctx) -> None:
    statement = _statement(ctx, 20)
    altered = CheckpointStatement(20, row_hash(ctx, 19), statement.taken_at)
    execute(
        ctx,
        "UPDATE audit_checkpoints SET statement = :s, head_hash = :h WHERE sequence = 20",
        s=altered.canonical(),
        h=altered.head_hash,
    )
    assert verdict(ctx) == (20, "checkpoint_altered")


def test_online_checkpoint_time_stamp_over_other_data(ctx) -> None:
    token = dev_timestamp(ctx.dev_pki)(b"\x01" * 32)
    execute(ctx, "UPDATE audit_checkpoints SET timestamp_der = :t WHERE sequence = 20", t=token)
    assert verdict(ctx) == (20, "checkpoint_timestamp_mismatch")


def test_a_checkpoint_is_due_after_the_interval_once_the_head_moved(ctx, app) -> None:
    interval = ctx.settings.audit_checkpoint_interval_seconds
    assert interval == 3600  # the documented default
    with ctx.session_factory() as session:
        now = ctx.clock()
        assert not checkpoint_due(session, interval, now)  # 20 is minutes old
        assert checkpoint_due(session, interval, now + timedelta(seconds=interval + 1))
        assert not checkpoint_due(session, 0, now + timedelta(days=1))  # 0: never
    assert take_checkpoint(ctx, if_due=True) is None
    later = ctx.clock() + timedelta(seconds=interval + 1)
    ctx.clock = lambda: later
    assert take_checkpoint(ctx, if_due=True).sequence == 30
    with ctx.session_factory() as session:
        assert not checkpoint_due(session, interval, later + timedelta(days=1))  # head unmoved


def test_export_and_verify_through_the_command_line(ctx, cli_env, tmp_path) -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["audit", "checkpoint"])
    assert done.exit_code == 0, done.output
    assert done.output.startswith("checkpoint 30 ") and "time-stamped" in done.output
    exported = runner.invoke(main, ["audit", "export", str(tmp_path / "all")])
    assert exported.exit_code == 0, exported.output
    trust = str(ctx.settings.trust_dir)
    ok = runner.invoke(main, ["audit", "verify", str(tmp_path / "all"), "--trust", trust])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("intact: 30 events (1-30), 3 checkpoints verified, last at 30")
    manifest = json.loads((tmp_path / "all" / "manifest.json").read_text())
    assert manifest["retention"]["years"] == 10
    online = runner.invoke(main, ["audit", "verify", "--online", "--json"])
    assert online.exit_code == 0, online.output
    assert json.loads(online.output)["intact"] is True

    # A range: anchored by the checkpoint at 10, covered by the one at 20.
    part = runner.invoke(
        main, ["audit", "export", str(tmp_path / "part"), "--from", "11", "--to", "20"]
    )
    assert part.exit_code == 0, part.output
    report = verify_export(tmp_path / "part", ctx.settings.trust_dir)
    assert report.intact and (report.first_sequence, report.last_sequence) == (11, 20)
    assert report.notes == ()  # the anchor is a verified checkpoint

    events = tmp_path / "all" / "events.jsonl"
    rows = events.read_bytes().splitlines(keepends=True)
    del rows[6]
    events.write_bytes(b"".join(rows))
    broken = runner.invoke(main, ["audit", "verify", str(tmp_path / "all"), "--trust", trust])
    assert broken.exit_code == 1
    assert broken.output.startswith("BROKEN at sequence 7: deleted")
    # A refusal: the export directory must be new or empty.
    again = runner.invoke(main, ["audit", "export", str(tmp_path / "all")])
    assert again.exit_code == 2 and "error AUDIT_EXPORT_FAILED" in again.output
    bad = runner.invoke(main, ["audit", "export", str(tmp_path / "x"), "--from", "9", "--to", "3"])
    assert bad.exit_code == 2 and "error INPUT_INVALID" in bad.output


def test_events_of_enrolment_and_login_carry_no_personal_data_beyond_names(
    app_settings, hsm, pki, monkeypatch
):
    """The employee's card carries birth date 1990-01-15 (JPKI 419900115), sex 1 and
    the address 東京都千代田区霞が関一丁目1番1号 (tests/helpers_auth.new_card); the
    service keeps them (keep_personal_data), the audit trail does not."""
    from app.factory import create_app
    from app.migrate import migrate

    monkeypatch.delenv("DAIRI_HSM_PIN", raising=False)
    migrate(app_settings.database_url)
    app = create_app(app_settings.replace(keep_personal_data=True), hsm=hsm)
    app.config["TESTING"] = True
    corp = new_corporation(pki)
    enrolled_employee(app.test_client(), pki, corp)
    ctx = app.extensions["dairi"]
    assert ctx.settings.keep_personal_data
    with ctx.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT tag, actor, subject, principal, details FROM audit_events")
        ).all()
        kept = (
            connection.execute(
                text("SELECT personal_data FROM people WHERE personal_data IS NOT NULL")
            )
            .scalars()
            .all()
        )
    assert any("霞が関" in value for value in kept)  # the service did keep them
    tags = {row.tag for row in rows}
    assert any("enrol" in tag for tag in tags) and any("login" in tag for tag in tags), tags
    text_of_events = "\n".join(" ".join(str(v) for v in row) for row in rows)
    for value in (
        "419900115",
        "19900115",
        "1990-01-15",
        "1990/01/15",
        "平成2年",
        "霞が関",
        "一丁目1番1号",
        "丸の内",
    ):
        assert value not in text_of_events, value

    def keys(value):  # type: ignore[no-untyped-def]
        if isinstance(value, dict):
            for key, inner in value.items():
                yield key
                yield from keys(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from keys(inner)

    found = {k.lower() for row in rows for k in keys(json.loads(row.details))}
    personal = re.compile(r"birth|sex|gender|address|住所|生年月日|性別")
    assert not [k for k in found if personal.search(k)], found


def test_the_service_never_deletes_or_rewrites_audit_events_or_checkpoints() -> None:
    """Retention: events and checkpoints are kept for good (audit_retention_years
    labels archive exports only). No code under app/ deletes or updates them."""
    from pathlib import Path

    import app as package

    pattern = re.compile(
        r"(?i)(delete\s+from|update)\s+audit_(events|checkpoints)\b|"
        r"delete\(\s*(AuditRecord|AuditCheckpoint)\b|"
        r"update\(\s*(AuditRecord|AuditCheckpoint)\b|"
        r"session\.delete\(\s*(record|checkpoint)\b"
    )
    offending = [
        f"{path}:{n}"
        for path in Path(package.__file__).parent.rglob("*.py")
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offending == []


def test_the_production_audit_key_is_made_in_the_token_with_a_request_for_the_ca(
    cli_env, app, hsm, tmp_path
) -> None:
    from cryptography import x509

    out = tmp_path / "audit.csr"
    made = CliRunner().invoke(
        main,
        [
            "audit",
            "key-request",
            str(out),
            "--common-name",
            "Example Audit",
            "--organization",
            "Example K.K.",
        ],
    )
    assert made.exit_code == 0, made.output
    key_id = re.search(r'audit_key_id = "([0-9a-f]{32})"', made.output)[1]
    request = x509.load_pem_x509_csr(out.read_bytes())
    assert request.is_signature_valid
    assert request.subject.rfc4514_string() == "CN=Example Audit,O=Example K.K."
    assert key_id in {ref.key_id for ref in hsm.list_keys()}
    again = CliRunner().invoke(main, ["audit", "key-request", str(out)])
    assert again.exit_code == 2 and "error INPUT_INVALID" in again.output


def test_checkpoints_are_signed_by_the_configured_production_audit_key(
    app_settings, hsm, pki, tmp_path
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from app.context import ServiceContext
    from app.migrate import migrate
    from devpki.ca import end_entity_key_usage
    from hsm import KeyAlgorithm

    ref = hsm.generate_key(KeyAlgorithm.EC_P256)
    public_key = serialization.load_der_public_key(hsm.public_key_info(ref))
    cert = pki.cas["service-root"].issue(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Production Audit")]),
        public_key,
        now=datetime.now(UTC),
        key_usage=end_entity_key_usage(non_repudiation=True),
    )
    cert_file = tmp_path / "audit-cert.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    migrate(app_settings.database_url)
    context = ServiceContext(
        app_settings.replace(audit_key_id=ref.key_id, audit_certificate_file=str(cert_file)),
        hsm=hsm,
    )
    try:
        _append(context, 1, 3)
        row = take_checkpoint(context)
        assert row.signer_certificate_der == cert.public_bytes(serialization.Encoding.DER)
        report = verify_database(context.session_factory, trust_for(context))
        assert report.intact and report.checkpoints == 1, report.as_dict()
    finally:
        context.engine.dispose()
    missing = ServiceContext(
        app_settings.replace(audit_key_id=ref.key_id, audit_certificate_file=str(tmp_path / "no")),
        hsm=hsm,
    )
    try:
        with pytest.raises(AuditKeyUnavailable):
            take_checkpoint(missing)
    finally:
        missing.engine.dispose()
