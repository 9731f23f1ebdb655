"""Verification benchmark (issue 13): a B-LTA bid signed under a mandate, verified by
dairi against pyHanko's validator called directly, and over the API, in one run.

A throw-away installation of the service (``bench._setup.service_environment``) is
served by ``dairi serve``'s gunicorn (``app.dev.demo_server.DemoServer``, 2 workers) on
a free loopback port. As ``bench/signing.py`` does (:func:`bench.signing.make_signer`),
a representative and an employee log in with virtual cards, the employee obtains an
RSA-2048 HSM credential and the representative grants it a root mandate to bid; the
employee then signs one bid at B-LTA through the HTTP flow (``dairi client sign``).
The trust is the API's: :func:`app.verification.service.trust_from_directory` on the
installation's trust directory, with the service's attribute authority. Then it prints:

- dairi: :func:`signing.verification.verify_pdf` of the bid for the purpose it was
  signed for (signer, time-stamps, validation data and the mandate: AC chain, its
  status at the signing time, the root grant from the embedded evidence), caches warm
  as a service verifying many bids runs: median ms;
- pyHanko called directly: ``ades_lta_validation`` on the same bid with the same trust
  roots and CRLs, offline (``LOCAL_ONLY``, revocation data required), and an AC
  validation policy trusting the AA (so pyHanko validates the certified attribute
  too): median ms; and the ratio pyHanko/dairi (target: ≥ 2, reported, not enforced);
- 8 concurrent API clients (threads, each its own connection pool), each posting the
  bid to ``POST /api/v1/verifications`` with the purpose: verifications/s and errors
  (any answer that is not a 200 report with TOTAL_PASSED).

Each path is warmed up first (untimed) and its answer checked. Nothing leaves
loopback; the temporary directory is removed afterwards. From the project root::

    python bench/verify.py [--json] [--rounds N]

With ``--json`` the last line is one JSON object:
``{"pyhanko_ms": …, "dairi_ms": …, "concurrent_per_s": …}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `import hsm` etc. work
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass, replace
from io import BytesIO

from asn1crypto import crl, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY
from pyhanko.sign.validation import ades
from pyhanko.sign.validation.policy_decl import (
    LocalKnowledge,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer

from app.client import ApiClient, sign_files
from app.context import ServiceContext
from app.dev.demo_server import DemoServer
from app.settings import Settings
from app.verification.service import trust_from_directory
from bench._setup import service_environment
from bench.signing import AMOUNT, CASE, ENTITY, Signer, documents, make_signer, median, timed_ms
from delegation.scope import Purpose
from signing.verification import Indication, VerificationTrust, verify_pdf

DEFAULT_ROUNDS = 20
CLIENTS = 8
WORKERS = 2  # dairi serve's default
TARGET_RATIO = 2.0


@dataclass(frozen=True)
class Figures:
    pyhanko_ms: float
    pyhanko_indication: str
    dairi_ms: float
    dairi_indication: str
    concurrent_per_s: float
    concurrent_verifications: int
    concurrent_errors: int
    concurrent_seconds: float
    server_tracebacks: int

    @property
    def ratio(self) -> float:
        return self.pyhanko_ms / self.dairi_ms


# -- the bid and its trust ---------------------------------------------------------


def sign_bid(signer: Signer, directory: Path) -> bytes:
    """One bid signed at B-LTA under the employee's mandate, over HTTP."""
    (path,) = documents(directory, 1)
    request = replace(signer.request, level="B-LTA")
    with signer.client() as client:
        for event, value in sign_files(client, signer.card, request, [path], force=True):
            if event == "signed":
                return bytes(value.target.read_bytes())
    raise RuntimeError("the service signed nothing")


def service_trust(settings: Settings, context: ServiceContext) -> VerificationTrust:
    """What the API verifies with (``app.verification.views``)."""
    return trust_from_directory(
        settings.trust_dir,
        aa_certificates=context.aa_certificates[:1],
        representative_titles=settings.representative_titles,
    )


def purpose_of(signer: Signer) -> tuple[Purpose, str]:
    from datetime import UTC, datetime

    purpose = Purpose("bid", ENTITY, CASE, AMOUNT, datetime.now(UTC))
    return purpose, signer.request.principal


# -- the two verifiers ---------------------------------------------------------------


def by_dairi(pdf: bytes, trust: VerificationTrust, purpose: tuple[Purpose, str]) -> str:
    report = verify_pdf(pdf, trust, purpose[0], principal=purpose[1])
    return report.indication.name


def by_pyhanko(pdf: bytes, trust: VerificationTrust) -> str:
    """pyHanko's AdES LTA validation of the bid's signature, with the same trust roots
    and CRLs, offline, and the AA as the anchor of attribute certificates."""
    roots = [x509.Certificate.load(r) for r in trust.roots]
    revinfo = CertRevTrustPolicy(REQUIRE_REVINFO)
    spec = SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(trust_roots=roots), revinfo_policy=revinfo
        ),
        ac_validation_policy=CertValidationPolicySpec(
            trust_manager=SimpleTrustManager.build(
                trust_roots=[x509.Certificate.load(a) for a in trust.aa_certificates]
            ),
            revinfo_policy=revinfo,
        ),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
        ),
        local_knowledge=LocalKnowledge(
            known_crls=[CRLContainer(crl.CertificateList.load(c)) for c in trust.crls]
        ),
    )
    reader = PdfFileReader(BytesIO(pdf))
    embedded = reader.embedded_regular_signatures[0]
    result = asyncio.run(
        ades.ades_lta_validation(embedded, PdfSignatureValidationSpec(spec, DEFAULT_DIFF_POLICY))
    )
    indic = result.ades_subindic
    return f"{type(indic).__name__}.{getattr(indic, 'name', indic)}"


