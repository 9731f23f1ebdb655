"""Signing-session benchmark (issue 11): the signing API's figures, in one run.

A throw-away installation of the service (``bench._setup.service_environment``:
SQLite, SoftHSM, the development PKI answering OCSP, CRLs and the TSA in process) is
served by ``dairi serve``'s gunicorn (``app.dev.demo_server.DemoServer``, the served
default of 2 workers) on a free loopback port. Over HTTP, as the demo does, a
representative and an employee log in with virtual cards, the employee obtains an
RSA-2048 HSM credential and the representative grants a root mandate (bid) to it.
Then it prints:

- raw PKCS#11 signatures/s for the credential's key (python-pkcs11,
  ``CKM_SHA256_RSA_PKCS`` over 32 bytes, as ``bench/pades.py``): the floor;
- a PAdES B-T bid signed through the whole HTTP flow with :func:`app.client.sign_files`
  (``dairi client sign``: open the session with the upload, check ``to_sign``, the
  card's proof → SAD, signatures answering the signed PDF itself) against the same
  steps called in this process through the service layer
  (``SigningSessionService.open`` / ``authorize``, ``sign_session`` handing the
  document out, each its own unit of work as a request is). Target: HTTP ≤ 1.3×
  in-process; missing it is reported, not an error. For information, the same
  requests handed to the Flask app in this process (its test client: no sockets, no
  gunicorn), and each step's medians (open; authorize, the card signing within it;
  sign) on the three paths: the request layer's share of the gap against transport's;
  and the CPU time of a bid, which other processes' load sways far less than the
  times: the client's (this process) plus the served processes' (/proc, Linux) over
  HTTP, against this process's in process;
- the per-document time (over HTTP) of one session of 20 documents against 20
  sessions of one document each;
- 8 concurrent clients (threads, each its own connection pool and sessions, the same
  employee) signing one document per session against the served app: signatures/s
  and the number of errors (any answer that is not a signed PDF);
- the CSC API's ``signatures/signHash`` over HTTP in batches of 1 and of 20 (issue 12):
  each round is ``credentials/authorize`` without ``authData`` (→ ``dairi_to_sign``),
  the card signs it, ``credentials/authorize`` again with the card proof (→ SAD), then
  ``signatures/signHash`` over the round's fresh SHA-256 hashes, all on one keep-alive
  HTTP/1.1 connection (``http.client``: a CSC client's JSON calls without ``requests``'
  own ~1 ms a call, which is timed beside them for information through ``ApiClient``).
  The rate is n × rounds ÷ the time spent in signHash (and, for information, ÷ the whole
  rounds' time). Its baseline is the raw PKCS#11 rate of the same key measured in bursts
  of 20 between the rounds (the same way as the first raw figure, under the same load as
  the rounds beside it). Target: batches of 20 ≥ 70% of that raw rate; missing it is
  reported, not an error. Each warm-up signature is checked against the credential's
  certificate;
- an XAdES B-T e-application (a small XML document) through the whole HTTP flow of a
  signing session, when the signing sessions take ``"format": "xades"``; otherwise
  ``null``, and the run says why.

Medians over ``--rounds`` (default 10) rounds; each path is warmed up first, untimed,
and its output checked (one signature in a PDF). Nothing leaves loopback; the
temporary directory is removed afterwards. From the project root::

    python bench/signing.py [--json] [--rounds N]

With ``--json`` the last line of output is one JSON object:
``{"raw_sign_per_s": …, "pades_bt_http_ms": …, "pades_bt_inprocess_ms": …,
"batch20_per_doc_ms": …, "single_per_doc_ms": …,
"concurrent": {"clients": 8, "signatures_per_s": …, "errors": …},
"pades_bt_cpu_ms": {"client": …, "served": …, "inprocess": …} or null,
"signhash_per_s": {"1": …, "20": …}, "signhash_raw_per_s": …,
"xades_bt_http_ms": … or null}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `import hsm` etc. work
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import base64
import dataclasses
import hashlib
import http.client
import itertools
import json
import os
import statistics
import threading
import time
import urllib.parse
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from flask import Flask
from urllib3 import encode_multipart_formdata
from werkzeug.test import TestResponse

from app.client import (
    ApiClient,
    Card,
    GrantTerms,
    SigningRequest,
    build_instruction,
    directory_card,
    proof,
    sign_files,
)
from app.client.api import bearer
from app.context import ServiceContext
from app.credentials.service import CredentialService
from app.dev.demo_login import DEMO_EMPLOYEE_NAME, DemoClient, employee_credential, log_in_people
from app.dev.demo_server import DemoServer
from app.dev.sample_documents import bid_pdf
from app.factory import create_app
from app.people.sign_in import CardProof
from app.settings import Settings
from app.signing_sessions.activation import SigningPurpose
from app.signing_sessions.service import SESSION_FORMATS, SigningSessionService, Upload
from app.signing_sessions.signing import sign_session
from app.unit_of_work import unit_of_work
from bench._setup import DER, BenchEnv, service_environment
from bench.pades import check_signed, open_session, raw_signatures_per_second
from hsm import KeyAlgorithm
from signing import PadesLevel, SigningCredential

DEFAULT_ROUNDS = 10
CLIENTS = 8
WORKERS = 2  # dairi serve's default
BATCH = 20  # max_documents_per_session's default
TARGET_RATIO = 1.3
LEVEL = PadesLevel.B_T
ENTITY = "国土交通省 関東地方整備局"
CASE = "令和8年度 第42号 庁舎清掃業務委託"
AMOUNT = 12_345_000
SIGNHASH_BATCHES = (1, BATCH)
SIGNHASH_TARGET = 0.7  # batches of 20 against the raw PKCS#11 rate
SIGNHASH_ROUNDS_PER_ROUND = 4  # signHash rounds per --rounds: a round is a few ms
REQUESTS_KIND = "requests"  # batches of BATCH through ApiClient, for information
RSA_SHA256_OID = "1.2.840.113549.1.1.11"  # sha256WithRSAEncryption
SHA256_OID = "2.16.840.1.101.3.4.2.1"
XADES = "xades"
APPLICATION_XML = """<?xml version="1.0" encoding="UTF-8"?>
<申請書 xmlns="urn:example:dairi:e-application">
  <手続>競争参加資格審査申請</手続>
  <申請先>{entity}</申請先>
  <件名>{case}</件名>
  <申請者>株式会社ベンチ建設</申請者>
  <金額>{amount}</金額>
