"""``dairi demo``: the newcomer's tour on the embedded defaults.

The demo is a client of the service over real HTTP, driving it with the client library
(:mod:`app.client`, what ``dairi client …`` runs): with ``--url`` of a running service,
or else of ``dairi serve``'s gunicorn started on a free loopback port for the run
(:mod:`app.dev.demo_server`). The whole story, as DESIGN §6 tells it:

1. the representative (佐藤 一郎) logs in with a virtual 商業登記電子証明書 card;
2. the employee (山田 太郎) enrols and logs in with a virtual My Number Card and obtains
   an HSM signing credential with a proof by the card's signing key;
3. the representative builds the grant instruction (電子委任状), signs it with the
   card and grants it (bid, quote and the e-application 建設業許可申請 at the
   procuring entity, up to 100,000,000 円, may sub-delegate once);
4. the employee signs ``bid-B-B.pdf`` … ``bid-B-LTA.pdf`` (入札者: the demo's
   corporation) UNDER THE MANDATE through signing sessions: upload, card proof over
   ``to_sign`` → SAD → signature; the grant evidence is embedded and a visible stamp
   drawn. Each bid is verified with dairi's verifier against ``DIR/trust`` for the
   purpose it was signed for (TOTAL_PASSED, the mandate covering it) before it is
   written; then a small Japanese e-application, ``application-B-T.xml`` and
   ``application-B-LTA.xml`` (XAdES enveloped, format ``xades``), under the same
   mandate (which grants the procedure 建設業許可申請 too), verified the same way;
5. the employee sub-delegates to a second employee (鈴木 花子) through the service: a
   signing session of format ``cms`` in which the service signs the instruction with the
   employee's HSM credential, then the grant;
6. the second employee signs ``bid-sub-B-LT.pdf`` under the sub-delegated mandate;
7. the ACs and the 電子委任状 PDF go to ``DIR/mandates``; the report on
   ``bid-B-LTA.pdf`` for its purpose to ``DIR/verification.json`` and
   ``DIR/verification.pdf`` (``dairi verify DIR/bid-B-LTA.pdf --trust DIR/trust`` says
   the same, exit 0); the audit trail is exported to ``DIR/audit`` and checked.

Nothing is signed in this process: the operator command ``dairi sign-pdf`` (no card, no
mandate: outside the policy gate) is for operators, not the demo.

Idempotent: a second run logs in with the cards it kept under ``out/cards``,
reuses its people, their credentials and corporation (its own 法人番号
1011001077777) and the mandates still active, so the authority query lists each
person once; only the documents are signed again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

from app.audit_trail.checkpoints import export_audit
from app.client import ApiClient, SoftwareCard
from app.client.api import unb64
from app.client.signing import SigningRequest, Upload, run_session
from app.context import ServiceContext
from app.dev.demo_login import (
    DEMO_CORPORATE_NUMBER,
    DEMO_CORPORATION,
    DEMO_EMPLOYEE_NAME,
    DemoClient,
    DemoFailed,
    DemoPeople,
    as_card,
    as_person,
    call,
    employee_credential,
    log_in_people,
)
from app.dev.demo_mandates import (
    APPLICATION,
    CASE,
    ENTITY,
    grant_root,
    publish_mandates,
    second_employee,
    sub_delegate_to,
)
from app.dev.demo_server import DemoServer
from app.dev.sample_documents import application_xml, bid_pdf
from app.first_run import ensure_environment
from app.settings import Settings
from app.verification.service import (
    purpose_from,
    report_pdf,
    trust_from_directory,
    verify_document,
)
from audit.export import verify_export
from dairi import DairiError
from delegation.scope import BID, Purpose
from signing import Indication, PadesLevel, VerificationTrust
from signing.verification import DEFAULT_MAX_BYTES

DEMO_EMPLOYEE = "山田 太郎 (demo)"  # + the person id: one credential per person
AMOUNT = 12_345_000  # the bid's 入札金額 (yen), within both mandates' limits


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
    assert context.dev_pki is not None  # log_in_people checked development mode
    trust_dir = _publish_trust(settings, out)
    yield f"trust anchors for verifiers in {trust_dir}/ (aa.pem: the attribute authority)"

    # The key belongs to the employee enrolled (a mandate may only certify its grantee's
    # own credential), obtained over HTTP; an earlier run's is used again.
    employee, how = employee_credential(
        client,
        people.employee_token,
        people.corporate_number,
        people.employee_card["signing"],
        f"{DEMO_EMPLOYEE} {people.employee_person_id}",
    )
    yield (
        f"employee credential {employee['name']!r} of 山田 太郎 {how} over HTTP: "
        f"certificate {employee['subject']}"
    )
    root = yield from grant_root(
        people, unb64(employee["certificate"], "a certificate"), DEMO_EMPLOYEE_NAME
    )

    yield _fetch_crls(client, sorted(context.dev_pki.cas), trust_dir)
    trust = trust_from_directory(trust_dir, representative_titles=settings.representative_titles)
    bid = bid_pdf(bidder=DEMO_CORPORATION, procuring_entity=ENTITY, case=CASE, amount_jpy=AMOUNT)
    (out / "bid.pdf").write_bytes(bid)
    with as_person(client, people.employee_token) as yamada:
        for level in PadesLevel:
            yield _sign_under_mandate(
                yamada,
                as_card(people.employee_card["authentication"]),
                _bid_request(people, employee["id"], root["id"], level.value),
                Upload(f"bid-{level.value}.pdf", bid),
                out,
                trust,
            )
        # An e-application (XML) signed as XAdES, enveloped, under the same mandate.
        application = application_xml(
            applicant=DEMO_CORPORATION, corporate_number=people.corporate_number
        )
        (out / "application.xml").write_bytes(application)
        for level in (PadesLevel.B_T, PadesLevel.B_LTA):
            yield _sign_under_mandate(
                yamada,
                as_card(people.employee_card["authentication"]),
                SigningRequest(
                    employee["id"],
                    people.corporate_number,
                    APPLICATION,
                    procuring_entity=ENTITY,
                    level=level.value,
                    mandate_id=root["id"],
                    format="xades",
                ),
                Upload(f"application-{level.value}.xml", application, "application/xml"),
                out,
                trust,
            )

    second = yield from second_employee(people, context.dev_pki, out)
    leaf = yield from sub_delegate_to(people, employee["id"], root, second)
    with as_person(client, second.token) as suzuki:
        yield _sign_under_mandate(
            suzuki,
            as_card(second.card["authentication"]),
            _bid_request(people, second.credential["id"], leaf["id"], "B-LT"),
            Upload("bid-sub-B-LT.pdf", bid),
            out,
            trust,
        )
    yield from publish_mandates(people, root, leaf, second.token, out)
    yield from _verification_report(out, trust)
    yield _export_audit_trail(context, out)


def _publish_trust(settings: Settings, out: Path) -> Path:
    """Copy the anchors (and CRLs) a verifier needs to ``out/trust``: what ``dairi
    verify --trust`` and the audit export's verifier read."""
    trust = out / "trust"
    trust.mkdir(exist_ok=True)
    for kept in sorted([*settings.trust_dir.glob("*.pem"), *settings.trust_dir.glob("*.crl")]):
        shutil.copy(kept, trust / kept.name)
    return trust


