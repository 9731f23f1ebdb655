"""``dairi demo``: the newcomer's tour on the embedded defaults.

The demo is a client of the service over real HTTP: with ``--url`` of a running
service, or else of ``dairi serve``'s gunicorn started on a free loopback port for
the run (:mod:`app.dev.demo_server`). A representative and an employee log in with
virtual cards (the employee enrols first) and each employee obtains an HSM
credential with a proof by the card's signing key; the representative grants the
employee a mandate (電子委任状), which the employee sub-delegates to a second
employee.

What has no HTTP API yet runs in this process on the same settings (so the same
database and HSM token as the service): the employee signs one Japanese bid at
every baseline level, each validated with pyHanko before it is written, and signs
the sub-delegation's instruction with the HSM key. The bids carry no mandate: the
signing path (``SignatureService.sign_pdf``) takes none yet.

Idempotent: a second run logs in with the cards it kept under ``out/cards``,
reuses its people, their credentials and corporation (its own 法人番号
1011001077777) and the mandates still active, so the authority query lists each
person once.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from app.audit_trail.checkpoints import export_audit
from app.context import ServiceContext, load_pem_certificates
from app.credentials.service import CredentialService
from app.dev.demo_login import (
    DEMO_EMPLOYEE_NAME,
    DemoClient,
    DemoFailed,
    call,
    employee_credential,
    log_in_people,
)
from app.dev.demo_mandates import grant_demo_mandates
from app.dev.demo_server import DemoServer
from app.dev.sample_documents import bid_pdf
from app.first_run import ensure_environment
from app.settings import Settings
from app.signatures.service import SignatureService
from audit.export import verify_export
from signing import PadesLevel, PadesSpec

DEMO_EMPLOYEE = "山田 太郎 (demo)"  # + the person id: one credential per person


def run_demo(settings: Settings, out: Path, url: str | None = None) -> Iterator[str]:
    """Run the tour against the service at ``url`` (None: one started for the run on a
    free loopback port), yielding one line per step."""
    context = ServiceContext(settings)
    try:
        ensure_environment(settings, context)
        out.mkdir(parents=True, exist_ok=True)
        yield (
            f"HSM token {settings.hsm_token_label!r} ready, development PKI in {settings.pki_dir}"
        )
        if url is not None:
            yield from _tour(context, DemoClient(url), out)
            return
        with DemoServer(settings) as server:
            yield f"service started for the demo at {server.url} (dairi serve's gunicorn)"
            yield from _tour(context, DemoClient(server.url), out)
        yield "service stopped"
    finally:
        context.close()


def _tour(context: ServiceContext, client: DemoClient, out: Path) -> Iterator[str]:
    settings = context.settings
    health = call(client, "GET", "/readyz", 200)
    if health.get("status") != "ready":
        raise DemoFailed(f"the service at {client.url} is not ready: {health}")
    try:
        yield from _people_and_documents(context, settings, client, out)
    finally:
        client.close()


def _people_and_documents(
    context: ServiceContext, settings: Settings, client: DemoClient, out: Path
) -> Iterator[str]:
    people = yield from log_in_people(context, client, out)

    with context.session_factory() as session:
        credentials = CredentialService(session, context.hsm, context.dev_pki)
        # The key belongs to the employee enrolled (a mandate may only certify its
        # grantee's own credential), obtained over HTTP; an earlier run's is used again.
        obtained, how = employee_credential(
            client,
            people.employee_token,
            people.corporate_number,
            people.employee_signing,
            f"{DEMO_EMPLOYEE} {people.employee_person_id}",
        )
        employee = credentials.get(obtained["id"])
        yield (
            f"employee credential {employee.name!r} of 山田 太郎 {how} over HTTP: key "
            f"{employee.key_ref}, certificate {employee.subject}"
        )

        bid = bid_pdf()
        (out / "bid.pdf").write_bytes(bid)
        roots = load_pem_certificates(settings.trust_dir)
        service = SignatureService(session, context)
        for level in PadesLevel:
            result, record = service.sign_pdf(
                employee.name, bid, PadesSpec(level=level, reason="入札")
            )
            # The demo runs the service here, so it ends the unit of work (services
            # flush); an open write would hold the SQLite lock the server needs.
            session.commit()
            target = out / f"bid-{level.value}.pdf"
            target.write_bytes(result.pdf)
            yield f"{target}  {_check(result.pdf, roots)}  record {record.id}"

        yield from grant_demo_mandates(context, people, employee, DEMO_EMPLOYEE_NAME, out)

    trust = out / "trust"
    trust.mkdir(exist_ok=True)
    for pem_file in sorted(settings.trust_dir.glob("*.pem")):
        shutil.copy(pem_file, trust / pem_file.name)
    yield f"trust anchors for verifiers in {trust}/ (aa.pem: the attribute authority)"
    yield _export_audit_trail(context, out)


def _export_audit_trail(context: ServiceContext, out: Path) -> str:
    """Export the audit trail, checkpointed at its head, to ``out/audit`` (replacing an
    earlier run's) and check it as an outsider would: offline, with the demo's anchors."""
    target, staging = out / "audit", out / "audit.new"
    shutil.rmtree(staging, ignore_errors=True)
    summary = export_audit(context, staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    report = verify_export(target, out / "trust")
    if not report.intact:
        raise DemoFailed(f"the exported audit trail does not verify: {report}")
    return (
        f"{target}/  audit events {summary.first_sequence}-{summary.last_sequence} and"
        f" {summary.checkpoints} signed checkpoints; `dairi audit verify {target}"
        f" --trust {out / 'trust'}` says intact"
    )


def _check(pdf: bytes, roots: list[bytes]) -> str:
    """pyHanko's verdict on the first signature, offline."""
    signature = PdfFileReader(BytesIO(pdf)).embedded_signatures[0]
    status = validate_pdf_signature(
        signature,
        ValidationContext(
            trust_roots=[asn1_x509.Certificate.load(r) for r in roots],
            allow_fetching=False,
            revocation_mode="soft-fail",
        ),
    )
    stamp = " + timestamp" if status.timestamp_validity is not None else ""
    return ("valid" if status.bottom_line else "INVALID") + stamp
