"""``dairi demo``: the newcomer's tour on the embedded defaults.

A representative and an employee log in through the HTTP API with virtual
cards (the employee enrols first); a demo employee's key is generated in the
HSM, certified by the development PKI, and signs one Japanese bid at every
baseline level; each output is validated with pyHanko before it is written.
Then the representative grants the employee a mandate (電子委任状), which the
employee sub-delegates to a second employee.
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

from app.context import ServiceContext, load_pem_certificates
from app.credentials.service import CredentialOwner, CredentialService
from app.dev.demo_login import DEMO_EMPLOYEE_NAME, log_in_people
from app.dev.demo_mandates import grant_demo_mandates
from app.dev.sample_documents import bid_pdf
from app.first_run import ensure_environment
from app.settings import Settings
from app.signatures.service import SignatureService
from signing import PadesLevel, PadesSpec

DEMO_EMPLOYEE = "山田 太郎 (demo)"  # + the person id: each run enrols a new card


def run_demo(settings: Settings, out: Path) -> Iterator[str]:
    """Run the tour, yielding one line per step."""
    context = ServiceContext(settings)
    ensure_environment(settings, context)
    out.mkdir(parents=True, exist_ok=True)
    yield f"HSM token {settings.hsm_token_label!r} ready, development PKI in {settings.pki_dir}"
    people = yield from log_in_people(context, out)

    with context.session_factory() as session:
        credentials = CredentialService(session, context.hsm, context.dev_pki)
        # The key belongs to the employee just enrolled (a mandate may only certify
        # its grantee's own credential).
        employee = credentials.issue(
            f"{DEMO_EMPLOYEE} {people.employee_person_id}", settings.default_key_algorithm,
            CredentialOwner(people.employee_person_id, people.corporate_number))
        yield (f"employee credential {employee.name!r} issued to 山田 太郎: key "
               f"{employee.key_ref}, certificate {employee.subject}")

        bid = bid_pdf()
        (out / "bid.pdf").write_bytes(bid)
        roots = load_pem_certificates(settings.trust_dir)
        service = SignatureService(session, context)
        for level in PadesLevel:
            result, record = service.sign_pdf(employee.name, bid,
                                              PadesSpec(level=level, reason="入札"))
            target = out / f"bid-{level.value}.pdf"
            target.write_bytes(result.pdf)
            yield f"{target}  {_check(result.pdf, roots)}  record {record.id}"

        yield from grant_demo_mandates(context, people, employee, DEMO_EMPLOYEE_NAME, out)

    trust = out / "trust"
    trust.mkdir(exist_ok=True)
    for pem_file in sorted(settings.trust_dir.glob("*.pem")):
        shutil.copy(pem_file, trust / pem_file.name)
    yield f"trust anchors for verifiers in {trust}/ (aa.pem: the attribute authority)"
    people.client.application.extensions["dairi"].engine.dispose()
    context.close()


def _check(pdf: bytes, roots: list[bytes]) -> str:
    """pyHanko's verdict on the first signature, offline."""
    signature = PdfFileReader(BytesIO(pdf)).embedded_signatures[0]
    status = validate_pdf_signature(signature, ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(r) for r in roots], allow_fetching=False,
        revocation_mode="soft-fail"))
    stamp = " + timestamp" if status.timestamp_validity is not None else ""
    return ("valid" if status.bottom_line else "INVALID") + stamp