def time_both(
    pdf: bytes, trust: VerificationTrust, purpose: tuple[Purpose, str], rounds: int
) -> tuple[float, str, float, str]:
    """Medians of ``rounds`` alternating runs of each (after one untimed run each)."""
    dairi_said = by_dairi(pdf, trust, purpose)
    pyhanko_said = by_pyhanko(pdf, trust)
    if dairi_said != Indication.TOTAL_PASSED.name:
        raise RuntimeError(f"dairi did not pass the bid it signed: {dairi_said}")
    dairi, pyhanko = [], []
    for _ in range(rounds):
        pyhanko.append(timed_ms(lambda: by_pyhanko(pdf, trust)))
        dairi.append(timed_ms(lambda: by_dairi(pdf, trust, purpose)))
    return median(pyhanko), pyhanko_said, median(dairi), dairi_said


# -- concurrent API clients ------------------------------------------------------------


def concurrent_clients(
    signer: Signer, pdf: bytes, purpose: tuple[Purpose, str], rounds: int
) -> tuple[int, int, float]:
    """``CLIENTS`` threads, each its own connection pool, each posting the bid
    ``rounds`` times after one untimed post: (verifications, errors, seconds)."""
    asked = purpose[0]
    asked_json = json.dumps(
        {
            "principal": purpose[1],
            "action": asked.action,
            "procuring_entity": asked.procuring_entity,
            "case": asked.case,
            "amount": asked.amount_jpy,
        },
        ensure_ascii=False,
    ).encode()
    # Both parts as (name, (file name, content, type)); no file name makes a form field.
    parts = [
        ("document", ("bid.pdf", pdf, "application/pdf")),
        ("purpose", (None, asked_json, "application/json")),
    ]
    start = threading.Barrier(CLIENTS + 1)
    lock = threading.Lock()
    counts = {"verified": 0, "errors": 0}
    failures: list[str] = []

    def post(client: ApiClient) -> str | None:
        try:
            response = client.send("POST", "/api/v1/verifications", files=parts)
        except Exception as exc:  # every failure is counted
            return f"{type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        indication = response.json().get("indication")
        return None if indication == "TOTAL_PASSED" else f"indication {indication}"

    def client_thread() -> None:
        with signer.client() as client:
            post(client)  # warm: both workers load their caches
            start.wait()
            for _ in range(rounds):
                failure = post(client)
                with lock:
                    counts["errors" if failure else "verified"] += 1
                    if failure:
                        failures.append(failure)

    threads = [threading.Thread(target=client_thread) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    for failure in sorted(set(failures))[:5]:
        print(f"  concurrent error: {failure}")
    return counts["verified"], counts["errors"], seconds


# -- the run ---------------------------------------------------------------------------


def run(settings: Settings, context: ServiceContext, rounds: int) -> Figures:
    work = settings.data_dir / "bench"
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"load average at the start: {load} ({os.cpu_count()} CPUs)")
    with DemoServer(settings, workers=WORKERS) as server:
        print(f"served at {server.url} (dairi serve's gunicorn, {WORKERS} workers)")
        signer = make_signer(context, server.url, work / "cards")
        pdf = sign_bid(signer, work / "documents")
        print(f"a B-LTA bid signed under a root mandate over HTTP ({len(pdf)} bytes)")
        trust = service_trust(settings, context)
        purpose = purpose_of(signer)
        pyhanko_ms, pyhanko_said, dairi_ms, dairi_said = time_both(pdf, trust, purpose, rounds)
        verified, errors, seconds = concurrent_clients(signer, pdf, purpose, rounds)
        log = server.log_path.read_text(errors="replace")
    if errors:  # what the served process said about them
        said = [line for line in log.splitlines() if "locked" in line or "OperationalError" in line]
        for line in sorted(set(said))[:3]:
            print(f"  server log: {line[:200]}")
    return Figures(
        pyhanko_ms,
        pyhanko_said,
        dairi_ms,
        dairi_said,
        verified / seconds,
        verified,
        errors,
        seconds,
        log.count("Traceback"),
    )


def print_report(f: Figures, rounds: int) -> None:
    print(f"verification of the B-LTA bid, median of {rounds} (after one untimed run):")
    print(
        f"  pyHanko ades_lta_validation, AC policy  {f.pyhanko_ms:8.1f} ms ({f.pyhanko_indication})"
    )
    print(f"  dairi verify_pdf, mandate and purpose   {f.dairi_ms:8.1f} ms ({f.dairi_indication})")
    verdict = "met" if f.ratio >= TARGET_RATIO else "NOT met"
    print(f"  ratio {f.ratio:.2f}x; target (dairi ≥ {TARGET_RATIO}× faster): {verdict}")
    print(
        f"{CLIENTS} concurrent API clients ({rounds} verifications each, {WORKERS} workers): "
        f"{f.concurrent_per_s:.1f} verifications/s ({f.concurrent_verifications} in "
        f"{f.concurrent_seconds:.1f} s), {f.concurrent_errors} errors"
    )
    if f.server_tracebacks:
        print(f"the served process logged {f.server_tracebacks} tracebacks")


def as_json(f: Figures) -> str:
    return json.dumps(
        {
            "pyhanko_ms": f.pyhanko_ms,
            "dairi_ms": f.dairi_ms,
            "concurrent_per_s": round(f.concurrent_per_s, 1),
        }
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (medians) as the last line"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"timed runs per verifier, and posts per concurrent client (default {DEFAULT_ROUNDS})",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with service_environment(access_token_seconds=86_400) as (settings, context):
        figures = run(settings, context, args.rounds)
    print_report(figures, args.rounds)
    if args.json:
        print(as_json(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