</申請書>
"""

T = TypeVar("T")


# -- set-up: people, credential and mandate over HTTP ---------------------------


@dataclass(frozen=True)
class Signer:
    """The employee as both paths need them: over HTTP (token, card) and in process."""

    url: str
    token: str
    person_id: str
    card: Card  # the JPKI authentication key, which signs to_sign
    credential: SigningCredential
    request: SigningRequest

    def client(self) -> ApiClient:
        return ApiClient(self.url, self.token)


def _finish(steps: Generator[str, None, T]) -> T:
    """Run one of the demo's step generators to its end; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def make_signer(context: ServiceContext, url: str, out: Path) -> Signer:
    """A representative and an employee log in (the demo's logins, virtual cards kept
    under ``out/cards``), the employee obtains an HSM credential with its card's signing key
    and the representative grants it a root mandate to bid for ENTITY: all over HTTP."""
    demo = DemoClient(url)
    try:
        people = _finish(log_in_people(context, demo, out))
        issued, _ = employee_credential(
            demo,
            people.employee_token,
            people.corporate_number,
            people.employee_card["signing"],
            "bench credential",
        )
    finally:
        demo.close()
    with context.session_factory() as session:
        service = CredentialService(session, context.hsm, context.dev_pki)
        credential = service.signing_credential(service.get(issued["id"]))
    if credential.algorithm is not KeyAlgorithm.RSA_2048:
        raise RuntimeError(f"the credential's key is {credential.algorithm}, not RSA-2048")
    representative_der = people.representative.certificate.public_bytes(DER)
    instruction = build_instruction(
        representative_der,
        credential.certificate_der,
        GrantTerms(actions=("bid",), procuring_entities=(ENTITY,), amount_limit_jpy=100_000_000),
        grantee_name=DEMO_EMPLOYEE_NAME,
    )
    with ApiClient(url, people.representative_token) as representative:
        representative.grant(
            instruction.canonical(),
            people.representative.sign_cms(instruction.canonical()),
            credential.certificate_der,
            people.employee_person_id,
        )
    request = SigningRequest(
        credential_id=str(issued["id"]),
        principal=people.corporate_number,
        action="bid",
        procuring_entity=ENTITY,
        case=CASE,
        amount=AMOUNT,
        level=LEVEL.value,
    )
    return Signer(
        url,
        people.employee_token,
        people.employee_person_id,
        directory_card(out / "cards" / "employee"),
        credential,
        request,
    )


# -- the three paths ---------------------------------------------------------


STEPS = ("open", "authorize", "sign")
Steps = dict[str, list[float]]  # ms per step of the flow, one entry per run


def over_http(
    client: ApiClient, signer: Signer, files: Sequence[Path], steps: Steps | None = None
) -> list[Path]:
    """``dairi client sign``'s flow: the signed copies written beside the inputs. With
    ``steps``, the ms of each step are added to it (the card signs within authorize)."""
    signed = []
    mark = time.perf_counter()
    for event, value in sign_files(client, signer.card, signer.request, files, force=True):
        if event == "signed":
            signed.append(value.target)
        if steps is not None and event in ("session", "authorized"):
            now = time.perf_counter()
            steps[STEPS[0] if event == "session" else STEPS[1]].append((now - mark) * 1000)
            mark = now
    if steps is not None:
        steps[STEPS[2]].append((time.perf_counter() - mark) * 1000)
    if len(signed) != len(files):
        raise RuntimeError(f"{len(signed)} signed documents for {len(files)} sent")
    return signed