def _fetch_crls(client: DemoClient, slugs: list[str], trust_dir: Path) -> str:
    """Fetch, over HTTP, each development CA's current CRL and the attribute authority's
    CRL of mandate ACs into ``trust_dir``: what an offline verifier needs to decide a
    B-B or B-T bid, whose revocation data is not embedded (B-LT and B-LTA carry theirs)."""
    for slug, path in [*((s, f"/pki/crl/{s}.crl") for s in slugs), ("aa-mandates", "/ac/crl")]:
        response = client.open("GET", path)
        if response.status_code != 200:
            raise DemoFailed(f"GET {path}: {response.status_code}")
        (trust_dir / f"{slug}.crl").write_bytes(response.content)
    return f"current CRLs of the CAs and of the attribute authority (/ac/crl) in {trust_dir}/"


def _bid_request(
    people: DemoPeople, credential_id: str, mandate_id: str, level: str
) -> SigningRequest:
    """The demo bid's purpose: a bid for the case, by the corporation, under the mandate."""
    return SigningRequest(
        credential_id,
        people.corporate_number,
        BID,
        procuring_entity=ENTITY,
        case=CASE,
        amount=AMOUNT,
        level=level,
        mandate_id=mandate_id,
        stamp=True,
    )


def _purpose(request: SigningRequest) -> tuple[Purpose, str | None]:
    return purpose_from({k: v for k, v in request.json()["purpose"].items() if v is not None})


def _sign_under_mandate(
    client: ApiClient,
    card: SoftwareCard,
    request: SigningRequest,
    upload: Upload,
    out: Path,
    trust: VerificationTrust,
) -> str:
    """Sign ``upload`` (a bid PDF, or an XML e-application for ``xades``) through a
    signing session (the card's proof buys the SAD), verify it for its purpose with
    dairi's verifier (TOTAL_PASSED, the mandate covering the purpose), and only then
    write it to ``out/<upload's name>``."""
    target = out / upload.name
    signed: bytes | None = None
    try:
        for event, value in run_session(client, card, request, [upload]):
            if event == "session":
                session = value["id"]
            elif event == "fetched":
                signed = value[1]
    except DairiError as exc:
        raise DemoFailed(f"signing {target.name}: {exc.code}: {exc.message}") from exc
    if signed is None:
        raise DemoFailed(f"signing {target.name}: the service returned nothing")
    report = verify_document(signed, trust, _purpose(request), max_bytes=DEFAULT_MAX_BYTES)
    [signature, *_] = report.signatures
    if report.indication is not Indication.TOTAL_PASSED or not (
        signature.mandate and signature.mandate.covers_purpose
    ):
        raise DemoFailed(
            f"{target.name} does not verify: {report.indication.name} "
            f"{signature.sub_indication or ''} {signature.message or ''} {signature.reasons}"
        )
    target.write_bytes(signed)
    level = signature.level.value if signature.level else "?"
    return (
        f"{target}  {request.format.upper()} {level} signed in session {session} under "
        f"mandate {request.mandate_id}: {report.indication.name}, the mandate covers "
        f"{request.action}"
    )


def _verification_report(out: Path, trust: VerificationTrust) -> Iterator[str]:
    """The report on the B-LTA bid for the purpose it was signed for (issue 13), as JSON
    and as the PDF an officer files."""
    bid = out / f"bid-{PadesLevel.B_LTA.value}.pdf"
    asked = purpose_from(
        {
            "principal": DEMO_CORPORATE_NUMBER,
            "action": BID,
            "procuring_entity": ENTITY,
            "case": CASE,
            "amount": AMOUNT,
        }
    )
    report = verify_document(bid.read_bytes(), trust, asked, max_bytes=DEFAULT_MAX_BYTES)
    (out / "verification.json").write_text(
        json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (out / "verification.pdf").write_bytes(report_pdf(report))
    yield (
        f"{out / 'verification.json'} and verification.pdf: {bid.name} {report.indication.name}"
        f" for the bid it was signed for; try `dairi verify {bid} --trust {out / 'trust'}`"
    )


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
