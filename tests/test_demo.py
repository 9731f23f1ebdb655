"""``dairi demo`` end to end, judged by other means than its own output: the
database and the service's answers after two runs (one person each, one
corporation, no mandate granted twice, every signature made in a signing session
under a mandate), the access logs of the services it drove (its own, then a running
one given by ``--url``), poppler's ``pdfsig`` and ``pdfdetach`` and pyHanko's
validator (with an AC validation context) on the PDFs it wrote, its verification
report, and ``dairi verify``'s exit status on the B-LTA bid, intact and tampered."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from helpers_auth import bearer, login
from live_server import LiveServer
from lxml import etree
from pyhanko.keys import load_certs_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.audit_trail.models import AuditRecord
from app.credentials.models import Credential
from app.mandates.models import Mandate
from app.people.models import Corporation, Employment, Person
from app.signatures.models import SignatureRecord
from delegation.certificates import parse_mandate_certificate
from devpki.cards import load_card

DAIRI = str(Path(sys.executable).with_name("dairi"))
# The demo's corporation: 会社法人等番号 011001077777, check digit 1 worked out by hand
# (9 - (Σ digit × 1,2,1,2… from the right) mod 9); `dairi dev card create` defaults to
# 4011001098993, which the demo must never touch.
DEMO_CORPORATION = "1011001077777"
DEV_CARD_CORPORATION = "4011001098993"
YAMADA, SUZUKI = "山田\u3000太郎", "鈴木\u3000花子"
ENTITY = "国土交通省 関東地方整備局"
CASE = "令和8年度 第42号 庁舎清掃業務委託"
# The grant evidence a bid signed under a mandate carries (issue 11 item 3), per hop.
EVIDENCE = ("ac.der", "instruction.json", "instruction.p7s")


def _demo(out: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [DAIRI, "demo", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _state(database_url: str) -> dict[str, object]:
    """What the demo left in the database, read with the ORM, not through the demo."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            return {
                "corporations": {
                    c.corporate_number: c.name for c in session.scalars(select(Corporation))
                },
                "people": sorted((p.name, p.id) for p in session.scalars(select(Person))),
                "employments": sorted(
                    (e.person_id, e.corporate_number, e.ended_at)
                    for e in session.scalars(select(Employment))
                ),
                "mandates": sorted(
                    (m.depth, m.id, m.parent_id, m.grantee_person_id, m.revoked_at)
                    for m in session.scalars(select(Mandate))
                ),
                "credentials": sorted(
                    (c.name, c.status) for c in session.scalars(select(Credential))
                ),
            }
    finally:
        engine.dispose()


def _signatures(database_url: str) -> list[tuple[str, str, str | None, str | None, str | None]]:
    """Every signature the service recorded: (format, level, session, mandate, person)."""
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            return [
                (r.format, r.level, r.session_id, r.mandate_id, r.person_id)
                for r in session.scalars(select(SignatureRecord))
            ]
    finally:
        engine.dispose()


def _served(log: str, method: str, path: str, status: int) -> int:
    """How many times a service's access log shows ``method path`` (any query) answered
    ``status``."""
    return len(re.findall(f'"{method} {re.escape(path)}(?:\\?[^ ]*)? HTTP/1.1" {status} ', log))


