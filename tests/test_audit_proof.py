"""The offline proof (issue 14 items 1 and 3, "What must hold"): an export written
by the domain code verifies, and each kind of tampering — an edited, inserted,
deleted or swapped event, the log truncated, a chain recomputed after an edit, a
forged checkpoint (wrong key, altered head, time-stamp over other data) — is
found at the sequence and with the kind written here by hand.

The checkpoint signature and its time-stamp are also checked by OpenSSL, a
verifier that is not dairi's.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from helpers_audit import (
    DER,
    audit_signer,
    build_chain,
    checkpoints_at,
    dev_timestamp,
    line_hash,
)

from audit import CheckpointSigner, take_checkpoint, verify_export, write_export
from audit.checkpoint import CheckpointStatement, signature_value
from audit.export import _sha256_file

EVENTS = 30
CHECKPOINTS = [10, 20, 30]


@pytest.fixture(scope="module")
def signer(hsm, pki) -> CheckpointSigner:
    return audit_signer(hsm, pki)


@pytest.fixture(scope="module")
def stamp(pki):  # type: ignore[no-untyped-def]
    return dev_timestamp(pki)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, signer, stamp, pki) -> Path:
    """30 events, checkpoints at 10, 20 and 30 (the head), exported once."""
    chain = build_chain(EVENTS)
    directory = tmp_path_factory.mktemp("export") / "audit"
    root = pki.cas["service-root"].certificate.public_bytes(DER)
    write_export(
        directory,
        (e for e, _ in chain),
        checkpoints_at(chain, CHECKPOINTS, signer, stamp),
        audit_certificates_der=[signer.certificate_der],
        chain_der=[],
        roots_der=[root],
        retention_years=10,
    )
    return directory


@pytest.fixture
def export(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "audit"
    shutil.copytree(pristine, copy)
    return copy


@pytest.fixture(scope="module")
def trust(base_settings) -> Path:  # type: ignore[no-untyped-def]
    """The verifier's own roots: the development PKI's trust directory."""
    return base_settings.trust_dir


def lines(export: Path) -> list[bytes]:
    return (export / "events.jsonl").read_bytes().splitlines(keepends=True)


def write_lines(export: Path, new: list[bytes]) -> None:
    (export / "events.jsonl").write_bytes(b"".join(new))


def event(line: bytes) -> dict:
    return json.loads(line)


def canonical(value: dict) -> bytes:
    import rfc8785

    return rfc8785.dumps(value) + b"\n"


def relink(rows: list[bytes], start: int) -> list[bytes]:
    """Recompute previous_hash from ``start`` on, as a careful forger would."""
    out = rows[:start]
    for row in rows[start:]:
        value = event(row)
        value["previous_hash"] = line_hash(out[-1]) if out else "0" * 64
        out.append(canonical(value))
    return out


def reseal_manifest(export: Path) -> None:
    """Make the manifest's file hashes and head agree with the tampered files."""
    manifest = json.loads((export / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = _sha256_file(export / name)
    rows = lines(export)
    if rows:
        manifest["head"] = {"sequence": event(rows[-1])["sequence"], "hash": line_hash(rows[-1])}
    (export / "manifest.json").write_text(json.dumps(manifest))


def verdict(export: Path, trust: Path | None) -> tuple[int | None, str]:
    report = verify_export(export, trust)
    assert not report.intact
    first = report.first_break
    return first.sequence, first.kind


def test_export_verifies_intact(pristine: Path, trust: Path) -> None:
    report = verify_export(pristine, trust)
    assert report.intact, report.as_dict()
    assert (report.events, report.first_sequence, report.last_sequence) == (30, 1, 30)
    assert (report.checkpoints, report.last_checkpoint) == (3, 30)
    assert report.head_hash == line_hash(lines(pristine)[-1])
    manifest = json.loads((pristine / "manifest.json").read_text())
    assert manifest["retention"]["years"] == 10
    # Each line is the canonical event the chain hashes, and names its predecessor.
    rows = lines(pristine)
    assert [event(r)["sequence"] for r in rows] == list(range(1, 31))
    assert all(event(b)["previous_hash"] == line_hash(a) for a, b in itertools.pairwise(rows))
    assert set(event(rows[0])) == {
        "sequence",
        "occurred_at",
        "actor",
        "tag",
        "subject",
        "principal",
        "details",
        "previous_hash",
    }


def test_the_command_line_exits_0_intact_1_broken(export: Path, trust: Path) -> None:
    run = [sys.executable, "-m", "audit", "verify", str(export), "--trust", str(trust)]
    ok = subprocess.run(run, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("intact: 30 events")
    rows = lines(export)
    del rows[11]
    write_lines(export, rows)
    bad = subprocess.run(run, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert bad.returncode == 1
    assert bad.stdout.startswith("BROKEN at sequence 12: deleted")


def test_edited_event(export: Path, trust: Path) -> None:
    rows = lines(export)
    value = event(rows[14])
    value["details"]["n"] = 999
    rows[14] = canonical(value)
    write_lines(export, rows)
    assert verdict(export, trust) == (15, "edited")


def test_edited_last_event_is_caught_by_the_head_checkpoint(export: Path, trust: Path) -> None:
    rows = lines(export)
    value = event(rows[-1])
    value["actor"] = "person:forger"
    rows[-1] = canonical(value)
    write_lines(export, rows)
    reseal_manifest(export)  # even with the manifest made to agree
    assert verdict(export, trust) == (30, "edited")


def test_inserted_event(export: Path, trust: Path) -> None:
    rows = lines(export)
    forged = event(rows[14])
    forged["tag"], forged["details"] = "mandate:grant:issued", {"forged": True}
    rows.insert(14, canonical(forged))  # a second event 15 that links to 14
    write_lines(export, rows)
    assert verdict(export, trust) == (15, "inserted")


def test_inserted_event_with_the_rest_renumbered(export: Path, trust: Path) -> None:
    rows = lines(export)
    forged = event(rows[14])
    forged["details"] = {"forged": True}
    renumbered = []
    for row in rows[14:]:
        value = event(row)
        value["sequence"] += 1
        renumbered.append(canonical(value))
    write_lines(export, [*rows[:14], canonical(forged), *renumbered])
    assert verdict(export, trust) == (15, "inserted")


def test_deleted_event(export: Path, trust: Path) -> None:
    rows = lines(export)
    del rows[14]
    write_lines(export, rows)
    assert verdict(export, trust) == (15, "deleted")


def test_deleted_event_with_the_rest_renumbered(export: Path, trust: Path) -> None:
    rows = lines(export)
    renumbered = []
    for row in rows[15:]:
        value = event(row)
        value["sequence"] -= 1
        renumbered.append(canonical(value))
    write_lines(export, rows[:14] + renumbered)
    assert verdict(export, trust) == (15, "deleted")


def test_swapped_events(export: Path, trust: Path) -> None:
    rows = lines(export)
    rows[14], rows[15] = rows[15], rows[14]
    write_lines(export, rows)
    assert verdict(export, trust) == (15, "swapped")


def test_swapped_events_renumbered_in_place(export: Path, trust: Path) -> None:
    rows = lines(export)
    a, b = event(rows[14]), event(rows[15])
    a["sequence"], b["sequence"] = 16, 15
    rows[14], rows[15] = canonical(b), canonical(a)
    write_lines(export, rows)
    assert verdict(export, trust) == (15, "swapped")


def test_truncated_after_the_last_checkpoint(
    tmp_path: Path, signer, stamp, pki, trust: Path
) -> None:
    # Checkpoints at 10 and 20; the events to 30 are covered only by the manifest's head.
    chain = build_chain(EVENTS)
    export = tmp_path / "audit"
    write_export(
        export,
        (e for e, _ in chain),
        checkpoints_at(chain, [10, 20], signer, stamp),
        audit_certificates_der=[signer.certificate_der],
        chain_der=[],
        roots_der=[pki.cas["service-root"].certificate.public_bytes(DER)],
    )
    assert verify_export(export, trust).intact
    write_lines(export, lines(export)[:25])
    assert verdict(export, trust) == (26, "truncated")


def test_truncated_below_a_checkpoint_even_with_the_manifest_rewritten(
    export: Path, trust: Path
) -> None:
    write_lines(export, lines(export)[:17])
    reseal_manifest(export)  # the manifest now says the log ends at 17
    assert verdict(export, trust) == (18, "truncated")


def test_chain_recomputed_after_an_edit_disagrees_with_the_checkpoint(
    export: Path, trust: Path
) -> None:
    rows = lines(export)
    value = event(rows[14])
    value["details"]["n"] = 999
    rows[14] = canonical(value)
    write_lines(export, relink(rows, 15))
    reseal_manifest(export)
    # Every event links; the head signed at 20 is no longer the chain's.
    assert verdict(export, trust) == (11, "rewritten")


def _replace_checkpoint(
    export: Path,
    sequence: int,
    *,
    statement: bytes | None = None,
    signature: bytes | None = None,
    token: bytes | None = None,
) -> None:
    stem = export / "checkpoints" / f"{sequence:012d}"
    for data, suffix in ((statement, ".json"), (signature, ".p7s"), (token, ".tst")):
        if data is not None:
            stem.with_suffix(suffix).write_bytes(data)
    reseal_manifest(export)


def _foreign_signer(common_name: str) -> CheckpointSigner:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now.replace(year=now.year - 1))
        .not_valid_after(now.replace(year=now.year + 1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CheckpointSigner(
        cert.public_bytes(DER), (), lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    )


def test_checkpoint_signed_with_another_key(export: Path, trust: Path, stamp) -> None:
    statement = CheckpointStatement.parse((export / "checkpoints" / f"{20:012d}.json").read_bytes())
    forged = take_checkpoint(
        20, statement.head_hash, statement.taken_at, _foreign_signer("dairi Test Audit"), stamp
    )
    _replace_checkpoint(export, 20, signature=forged.signature_der, token=forged.timestamp_der)
    assert verdict(export, trust) == (20, "checkpoint_wrong_key")


def test_checkpoint_signed_by_a_trusted_key_that_is_not_the_audit_key(
    export: Path, trust: Path, tmp_path: Path, stamp, employee, hsm, signer
) -> None:
    # The employee key chains to the same root, so only a pinned audit certificate
    # (audit.pem in the verifier's trust directory) refuses it.
    statement = CheckpointStatement.parse((export / "checkpoints" / f"{20:012d}.json").read_bytes())
    other = CheckpointSigner(
        employee.certificate_der, employee.chain_der, lambda data: hsm.sign(employee.key_ref, data)
    )
    forged = take_checkpoint(20, statement.head_hash, statement.taken_at, other, stamp)
    _replace_checkpoint(export, 20, signature=forged.signature_der, token=forged.timestamp_der)
    pinned = tmp_path / "trust"
    shutil.copytree(trust, pinned)
    (pinned / "audit.pem").write_bytes(
        x509.load_der_x509_certificate(signer.certificate_der).public_bytes(
            serialization.Encoding.PEM
        )
    )
    assert verify_export(export.parent / "audit", trust).intact  # unpinned: trusted chain
    assert verdict(export, pinned) == (20, "checkpoint_wrong_key")


def test_checkpoint_with_an_altered_head(export: Path, trust: Path) -> None:
    path = export / "checkpoints" / f"{20:012d}.json"
    statement = CheckpointStatement.parse(path.read_bytes())
    altered = CheckpointStatement(20, "ab" * 32, statement.taken_at)
    _replace_checkpoint(export, 20, statement=altered.canonical())
    assert verdict(export, trust) == (20, "checkpoint_altered")


def test_checkpoint_time_stamp_over_other_data(export: Path, trust: Path, stamp) -> None:
    _replace_checkpoint(export, 20, token=stamp(b"\x07" * 32))
    assert verdict(export, trust) == (20, "checkpoint_timestamp_mismatch")


def test_checkpoint_time_stamp_from_another_checkpoint(export: Path, trust: Path) -> None:
    other = (export / "checkpoints" / f"{10:012d}.tst").read_bytes()
    _replace_checkpoint(export, 20, token=other)
    assert verdict(export, trust) == (20, "checkpoint_timestamp_mismatch")


def test_a_changed_file_the_chain_does_not_cover_is_a_manifest_mismatch(
    export: Path, trust: Path
) -> None:
    path = export / "certs" / "chain.pem"
    path.write_bytes(path.read_bytes() + b"\n")
    assert verdict(export, trust) == (None, "manifest_mismatch")


def test_openssl_verifies_the_checkpoint_signature_and_time_stamp(
    pristine: Path, pki, tmp_path: Path
) -> None:
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(
        pki.cas["service-root"].certificate.public_bytes(serialization.Encoding.PEM)
    )
    stem = pristine / "checkpoints" / f"{20:012d}"
    cms = subprocess.run(
        [
            "openssl",
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-in",
            f"{stem}.p7s",
            "-content",
            f"{stem}.json",
            "-CAfile",
            str(root_pem),
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
    )
    assert cms.returncode == 0, cms.stderr
    assert "Verification successful" in cms.stderr
    digest = (
        __import__("hashlib")
        .sha256(signature_value((stem.with_suffix(".p7s")).read_bytes()))
        .hexdigest()
    )
    ts = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            digest,
            "-in",
            f"{stem}.tst",
            "-token_in",
            "-CAfile",
            str(root_pem),
        ],
        capture_output=True,
        text=True,
    )
    assert ts.returncode == 0, ts.stdout + ts.stderr
    assert "Verification: OK" in ts.stdout
    # and refuses the token for another signature
    other = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            "00" * 32,
            "-in",
            f"{stem}.tst",
            "-token_in",
            "-CAfile",
            str(root_pem),
        ],
        capture_output=True,
        text=True,
    )
    assert other.returncode != 0