def in_process(
    context: ServiceContext, signer: Signer, pdf: bytes, steps: Steps | None = None
) -> bytes:
    """The same steps through the service layer, each in its own unit of work (as each
    request is), the card signing ``to_sign`` in between (timed within authorize)."""
    marks = [time.perf_counter()]
    request = signer.request
    purpose = SigningPurpose(
        request.principal, request.action, request.procuring_entity, request.case, request.amount
    )

    def service(session: Any) -> SigningSessionService:
        return SigningSessionService(
            session, context, person_id=signer.person_id, actor=f"person:{signer.person_id}"
        )

    with unit_of_work(context.session_factory) as session:
        opened = service(session).open(
            credential_id=request.credential_id,
            purpose=purpose,
            format="pades",
            level=LEVEL,
            uploads=[Upload("bid.pdf", pdf)],
        )
        session_id, to_sign = opened.row.id, opened.challenge.to_sign()
    marks.append(time.perf_counter())
    card_proof = CardProof(signer.card.certificate_der, signer.card.sign(to_sign))
    with unit_of_work(context.session_factory) as session:
        _, sad = service(session).authorize(session_id, card_proof)
    marks.append(time.perf_counter())
    with unit_of_work(context.session_factory) as session:
        # As the HTTP flow asks (Accept: application/pdf): the one signed document
        # handed out with the signatures, recorded as fetched, never stored.
        (signed,) = sign_session(service(session), session_id, sad, hand_out="pades")
    marks.append(time.perf_counter())
    if steps is not None:
        for step, (begun, ended) in zip(STEPS, itertools.pairwise(marks), strict=True):
            steps[step].append((ended - begun) * 1000)
    assert signed.content is not None
    return signed.content


WSGI_BOUNDARY = os.urandom(16).hex()


def through_wsgi(app: Flask, signer: Signer, pdf: bytes, steps: Steps | None = None) -> bytes:
    """The HTTP flow's requests handed to the Flask app in this process (its test
    client: no sockets, no gunicorn), to tell the request layer's cost from transport's."""
    client = app.test_client()
    headers = bearer(signer.token)
    marks = [time.perf_counter()]
    # Encoded as dairi's client encodes it, with one boundary for the whole run (the
    # service compiles a pattern per boundary it meets and keeps the last few).
    body, content_type = encode_multipart_formdata(
        [
            ("request", (None, json.dumps(signer.request.json()), "application/json")),
            ("document", ("bid.pdf", pdf, "application/pdf")),
        ],
        WSGI_BOUNDARY,
    )
    opened = client.post(
        "/api/v1/signing-sessions", headers=headers, data=body, content_type=content_type
    )
    session = _answer(opened, 201)
    to_sign = base64.b64decode(session["to_sign"])
    marks.append(time.perf_counter())
    base = f"/api/v1/signing-sessions/{session['id']}"
    sad = _answer(
        client.post(f"{base}/authorization", headers=headers, json=proof(signer.card, to_sign)), 200
    )["sad"]
    marks.append(time.perf_counter())
    signed = client.post(
        f"{base}/signatures", headers={**headers, "Accept": "application/pdf"}, json={"sad": sad}
    )
    _answer(signed, 200)
    marks.append(time.perf_counter())
    if steps is not None:
        for step, (begun, ended) in zip(STEPS, itertools.pairwise(marks), strict=True):
            steps[step].append((ended - begun) * 1000)
    return signed.get_data()


def _answer(response: TestResponse, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.path}: {response.status_code} {response.text}")
    return response.get_json() if response.is_json else None


# -- timing ---------------------------------------------------------------------


def timed_ms(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 1)


@dataclass(frozen=True)
class Figures:
    raw_sign_per_s: float
    comparison: Comparison
    batch20_per_doc_ms: float
    single_per_doc_ms: float
    concurrent_per_s: float
    concurrent_signatures: int
    concurrent_errors: int
    concurrent_seconds: float
    server_tracebacks: int
    signhash: dict[int, SignHashRate]
    xades_bt_http_ms: float | None
    xades_note: str
    signhash_requests: SignHashRate  # batches of BATCH through ApiClient (information)
    signhash_raw_per_s: float  # raw bursts between the signHash rounds: their baseline
    signhash_raw_burst_ms: float  # median burst of BATCH raw signatures

    @property
    def signhash_ratio(self) -> float:
        """Batches of ``BATCH`` against the raw rate measured between their rounds."""
        return self.signhash[BATCH].per_s / self.signhash_raw_per_s

    @property
    def signhash_target_met(self) -> bool:
        return self.signhash_ratio >= SIGNHASH_TARGET

    @property
    def http_ms(self) -> float:
        return self.comparison.http_ms

    @property
    def inprocess_ms(self) -> float:
        return self.comparison.inprocess_ms

    @property
    def ratio(self) -> float:
        return self.http_ms / self.inprocess_ms

    @property
    def target_met(self) -> bool:
        return self.ratio <= TARGET_RATIO