def test_the_demo_runs_twice_over_http_and_keeps_one_of_everything(
    app, client, app_settings, cli_env, tmp_path
):
    out = tmp_path / "demo"
    _demo(out, cli_env)
    # It drove the service it started over HTTP: that process's access log has the calls.
    own = (Path(app_settings.data_dir) / "demo-server.log").read_text()
    assert _served(own, "POST", "/api/v1/enrolments", 201) == 2, own[-3000:]
    assert _served(own, "POST", "/api/v1/mandates", 201) == 2, own[-3000:]
    assert _served(own, "POST", "/api/v1/credentials", 201) == 2, own[-3000:]
    # Four bids, two e-applications, the sub-bid and the sub-delegation instruction
    # (format cms): each a signing session bought by a card proof; nothing outside one.
    assert _served(own, "POST", "/api/v1/signing-sessions", 201) == 8, own[-3000:]
    assert len(re.findall(r'"POST /api/v1/signing-sessions/[^/ ]+/authorization HTTP', own)) == 8
    first = _state(app_settings.database_url)
    assert first["corporations"] == {DEMO_CORPORATION: "株式会社代理建設"}
    assert [name for name, _ in first["people"]] == [YAMADA, SUZUKI]
    people = {name: person_id for name, person_id in first["people"]}
    [
        (root_depth, root, no_parent, root_grantee, root_revoked),
        (leaf_depth, leaf, parent, leaf_grantee, leaf_revoked),
    ] = first["mandates"]
    assert (root_depth, leaf_depth) == (0, 1)
    assert (no_parent, parent, root_revoked, leaf_revoked) == (None, root, None, None)
    assert (root_grantee, leaf_grantee) == (people[YAMADA], people[SUZUKI])
    assert len(first["credentials"]) == 2
    signatures = _signatures(app_settings.database_url)
    assert sorted((f, level, m, p) for f, level, _, m, p in signatures) == sorted(
        [("pades", level, root, people[YAMADA]) for level in ("B-B", "B-T", "B-LT", "B-LTA")]
        + [("xades", level, root, people[YAMADA]) for level in ("B-T", "B-LTA")]
        + [("cms", "B-B", root, people[YAMADA]), ("pades", "B-LT", leaf, people[SUZUKI])]
    )
    assert all(session is not None for _, _, session, _, _ in signatures)
    _judge_outputs(out)
    _judge_audit_export(out, app_settings.database_url)

    # Again, against a running service given by --url, with one employee's card lost:
    # the same people (re-bound, not enrolled again), corporation and mandates.
    shutil.rmtree(out / "cards" / "second-employee")
    with LiveServer(app_settings, workers=1, startup_seconds=180) as server:
        _demo(out, cli_env, "--url", server.url)
        served = server.log()
    assert _served(served, "POST", "/api/v1/enrolments", 201) == 1, served[-3000:]
    assert _served(served, "GET", "/api/v1/authority", 200) == 1, served[-3000:]
    assert '"POST /api/v1/mandates ' not in served, "no mandate is granted again"
    assert '"POST /api/v1/credentials ' not in served, "no credential is issued again"
    assert _served(served, "POST", "/api/v1/signing-sessions", 201) == 7, served[-3000:]
    assert _state(app_settings.database_url) == first
    _judge_audit_export(out, app_settings.database_url)  # before this test logs in itself
    assert DEV_CARD_CORPORATION not in first["corporations"]

    # The service, asked over HTTP with the representative's card the demo kept.
    token = login(client, load_card(out / "cards" / "representative").role())
    employees = client.get(
        f"/api/v1/corporations/{DEMO_CORPORATION}/employees", headers=bearer(token)
    ).get_json()
    assert sorted(e["name"] for e in employees["items"]) == [YAMADA, SUZUKI]
    who = client.get(
        "/api/v1/authority",
        headers=bearer(token),
        query_string={
            "principal": DEMO_CORPORATION,
            "action": "bid",
            "procuring_entity": "国土交通省 関東地方整備局",
            "case": CASE,
        },
    )
    assert who.status_code == 200, who.get_json()
    assert sorted(
        (a["grantee"]["name"], len(a["chain"])) for a in who.get_json()["authorities"]
    ) == [(YAMADA, 1), (SUZUKI, 2)]
    _judge_outputs(out)
    assert sorted(p.name for p in (out / "mandates").glob("*.der")) == [
        f"0-{root}.der",
        f"1-{leaf}.der",
    ]


