"""PAdES signing benchmark: naive pyHanko against dairi, at every baseline level.

Signs the same one-page PDF (``app.dev.sample_documents.bid_pdf``) repeatedly with an
RSA-2048 key in SoftHSM and prints, in one run:

- raw PKCS#11 signatures/s for the key (python-pkcs11, ``CKM_SHA256_RSA_PKCS`` over
  32 bytes): the floor every signing path is compared against;
- per level (B-B, B-T, B-LT, B-LTA), the median ms/signature of naive pyHanko
  (``sign_pdf`` with a ``PKCS11Signer`` and pyHanko's defaults: no
  ``bytes_reserved``, validation info collected by pyHanko for each document),
  of dairi (``signing.PadesSigner``), and the ratio naive/dairi.

Target (the issue): dairi at least 2x faster than naive pyHanko at B-B and B-LT.
Missing it is reported, not an error; the exit status is non-zero only on errors.

Everything runs in a temporary directory (SoftHSM token, dev PKI, OCSP, CRL and
TSA answered in process, no network) removed afterwards. From the project root::

    python bench/pades.py [--json] [--rounds N]

With ``--json`` the last line of output is one JSON object:
``{"raw_sign_per_s": ..., "levels": {"B-B": {"naive_ms": ..., "dairi_ms": ...,
"ratio": ...}, ...}}`` (medians).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `import hsm` etc. work
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

import pkcs11
from asn1crypto import x509 as asn1_x509
from pkcs11 import Mechanism, ObjectClass
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.pkcs11 import PKCS11Signer
from pyhanko_certvalidator import ValidationContext

from app.dev.sample_documents import bid_pdf
from bench._setup import BenchEnv, bench_environment
from devpki import InProcessTimeStamper
from signing import PadesLevel, PadesSigner, PadesSpec

DEFAULT_ROUNDS = 15
RAW_SECONDS = 2.0
RAW_MAX_SIGNATURES = 500
TARGET_LEVELS = (PadesLevel.B_B, PadesLevel.B_LT)
TARGET_RATIO = 2.0


# -- PKCS#11 sessions -------------------------------------------------------


def open_session(lib: pkcs11.lib, env: BenchEnv) -> pkcs11.Session:  # type: ignore[valid-type]
    """A session in user state on the bench token.

    Login state belongs to the process: once dairi's ``Hsm`` has logged in, a
    login with the PIN is refused with UserAlreadyLoggedIn, and a session opened
    without the PIN is already in user state.
    """
    token = lib.get_token(token_label=env.credential.key_ref.token_label)
    try:
        return token.open(user_pin=env.user_pin)
    except pkcs11.UserAlreadyLoggedIn:
        return token.open()


# -- raw PKCS#11 ------------------------------------------------------------


def raw_signatures_per_second(session: pkcs11.Session, env: BenchEnv) -> float:
    """Sign a 32-byte message with CKM_SHA256_RSA_PKCS for ~2 s or 500 signatures."""
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=env.credential.key_ref.cka_id)
    message = bytes(range(32))
    for _ in range(5):  # warm-up
        key.sign(message, mechanism=Mechanism.SHA256_RSA_PKCS)
    count = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < RAW_SECONDS and count < RAW_MAX_SIGNATURES:
        key.sign(message, mechanism=Mechanism.SHA256_RSA_PKCS)
        count += 1
        elapsed = time.perf_counter() - start
    return count / elapsed


# -- the two signing paths --------------------------------------------------


def naive_signer(
    session: pkcs11.Session, env: BenchEnv, level: PadesLevel
) -> Callable[[bytes], bytes]:
    """pyHanko as its documentation shows it, built per request like a handler would.

    The PKCS#11 session is opened once, outside the timing: generous to the
    baseline (a naive service would open a session and log in per request).
    """
    key_id = env.credential.key_ref.cka_id
    chain_der = env.credential.chain_der
    roots_der = env.trust_roots_der

    def sign(pdf: bytes) -> bytes:
        # The intermediate CA is not on the token: without ca_chain pyHanko would
        # leave it out of the CMS, unlike dairi; give it the same certificates.
        signer = PKCS11Signer(
            session,
            key_id=key_id,
            cert_id=key_id,
            ca_chain=[asn1_x509.Certificate.load(c) for c in chain_der],
        )
        meta = {
            "field_name": "Signature1",
            "subfilter": SigSeedSubFilter.PADES,
            "md_algorithm": "sha256",
        }
        if level.long_term:
            meta["embed_validation_info"] = True
            meta["use_pades_lta"] = level is PadesLevel.B_LTA
            # Fresh per signature: pyHanko validates the chain and fetches OCSP/CRLs
            # for every document.
            meta["validation_context"] = ValidationContext(
                trust_roots=[asn1_x509.Certificate.load(r) for r in roots_der],
                allow_fetching=True,
                fetcher_backend=env.fetcher_backend(),
                revocation_mode="require",
            )
        timestamper = InProcessTimeStamper(env.pki.tsa) if level.timestamped else None
        out = signers.sign_pdf(
            IncrementalPdfFileWriter(BytesIO(pdf)),
            signers.PdfSignatureMetadata(**meta),
            signer=signer,
            timestamper=timestamper,
        )
        return out.getvalue()

    return sign


def dairi_signer(pades: PadesSigner, env: BenchEnv, level: PadesLevel) -> Callable[[bytes], bytes]:
    spec = PadesSpec(level=level)
    return lambda pdf: pades.sign(pdf, env.credential, spec).pdf


def check_signed(name: str, level: PadesLevel, pdf: bytes) -> None:
    """Refuse to time a path whose output is not a signed PDF of the level."""
    reader = PdfFileReader(BytesIO(pdf))
    found = len(reader.embedded_signatures)
    wanted = 2 if level is PadesLevel.B_LTA else 1  # B-LTA: signature + document timestamp
    if found != wanted:
        raise RuntimeError(f"{name} at {level}: {found} signatures in the output, not {wanted}")
    if level.long_term and "/DSS" not in reader.root:
        raise RuntimeError(f"{name} at {level}: no DSS in the output")


# -- timing -----------------------------------------------------------------


@dataclass(frozen=True)
class LevelResult:
    level: PadesLevel
    naive_ms: float
    dairi_ms: float

    @property
    def ratio(self) -> float:
        return self.naive_ms / self.dairi_ms


def timed_ms(sign: Callable[[bytes], bytes], pdf: bytes) -> float:
    start = time.perf_counter()
    sign(pdf)
    return (time.perf_counter() - start) * 1000


def bench_level(
    level: PadesLevel,
    pdf: bytes,
    naive: Callable[[bytes], bytes],
    dairi: Callable[[bytes], bytes],
    rounds: int,
) -> LevelResult:
    # Warm-up, not timed: one signature per path, checked. dairi's first call
    # validates the signer's and the TSA's certificates and caches the revocation
    # data within its validity (allowed by the issue); naive pyHanko has no cache.
    check_signed("naive pyHanko", level, naive(pdf))
    check_signed("dairi", level, dairi(pdf))
    naive_times, dairi_times = [], []
    for _ in range(rounds):  # interleaved, so machine noise hits both paths alike
        naive_times.append(timed_ms(naive, pdf))
        dairi_times.append(timed_ms(dairi, pdf))
    return LevelResult(
        level, round(statistics.median(naive_times), 1), round(statistics.median(dairi_times), 1)
    )


# -- output -----------------------------------------------------------------


def target_met(results: list[LevelResult]) -> bool:
    return all(r.ratio >= TARGET_RATIO for r in results if r.level in TARGET_LEVELS)


def print_report(raw_per_s: float, results: list[LevelResult], rounds: int) -> None:
    print(
        f"raw PKCS#11 RSA-2048 (CKM_SHA256_RSA_PKCS): {raw_per_s:.0f} signatures/s "
        f"({1000 / raw_per_s:.2f} ms/signature)"
    )
    print(f"PAdES, median of {rounds} signatures per path and level:")
    print(f"{'level':<7}{'naive ms':>10}{'dairi ms':>10}{'ratio':>8}")
    for r in results:
        print(f"{r.level.value:<7}{r.naive_ms:>10.1f}{r.dairi_ms:>10.1f}{r.ratio:>7.2f}x")
    verdict = "met" if target_met(results) else "NOT met"
    print(f"target (dairi ≥2× naive at B-B and B-LT): {verdict}")


def as_json(raw_per_s: float, results: list[LevelResult]) -> str:
    return json.dumps(
        {
            "raw_sign_per_s": round(raw_per_s, 1),
            "levels": {
                r.level.value: {
                    "naive_ms": r.naive_ms,
                    "dairi_ms": r.dairi_ms,
                    "ratio": round(r.ratio, 2),
                }
                for r in results
            },
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
        help=f"timed signatures per path and level (default {DEFAULT_ROUNDS})",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def run(env: BenchEnv, rounds: int) -> tuple[float, list[LevelResult]]:
    pdf = bid_pdf()
    env.hsm.check()  # dairi's Hsm logs in first, as in the service
    lib = pkcs11.lib(env.module_path)  # kept alive until the sessions are closed
    raw_session = open_session(lib, env)
    naive_session = open_session(lib, env)
    try:
        raw_per_s = raw_signatures_per_second(raw_session, env)
        pades = PadesSigner(
            env.hsm,
            tsa=env.timestamp_authority(),
            validation_data=env.validation_data_source(),
            max_document_bytes=2_000_000,
        )
        results = [
            bench_level(
                level,
                pdf,
                naive_signer(naive_session, env, level),
                dairi_signer(pades, env, level),
                rounds,
            )
            for level in PadesLevel
        ]
    finally:
        raw_session.close()
        naive_session.close()
    return raw_per_s, results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with bench_environment() as env:
        raw_per_s, results = run(env, args.rounds)
    print_report(raw_per_s, results, args.rounds)
    if args.json:
        print(as_json(raw_per_s, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