def documents(directory: Path, count: int) -> list[Path]:
    """``count`` different one-page bids (one case number each) written to ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = directory / f"bid-{n:02d}.pdf"
        path.write_bytes(bid_pdf(case=f"令和8年度 第{100 + n}号 庁舎清掃業務委託"))
        paths.append(path)
    return paths


def check_pdf(name: str, pdf: bytes) -> None:
    check_signed(name, LEVEL, pdf)


def bench_env(context: ServiceContext, signer: Signer, settings: Settings) -> BenchEnv:
    """The installation's token and PKI with the employee's credential, for raw PKCS#11."""
    return BenchEnv(
        settings.data_dir,
        settings.hsm_module,
        settings.hsm_pin_file,
        context.hsm,
        context.dev_pki,  # type: ignore[arg-type]
        signer.credential,
    )


def raw_per_second(context: ServiceContext, signer: Signer, settings: Settings) -> float:
    env = bench_env(context, signer, settings)
    context.hsm.check()  # dairi's Hsm logs in first, as in the service
    lib = pkcs11.lib(settings.hsm_module)
    session = open_session(lib, env)
    try:
        return raw_signatures_per_second(session, env)
    finally:
        session.close()


@dataclass(frozen=True)
class Comparison:
    """Medians (ms) of one bid: over HTTP, through the Flask app in process, through the
    service layer; and per step, (HTTP, Flask app, service layer)."""

    http_ms: float
    wsgi_ms: float
    inprocess_ms: float
    steps: dict[str, tuple[float, float, float]]
    # CPU ms per bid, which other processes' load sways far less than the times: over
    # HTTP in this process (the client) and in the served processes, and in process.
    cpu_ms: tuple[float, float, float] | None = None

    @property
    def cpu_ratio(self) -> float | None:
        if self.cpu_ms is None:
            return None
        client, served, in_process = self.cpu_ms
        return (client + served) / in_process


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (the served workers): Linux /proc; [] elsewhere."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [pid, *map(int, children)]


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds the processes ``pids`` have used so far (/proc)."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # from field 3 (state) on
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def http_against_in_process(
    context: ServiceContext,
    app: Flask,
    signer: Signer,
    bid: Path,
    rounds: int,
    served: Sequence[int] = (),
) -> Comparison:
    """One B-T bid over HTTP, through the Flask app in process and through the service
    layer, interleaved round by round. Warm-up (untimed, checked): one in process, one
    through the Flask app and two per worker over HTTP. With ``served`` (the served
    processes' ids), the CPU time of each bid too: this process's over HTTP and in
    process, and the served processes' (idle but for the HTTP rounds)."""
    pdf = bid.read_bytes()
    paths = ("http", "wsgi", "service")
    totals: dict[str, list[float]] = {path: [] for path in paths}
    steps: dict[str, Steps] = {path: {step: [] for step in STEPS} for path in paths}
    cpu = {"http": 0.0, "service": 0.0}

    def on_cpu(path: str, work: Callable[[], object]) -> Callable[[], object]:
        def counted() -> object:
            # This thread's CPU time: the client's (over HTTP) or the whole in-process
            # flow's, which runs on this thread; not other threads of this process.
            begun = time.thread_time()
            try:
                return work()
            finally:
                cpu[path] += time.thread_time() - begun

        return counted

    with signer.client() as client:
        check_pdf("in process", in_process(context, signer, pdf))
        check_pdf("Flask app", through_wsgi(app, signer, pdf))
        for _ in range(WORKERS * 2):
            check_pdf("over HTTP", over_http(client, signer, [bid])[0].read_bytes())
        served_before = cpu_seconds(served)
        for _ in range(rounds):
            totals["http"].append(
                timed_ms(on_cpu("http", lambda: over_http(client, signer, [bid], steps["http"])))
            )
            totals["wsgi"].append(timed_ms(lambda: through_wsgi(app, signer, pdf, steps["wsgi"])))
            totals["service"].append(
                timed_ms(
                    on_cpu("service", lambda: in_process(context, signer, pdf, steps["service"]))
                )
            )
        served_cpu = cpu_seconds(served) - served_before
    http, wsgi, service = (median(totals[path]) for path in paths)
    by_step = {step: tuple(median(steps[p][step]) for p in paths) for step in STEPS}
    per_bid = (cpu["http"], served_cpu, cpu["service"])
    cpu_ms = tuple(round(seconds * 1000 / rounds, 1) for seconds in per_bid) if served else None
    return Comparison(http, wsgi, service, by_step, cpu_ms)  # type: ignore[arg-type]