def _judge_outputs(out: Path) -> None:
    assert load_card(out / "cards" / "employee").kind == "my-number"
    assert load_card(out / "cards" / "representative").kind == "representative"
    # The bids are judged by tools other than the demo: poppler's pdfsig checks each
    # signature's integrity and signer, pdfdetach lists the grant evidence the signature
    # covers, pyHanko's validator its trust (the demo's published anchors, nothing
    # fetched), timestamp and PAdES level, and the mandate AC (an AC validation context
    # with the attribute authority).
    trust = sorted(str(p) for p in (out / "trust").glob("*.pem"))
    roots = list(load_certs_from_pemder(trust))
    [aa] = load_certs_from_pemder([str(out / "trust" / "aa.pem")])
    for name, signer, hops, timestamped, dss, document_timestamps in (
        ("bid-B-B", YAMADA, 1, False, False, 0),
        ("bid-B-T", YAMADA, 1, True, False, 0),
        ("bid-B-LT", YAMADA, 1, True, True, 0),
        ("bid-B-LTA", YAMADA, 1, True, True, 1),
        ("bid-sub-B-LT", SUZUKI, 2, True, True, 0),
    ):
        path = out / f"{name}.pdf"
        shown = subprocess.run(
            ["pdfsig", str(path)], capture_output=True, text=True, timeout=60
        ).stdout
        first = shown.split("Signature #2:")[0]
        assert "Signature Validation: Signature is Valid." in first, shown
        assert f"Signer Certificate Common Name: {signer}" in first, shown
        assert ("Signature #2:" in shown) == bool(document_timestamps), shown
        listed = subprocess.run(
            ["pdfdetach", "-list", str(path)], capture_output=True, text=True, timeout=60
        ).stdout.splitlines()
        assert listed[0] == f"{3 * hops} embedded files", listed
        assert sorted(re.sub(r"^\d+: ", "", line) for line in listed[1:]) == [
            f"mandate-{depth}-{what}" for depth in range(hops) for what in EVIDENCE
        ]
        with path.open("rb") as f:
            reader = PdfFileReader(f)
            [signature] = reader.embedded_regular_signatures
            status = asyncio.run(
                async_validate_pdf_signature(
                    signature,
                    signer_validation_context=ValidationContext(
                        trust_roots=roots, allow_fetching=False
                    ),
                    ac_validation_context=ValidationContext(
                        trust_roots=roots, other_certs=[aa], allow_fetching=False
                    ),
                )
            )
            assert status.intact and status.valid and status.trusted, status.pretty_print_details()
            assert not status.ac_validation_errs, status.pretty_print_details()
            assert status.ac_attrs is not None and len(status.ac_attrs) > 0, name
            assert (
                status.timestamp_validity is not None and status.timestamp_validity.valid
            ) == timestamped, name
            assert ("/DSS" in reader.root) == dss, name
            assert len(reader.embedded_timestamp_signatures) == document_timestamps, name
    _judge_verification(out)
    _judge_applications(out)
    # The 電子委任状 is signed by the attribute authority, whole document.
    [document] = (out / "mandates").glob("*.pdf")
    shown = subprocess.run(
        ["pdfsig", str(document)], capture_output=True, text=True, timeout=60
    ).stdout
    assert "Signature Validation: Signature is Valid." in shown, shown
    assert "Total document signed" in shown, shown
    assert "Attribute Authority" in shown, shown
    # The mandates: a representative's grant and its sub-delegation, with the AA certificate.
    acs = sorted((out / "mandates").glob("*.der"))
    assert [p.name[0] for p in acs] == ["0", "1"]
    leaf = parse_mandate_certificate(acs[1].read_bytes())
    [embedded] = leaf.ancestors  # the root, embedded bare (issue 10 item 12)
    assert (
        parse_mandate_certificate(embedded, embedded_depth=0).serial_number
        == parse_mandate_certificate(acs[0].read_bytes()).serial_number
    )
    assert leaf.terms.grantee.name == "鈴木\u3000花子"
    assert (out / "trust" / "aa.pem").is_file()


XMLNS = {
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xades": "http://uri.etsi.org/01903/v1.3.2#",
    "xades141": "http://uri.etsi.org/01903/v1.4.1#",
}