def batch_against_single(signer: Signer, files: Sequence[Path], rounds: int) -> tuple[float, float]:
    """Median per-document ms over HTTP of one session of ``len(files)`` documents, and
    of as many sessions of one document each (one round of each, interleaved)."""
    with signer.client() as client:
        for pdf in over_http(client, signer, files):  # warm-up, checked
            check_pdf("batch", pdf.read_bytes())
        batch, single = [], []
        for _ in range(rounds):
            batch.append(timed_ms(lambda: over_http(client, signer, files)) / len(files))
            single.append(
                timed_ms(lambda: [over_http(client, signer, [f]) for f in files]) / len(files)
            )
    return median(batch), median(single)


def concurrent_clients(
    signer: Signer, bid: Path, rounds: int, work: Path
) -> tuple[int, int, float]:
    """``CLIENTS`` threads, each with its own connection pool and directory, each signing
    ``rounds`` sessions of one bid at once: (signatures, errors, seconds). Each first
    signs one untimed (so both workers are warm; its failure is counted apart), then all
    start together."""
    start = threading.Barrier(CLIENTS + 1)
    lock = threading.Lock()
    counts = {"signed": 0, "errors": 0, "warm-up errors": 0}
    failures: list[str] = []

    own_bids = []  # each client its own copy: the signed copies go beside it
    for n in range(CLIENTS):
        directory = work / f"client-{n}"
        directory.mkdir(parents=True, exist_ok=True)
        own_bids.append(directory / bid.name)
        own_bids[-1].write_bytes(bid.read_bytes())

    def attempt(client: ApiClient, own: Path, failed: str) -> None:
        try:
            check_pdf("concurrent", over_http(client, signer, [own])[0].read_bytes())
            outcome, failure = "signed", None
        except Exception as exc:  # every failure is counted
            outcome, failure = failed, f"{type(exc).__name__}: {exc}"
        with lock:
            if failed == "errors" or failure is not None:
                counts[outcome] += 1
            if failure is not None:
                failures.append(failure)

    def client_thread(own: Path) -> None:
        with signer.client() as client:
            attempt(client, own, "warm-up errors")
            start.wait()
            for _ in range(rounds):
                attempt(client, own, "errors")

    threads = [threading.Thread(target=client_thread, args=(own,)) for own in own_bids]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if counts["warm-up errors"]:
        print(f"  {counts['warm-up errors']} errors while warming up (not counted below)")
    for failure in sorted(set(failures))[:5]:
        print(f"  concurrent error: {failure}")
    return counts["signed"], counts["errors"], seconds


@dataclass(frozen=True)
class SignHashRate:
    """One batch size's CSC rates: signatures/s counting only signHash, and counting
    the whole rounds (both authorize calls and the card's signature too)."""

    batch: int
    signatures: int
    per_s: float
    with_authorize_per_s: float
    sign_ms: float  # median signHash call
    round_ms: float  # median whole round


class CscConnection:
    """One keep-alive HTTP/1.1 connection to the service for the CSC calls, as a CSC
    client in any language would hold: JSON in, JSON out, the bearer token. Not
    ``requests``: its own work (~1 ms a call here, against the ~14 ms signHash of a batch)
    is the client's, not the service's; ``ApiClient`` is timed beside it, for
    information."""

    def __init__(self, url: str, token: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.headers = {**bearer(token), "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.connection.request("POST", path, json.dumps(body), self.headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())

    def close(self) -> None:
        self.connection.close()


class ApiClientPoster:
    """The same calls through :class:`ApiClient` (``requests``, keep-alive)."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        response = self.client.send("POST", path, json=body)
        return response.status_code, response.json()


class CscRound:
    """One CSC round over HTTP for ``signer``'s credential: authorize (→
    ``dairi_to_sign``), the card's proof, authorize (→ SAD), signHash."""

    def __init__(self, poster: CscConnection | ApiClientPoster, signer: Signer) -> None:
        self.poster = poster
        self.signer = signer
        self.purpose = signer.request.json()["purpose"]

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        status, answer = self.poster.post(f"/csc/v2/{path}", body)
        if status != 200:
            raise RuntimeError(f"{path}: {status} {answer}")
        return answer

    def run(self, digests: Sequence[bytes]) -> tuple[list[bytes], float, float]:
        """(signatures, ms in signHash, ms of the whole round)."""
        begun = time.perf_counter()
        body: dict[str, Any] = {
            "credentialID": self.signer.request.credential_id,
            "numSignatures": len(digests),
            "hashes": [base64.b64encode(d).decode("ascii") for d in digests],
            "hashAlgorithmOID": SHA256_OID,
            "dairi_purpose": self.purpose,
        }
        to_sign = base64.b64decode(self._post("credentials/authorize", body)["dairi_to_sign"])
        card = self.signer.card
        body["authData"] = [
            {
                "id": "dairi_card_certificate",
                "value": base64.b64encode(card.certificate_der).decode(),
            },
            {"id": "dairi_card_signature", "value": base64.b64encode(card.sign(to_sign)).decode()},
        ]
        if card.intermediates_der:
            body["authData"].append(
                {
                    "id": "dairi_card_intermediates",
                    "value": ",".join(base64.b64encode(d).decode() for d in card.intermediates_der),
                }
            )
        sad = self._post("credentials/authorize", body)["SAD"]
        signing = time.perf_counter()
        answer = self._post(
            "signatures/signHash",
            {
                "credentialID": self.signer.request.credential_id,
                "SAD": sad,
                "hashes": body["hashes"],
                "hashAlgorithmOID": SHA256_OID,
                "signAlgo": RSA_SHA256_OID,
            },
        )
        ended = time.perf_counter()
        signatures = [base64.b64decode(s) for s in answer["signatures"]]
        if len(signatures) != len(digests):
            raise RuntimeError(f"{len(signatures)} signatures for {len(digests)} hashes")
        return signatures, (ended - signing) * 1000, (ended - begun) * 1000


def fresh_digests(count: int) -> list[bytes]:
    return [hashlib.sha256(os.urandom(16)).digest() for _ in range(count)]


def check_hash_signatures(
    signer: Signer, digests: Sequence[bytes], signatures: Sequence[bytes]
) -> None:
    """Each signature verifies over its hash with the credential's certificate."""
    key = x509.load_der_x509_certificate(signer.credential.certificate_der).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    for digest, signature in zip(digests, signatures, strict=True):
        key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


class RawBursts:
    """Raw PKCS#11 signatures of the credential's key, as :func:`raw_per_second` makes
    them (``CKM_SHA256_RSA_PKCS`` over 32 bytes, this process's own session), in bursts
    of ``BATCH`` between the signHash rounds: the baseline measured under the same load
    as the rounds beside it."""

    def __init__(self, context: ServiceContext, signer: Signer, settings: Settings) -> None:
        env = bench_env(context, signer, settings)
        self.session = open_session(pkcs11.lib(settings.hsm_module), env)
        self.key = self.session.get_key(
            object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=signer.credential.key_ref.cka_id
        )
        self.signatures = 0
        self.seconds = 0.0
        self.burst_ms: list[float] = []

    def burst(self) -> None:
        message = bytes(range(32))
        begun = time.perf_counter()
        for _ in range(BATCH):
            self.key.sign(message, mechanism=pkcs11.Mechanism.SHA256_RSA_PKCS)
        elapsed = time.perf_counter() - begun
        self.seconds += elapsed
        self.signatures += BATCH
        self.burst_ms.append(elapsed * 1000)

    @property
    def per_s(self) -> float:
        return self.signatures / self.seconds

    def close(self) -> None:
        self.session.close()


def signhash_rates(
    signer: Signer, rounds: int, raw: RawBursts
) -> tuple[dict[int, SignHashRate], SignHashRate]:
    """signHash over HTTP in batches of 1 and of ``BATCH`` (a keep-alive
    :class:`CscConnection`), and for information in batches of ``BATCH`` through
    :class:`ApiClient`: ``rounds`` × ``SIGNHASH_ROUNDS_PER_ROUND`` rounds each,
    interleaved with ``raw``'s bursts, after checked warm-ups (two per worker and batch
    size)."""
    count = rounds * SIGNHASH_ROUNDS_PER_ROUND
    kinds = [*SIGNHASH_BATCHES, REQUESTS_KIND]
    sign_ms: dict[int | str, list[float]] = {k: [] for k in kinds}
    round_ms: dict[int | str, list[float]] = {k: [] for k in kinds}
    connection = CscConnection(signer.url, signer.token)
    try:
        with signer.client() as client:
            rounds_of = {
                **{n: CscRound(connection, signer) for n in SIGNHASH_BATCHES},
                REQUESTS_KIND: CscRound(ApiClientPoster(client), signer),
            }
            size = {**{n: n for n in SIGNHASH_BATCHES}, REQUESTS_KIND: BATCH}
            for _ in range(WORKERS * 2):
                for kind in kinds:
                    digests = fresh_digests(size[kind])
                    signatures, _, _ = rounds_of[kind].run(digests)
                    check_hash_signatures(signer, digests, signatures)
            for _ in range(count):
                raw.burst()
                for kind in kinds:
                    _, signed_ms, whole_ms = rounds_of[kind].run(fresh_digests(size[kind]))
                    sign_ms[kind].append(signed_ms)
                    round_ms[kind].append(whole_ms)
    finally:
        connection.close()
    rates = {
        kind: SignHashRate(
            size[kind],
            size[kind] * count,
            size[kind] * count / (sum(sign_ms[kind]) / 1000),
            size[kind] * count / (sum(round_ms[kind]) / 1000),
            median(sign_ms[kind]),
            median(round_ms[kind]),
        )
        for kind in kinds
    }
    return {n: rates[n] for n in SIGNHASH_BATCHES}, rates[REQUESTS_KIND]


def xades_bt_http(signer: Signer, work: Path, rounds: int) -> tuple[float | None, str]:
    """Median ms of an XAdES B-T e-application through the whole HTTP flow (as
    :func:`over_http`), or ``None`` and why not."""
    if XADES not in SESSION_FORMATS:
        return None, f"the signing sessions do not take format {XADES!r} yet"
    directory = work / "applications"
    directory.mkdir(parents=True, exist_ok=True)
    application = directory / "application.xml"
    application.write_text(
        APPLICATION_XML.format(entity=ENTITY, case=CASE, amount=AMOUNT), encoding="utf-8"
    )
    xades = dataclasses.replace(
        signer, request=dataclasses.replace(signer.request, format=XADES, level="B-T")
    )
    times = []
    try:
        with xades.client() as client:
            for _ in range(WORKERS * 2):  # warm-up, checked
                signed = over_http(client, xades, [application])[0].read_bytes()
                if b"SignatureTimeStamp" not in signed or b"CertifiedRolesV2" not in signed:
                    raise RuntimeError("the signed application lacks its time-stamp or role")
            for _ in range(rounds):
                times.append(timed_ms(lambda: over_http(client, xades, [application])))
    except Exception as exc:  # reported, not fatal: the PAdES figures stand
        return None, f"the XAdES flow failed: {type(exc).__name__}: {exc}"
    return median(times), "through the signing sessions over HTTP"


def run(settings: Settings, context: ServiceContext, rounds: int) -> Figures:
    work = settings.data_dir / "bench"
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    print(f"load average at the start: {load} ({os.cpu_count()} CPUs)")
    with DemoServer(settings, workers=WORKERS) as server:
        print(f"served at {server.url} (dairi serve's gunicorn, {WORKERS} workers)")
        signer = make_signer(context, server.url, work)
        print(
            f"employee {signer.person_id}: credential {signer.request.credential_id} "
            f"(RSA-2048, key {signer.credential.key_ref}), a root mandate to bid"
        )
        raw = raw_per_second(context, signer, settings)
        files = documents(work / "documents", BATCH)
        app = create_app(settings, hsm=context.hsm)  # the same service, in this process
        try:
            assert server.process is not None
            served = process_tree(server.process.pid)
            comparison = http_against_in_process(context, app, signer, files[0], rounds, served)
        finally:
            app.extensions["dairi"].engine.dispose()
        batch_ms, single_ms = batch_against_single(signer, files, rounds)
        signed, errors, seconds = concurrent_clients(signer, files[0], rounds, work)
        bursts = RawBursts(context, signer, settings)
        try:
            signhash, signhash_requests = signhash_rates(signer, rounds, bursts)
        finally:
            bursts.close()
        xades_ms, xades_note = xades_bt_http(signer, work, rounds)
        log = server.log_path.read_text(errors="replace")
    return Figures(
        raw,
        comparison,
        batch_ms,
        single_ms,
        signed / seconds,
        signed,
        errors,
        seconds,
        log.count("Traceback"),
        signhash,
        xades_ms,
        xades_note,
        signhash_requests,
        bursts.per_s,
        median(bursts.burst_ms),
    )


# -- output ---------------------------------------------------------------------


def print_report(f: Figures, rounds: int) -> None:
    print(
        f"raw PKCS#11 RSA-2048 (CKM_SHA256_RSA_PKCS), the credential's key: "
        f"{f.raw_sign_per_s:.0f} signatures/s ({1000 / f.raw_sign_per_s:.2f} ms/signature)"
    )
    print(f"PAdES {LEVEL.value} bid, one document per session, median of {rounds}:")
    c = f.comparison
    print(f"  over HTTP (open, card proof → SAD, sign)         {c.http_ms:8.1f} ms")
    print(f"  the Flask app in this process (no sockets)       {c.wsgi_ms:8.1f} ms")
    print(f"  the service layer in this process, same steps    {c.inprocess_ms:8.1f} ms")
    print(
        "  per step (HTTP / Flask app / service layer): "
        + "; ".join(f"{step} {' / '.join(f'{v:.1f}' for v in c.steps[step])}" for step in STEPS)
    )
    verdict = "met" if f.target_met else "NOT met"
    print(f"  ratio {f.ratio:.2f}x; target (HTTP ≤ {TARGET_RATIO}× in process): {verdict}")
    if c.cpu_ms is not None:
        client, served, in_process_cpu = c.cpu_ms
        print(
            f"  CPU per bid (what load sways least): over HTTP {client:.1f} in the client + "
            f"{served:.1f} served = {client + served:.1f} ms; in process "
            f"{in_process_cpu:.1f} ms ({c.cpu_ratio:.2f}x)"
        )
    print(f"per document over HTTP, median of {rounds} rounds:")
    print(f"  one session of {BATCH} documents   {f.batch20_per_doc_ms:8.1f} ms")
    print(f"  {BATCH} sessions of one document   {f.single_per_doc_ms:8.1f} ms")
    print(
        f"{CLIENTS} concurrent clients ({rounds} sessions each, {WORKERS} workers): "
        f"{f.concurrent_per_s:.1f} signatures/s ({f.concurrent_signatures} in "
        f"{f.concurrent_seconds:.1f} s), {f.concurrent_errors} errors"
    )
    print(
        f"CSC signatures/signHash over HTTP, RSA-2048, "
        f"{rounds * SIGNHASH_ROUNDS_PER_ROUND} rounds per batch size "
        "(authorize → dairi_to_sign, card proof → SAD, signHash), one keep-alive connection; "
        f"raw PKCS#11 between the rounds {f.signhash_raw_per_s:.0f} signatures/s:"
    )
    rows = [(f"batches of {n:2d}", rate) for n, rate in f.signhash.items()]
    rows.append((f"batches of {BATCH} through ApiClient (requests)", f.signhash_requests))
    for label, rate in rows:
        print(
            f"  {label}: {rate.per_s:7.1f} signatures/s in signHash "
            f"({rate.per_s / f.signhash_raw_per_s:.0%} of raw; median call {rate.sign_ms:.1f} "
            f"ms), {rate.with_authorize_per_s:7.1f}/s with authorize (median round "
            f"{rate.round_ms:.1f} ms)"
        )
    print(
        f"  medians, less sensitive to other processes' bursts of load: a signHash call of "
        f"{BATCH} {f.signhash[BATCH].sign_ms:.1f} ms against {f.signhash_raw_burst_ms:.1f} ms "
        f"for {BATCH} raw signatures ({f.signhash_raw_burst_ms / f.signhash[BATCH].sign_ms:.0%})"
    )
    verdict = "met" if f.signhash_target_met else "NOT met"
    print(
        f"  batches of {BATCH} at {f.signhash_ratio:.0%} of the raw rate between the rounds "
        f"({f.signhash[BATCH].per_s / f.raw_sign_per_s:.0%} of the run's first raw figure); "
        f"target (≥ {SIGNHASH_TARGET:.0%}): {verdict}"
    )
    if f.xades_bt_http_ms is None:
        print(f"XAdES B-T e-application over HTTP: not measured ({f.xades_note})")
    else:
        print(
            f"XAdES B-T e-application, one document per session, {f.xades_note}, "
            f"median of {rounds}: {f.xades_bt_http_ms:.1f} ms"
        )
    if f.server_tracebacks:
        print(f"the served process logged {f.server_tracebacks} tracebacks")


def as_json(f: Figures) -> str:
    return json.dumps(
        {
            "raw_sign_per_s": round(f.raw_sign_per_s, 1),
            "pades_bt_http_ms": f.http_ms,
            "pades_bt_inprocess_ms": f.inprocess_ms,
            "pades_bt_cpu_ms": (
                dict(zip(("client", "served", "inprocess"), f.comparison.cpu_ms, strict=True))
                if f.comparison.cpu_ms is not None
                else None
            ),
            "batch20_per_doc_ms": f.batch20_per_doc_ms,
            "single_per_doc_ms": f.single_per_doc_ms,
            "concurrent": {
                "clients": CLIENTS,
                "signatures_per_s": round(f.concurrent_per_s, 1),
                "errors": f.concurrent_errors,
            },
            "signhash_per_s": {str(n): round(r.per_s, 1) for n, r in f.signhash.items()},
            "signhash_raw_per_s": round(f.signhash_raw_per_s, 1),
            "xades_bt_http_ms": f.xades_bt_http_ms,
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
        help=f"timed rounds per measure, and sessions per concurrent client "
        f"(default {DEFAULT_ROUNDS})",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # One login serves the whole run: its token outlives a long --rounds.
    with service_environment(access_token_seconds=86_400) as (settings, context):
        figures = run(settings, context, args.rounds)
    print_report(figures, args.rounds)
    if args.json:
        print(as_json(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