def _judge_applications(out: Path) -> None:
    """The e-application signed as XAdES under the mandate: xmlsec1 checks each
    signature (--insecure: it cannot load the chain from the document), the XML carries
    the mandate AC as the certified role and a signature time-stamp (B-LTA: an archive
    time-stamp too), and ``dairi verify`` passes it with the demo's trust directory."""
    [ac] = [p for p in (out / "mandates").glob("0-*.der")]
    for level, archived in (("B-T", False), ("B-LTA", True)):
        path = out / f"application-{level}.xml"
        checked = subprocess.run(
            [
                "xmlsec1",
                "--verify",
                "--insecure",
                "--id-attr:Id",
                "http://uri.etsi.org/01903/v1.3.2#:SignedProperties",
                "--id-attr:Id",
                "http://www.w3.org/2000/09/xmldsig#:KeyInfo",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0 and "OK" in checked.stdout + checked.stderr, checked.stderr
        root = etree.fromstring(path.read_bytes())
        assert root.find(".//{urn:example:e-application}商号").text == "株式会社代理建設"
        [signature] = root.findall("ds:Signature", XMLNS)
        roles = signature.findall(
            ".//xades:CertifiedRolesV2//xades:X509AttributeCertificate", XMLNS
        )
        assert [base64.b64decode(r.text) for r in roles] == [ac.read_bytes()]
        assert signature.find(".//xades:SignatureTimeStamp", XMLNS) is not None
        archive = signature.find(".//xades141:ArchiveTimeStamp", XMLNS)
        assert (archive is not None) == archived, level
        verified = subprocess.run(
            [DAIRI, "verify", "--trust", str(out / "trust"), str(path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr


def _judge_verification(out: Path) -> None:
    """The demo's report on the B-LTA bid for the purpose it was signed for, and ``dairi
    verify`` on it with the demo's trust directory: exit 0, then 1 once one byte inside
    the signed range is changed."""
    report = json.loads((out / "verification.json").read_text(encoding="utf-8"))
    assert report["indication"] == "TOTAL_PASSED", report
    assert report["purpose"] == {
        "principal": DEMO_CORPORATION,
        "action": "bid",
        "procuring_entity": ENTITY,
        "case": CASE,
        "amount": 12_345_000,
    }
    [signature] = [s for s in report["signatures"] if s["mandate"] is not None]
    assert signature["level"] == "B-LTA" and signature["indication"] == "TOTAL_PASSED"
    mandate = signature["mandate"]
    assert mandate["present"] and mandate["holds"] and mandate["covers_purpose"], mandate
    assert [hop["grantee"] for hop in mandate["hops"]] == [YAMADA]
    assert mandate["root_grant"]["checked"] and mandate["root_grant"]["corporate_number"] == (
        DEMO_CORPORATION
    )
    assert (out / "verification.pdf").read_bytes().startswith(b"%PDF-")

    bid = out / "bid-B-LTA.pdf"
    verify = [DAIRI, "verify", "--trust", str(out / "trust")]
    passed = subprocess.run([*verify, str(bid)], capture_output=True, text=True, timeout=300)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # One byte of the first signed stream's data (inside /ByteRange's first part).
    data = bytearray(bid.read_bytes())
    byte_range = [int(n) for n in re.search(rb"/ByteRange\s*\[([\d\s]+)\]", data)[1].split()]
    at = data.index(b"stream", data.index(b"/Length")) + 20
    assert byte_range[0] <= at < byte_range[0] + byte_range[1]
    data[at] ^= 0x01
    tampered = out.parent / "bid-B-LTA-tampered.pdf"
    tampered.write_bytes(bytes(data))
    failed = subprocess.run([*verify, str(tampered)], capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    tampered.unlink()


def _judge_audit_export(out: Path, database_url: str) -> None:
    """The demo ends with an export of the audit trail of its run (issue 14 item 5):
    the offline verifier (``python -m audit``, no database, no service) accepts it with
    the demo's published anchors, it reaches the head of the log as the database holds
    it now, and the same verifier refuses it once one event is edited."""
    exported = out / "audit"
    verdict = subprocess.run(
        [sys.executable, "-m", "audit", "verify", str(exported), "--trust", str(out / "trust")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            head = session.scalar(select(func.max(AuditRecord.sequence)))
    finally:
        engine.dispose()
    lines = (exported / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == head and f'"sequence":{head},' in lines[-1], (len(lines), head)

    tampered = out.parent / "audit-tampered"
    shutil.copytree(exported, tampered)
    events = tampered / "events.jsonl"
    text = events.read_text(encoding="utf-8")
    events.write_text(text.replace("mandate:granted", "mandate:grantex", 1), encoding="utf-8")
    refused = subprocess.run(
        [sys.executable, "-m", "audit", "verify", str(tampered)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 1, refused.stdout + refused.stderr
    shutil.rmtree(tampered)
