"""Mandate benchmark: validating a mandate AC, judging a chain, and the authority query.

Prints, in one run:

- baseline: the median ms of one pyhanko-certvalidator ``async_validate_ac`` of a
  depth-3 leaf mandate AC (holder given, the dev PKI's service root trusted, the AA
  certificate among the other certificates, revocation "require", the AA's OCSP
  answered in process and signed in SoftHSM), with a fresh ``ValidationContext`` per
  run, as a relying party validating one signature would;
- the median ms of ``MandateChainReader.evaluate`` for the same chain (root grant at
  depth 0 and three sub-delegations: four ACs, scopes narrowing), the reader built
  once ("the AA path cached") and the status answered from a dict;
- the size in bytes of the chain's AC at each depth 0-3 (each embeds its ancestors
  without their own provenance, so the size grows linearly: issue 10 item 12);
- the median ms of ``AuthorityQuery.find`` (who may bid for a corporation, and
  through which chain) on a database of ``--mandates`` rows (default 100,000) over
  1,000 corporations, on SQLite and, when reachable, PostgreSQL.

p95s are printed for information. Targets (the issue): chain p50 ≤ 5 ms, authority
query p50 ≤ 20 ms on each backend. Missing one is reported, not an error; the exit
status is non-zero only on errors.

The HSM, the dev PKI and the SQLite database live in temporary directories; the
PostgreSQL tables in a private schema, dropped afterwards. From the project root::

    python -m bench.mandates [--json] [--mandates N] [--postgresql URL]

The PostgreSQL server defaults to ``TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/test``; ``--postgresql ''`` skips it. With
``--json`` the last line of output is one JSON object (medians, ms):
``{"validate_ac_ms": ..., "chain_depth3_ms": ..., "ac_bytes_by_depth": [...],
"authority_query_ms": {"sqlite": ..., "postgresql": ...}}``, ``postgresql`` null when not measured.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `import hsm` etc. work
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.validate import async_validate_ac
from sqlalchemy import Engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app.database import make_engine, make_session_factory
from app.dev.private_schema import private_schema
from app.mandates.authority import AuthorityQuery
from app.mandates.models import Mandate, MandateStatus
from app.migrate import migrate
from app.people.models import Corporation, Person
from bench._setup import DER, BenchEnv, bench_environment
from delegation.certificates import AttributeAuthority, MandateParty, MandateTerms
from delegation.instruction import GrantInstruction
from delegation.scope import Purpose, Scope
from delegation.verify import MandateChainReader
from devpki import TransportFetcherBackend
from identity.corporate_number import corporate_number

DEFAULT_MANDATES = 100_000
DEFAULT_POSTGRESQL = "postgresql://postgres@127.0.0.1:5432/test"
CORPORATIONS = 1_000
VALIDATE_ROUNDS, VALIDATE_WARMUP = 30, 3
CHAIN_ROUNDS, CHAIN_WARMUP = 200, 10
QUERY_ROUNDS, QUERY_WARMUP = 200, 20
INSERT_BATCH = 5_000
CHAIN_TARGET_MS = 5.0
QUERY_TARGET_MS = 20.0
SEED = 20261121

PRINCIPAL = corporate_number("010401012345")
PRINCIPAL_NAME = "株式会社大理建設"
REPRESENTATIVE = MandateParty("大理 一郎", "代表取締役", hashlib.sha256(b"registration").digest())
PROCURING_ENTITIES = (
    "国土交通省関東地方整備局",
    "国土交通省近畿地方整備局",
    "国土交通省中部地方整備局",
    "国土交通省九州地方整備局",
    "防衛省",
    "農林水産省",
    "東京都",
    "大阪府",
    "神奈川県",
    "愛知県",
    "福岡県",
    "北海道",
    "横浜市",
    "名古屋市",
    "京都市",
    "札幌市",
)
ACTIONS = ("bid", "quote", "contract", "invoice", "e-application:*")


def whole_seconds_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# -- figures ----------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Milliseconds per operation: median and p95 of the timed runs."""

    median_ms: float
    p95_ms: float
    runs: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> Timing:
        ordered = sorted(times_ms)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return cls(statistics.median(ordered), p95, len(ordered))

    def line(self, target_ms: float | None = None) -> str:
        text_ = f"p50 {self.median_ms:8.2f} ms   p95 {self.p95_ms:8.2f} ms   ({self.runs} runs)"
        if target_ms is not None:
            verdict = "met" if self.median_ms <= target_ms else "NOT met"
            text_ += f"   target p50 ≤ {target_ms:g} ms: {verdict}"
        return text_


def time_ms(operation: Callable[[], object]) -> float:
    start = time.perf_counter()
    operation()
    return (time.perf_counter() - start) * 1000


# -- a depth-3 chain of mandate ACs -----------------------------------------


@dataclass(frozen=True)
class AcChain:
    """Four ACs (root grant first), the leaf holder's certificate and a purpose they cover."""

    aa: AttributeAuthority
    acs: tuple[bytes, ...]
    serials: frozenset[int]
    holder_der: bytes
    purpose: Purpose

    @property
    def leaf(self) -> bytes:
        return self.acs[-1]


def _holder_certificate(env: BenchEnv, name: str) -> bytes:
    """An employee certificate for a software key: a holder only needs the certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    return env.pki.issue_employee_certificate(name, key.public_key()).certificate.public_bytes(DER)


def build_chain(env: BenchEnv) -> AcChain:
    """Root grant (max_depth 3) → 1 → 2 → 3 (max_depth 0), each hop narrower, the leaf
    held by the bench credential (its key in the HSM), every AC signed by the HSM AA."""
    pki = env.pki
    aa = AttributeAuthority(
        pki.aa_certificate.public_bytes(DER),
        lambda data: env.hsm.sign(pki.aa_key, data),
        ocsp_url=f"{pki.base_url}/ac/ocsp/aa",
        crl_url=f"{pki.base_url}/ac/crl/aa.crl",
    )
    holders = [_holder_certificate(env, name) for name in ("部長 次郎", "課長 三郎", "係長 四郎")]
    holders.append(env.credential.certificate_der)
    names = ["部長 次郎", "課長 三郎", "係長 四郎", "山田 太郎"]
    now = whole_seconds_now()
    hops = [  # actions, entities, amount limit, lifetime in days, max_depth
        (("bid", "contract", "quote"), PROCURING_ENTITIES[:3], 1_000_000_000, 365, 3),
        (("bid", "quote"), PROCURING_ENTITIES[:2], 500_000_000, 180, 2),
        (("bid",), PROCURING_ENTITIES[:2], 200_000_000, 90, 1),
        (("bid",), PROCURING_ENTITIES[:1], 100_000_000, 30, 0),
    ]
    acs: list[bytes] = []
    serials = []
    grantor = REPRESENTATIVE
    parent: str | None = None
    for depth, (actions, entities, amount, days, max_depth) in enumerate(hops):
        grantee = MandateParty(names[depth], None, hashlib.sha256(holders[depth]).digest())
        serial = uuid.uuid4().int
        # The grant instruction each AC stands on, as grantors make them (fresh nonce,
        # creation time): the AC carries its digest.
        scope = Scope(
            frozenset(actions),
            frozenset(entities),
            None,
            amount,
            now - timedelta(days=1),
            now + timedelta(days=days),
            max_depth,
        )
        instruction = GrantInstruction(
            PRINCIPAL,
            PRINCIPAL_NAME,
            grantor.name,
            grantor.title,
            grantee.name,
            grantee.certificate_sha256.hex(),
            scope,
            parent=parent,
            created_at=now,
        )
        terms = MandateTerms(
            principal_corporate_number=PRINCIPAL,
            principal_name=PRINCIPAL_NAME,
            grantor=grantor,
            grantee=grantee,
            scope=scope,
            instruction_digest=hashlib.sha256(instruction.canonical()).digest(),
        )
        parent = str(uuid.UUID(int=serial))
        acs.append(
            aa.issue(terms, holders[depth], serial_number=serial, ancestors=acs, depth=depth)
        )
        serials.append(serial)
        grantor = MandateParty(grantee.name, None, grantee.certificate_sha256)
    purpose = Purpose("bid", PROCURING_ENTITIES[0], None, 50_000_000, now)
    return AcChain(aa, tuple(acs), frozenset(serials), holders[-1], purpose)


# -- baseline: pyhanko-certvalidator ------------------------------------------


def ac_transport(
    env: BenchEnv, chain: AcChain
) -> Callable[[str, str, bytes | None], tuple[int, str, bytes]]:
    """The AA's OCSP responder answered in process (signed in the HSM); other URLs go to
    the dev PKI (the service root's OCSP for the AA certificate)."""

    def status_of(serial: int) -> tuple[str, datetime | None, str | None]:
        return ("good", None, None) if serial in chain.serials else ("unknown", None, None)

    def transport(method: str, url: str, body: bytes | None) -> tuple[int, str, bytes]:
        if url == chain.aa.ocsp_url and method == "POST":
            return (
                200,
                "application/ocsp-response",
                chain.aa.ocsp_response(body or b"", status_of, now=datetime.now(UTC)),
            )
        return env.pki.serve_url(method, url, body)

    return transport


def bench_validate_ac(env: BenchEnv, chain: AcChain) -> Timing:
    """``async_validate_ac`` of the leaf, a fresh ValidationContext (no OCSP cache) per run.

    The trust root is loaded once, as a relying party would; the AC, its holder's
    certificate and the AA certificate arrive with each signature and are parsed per run.
    """
    trust_root = asn1_x509.Certificate.load(
        env.pki.cas["service-root"].certificate.public_bytes(DER)
    )
    aa_der = chain.aa.certificate_der
    transport = ac_transport(env, chain)

    async def validate_once() -> None:
        context = ValidationContext(
            trust_roots=[trust_root],
            other_certs=[asn1_x509.Certificate.load(aa_der)],
            allow_fetching=True,
            fetcher_backend=TransportFetcherBackend(transport),
            revocation_mode="require",
        )
        try:
            result = await async_validate_ac(
                cms.AttributeCertificateV2.load(chain.leaf),
                context,
                holder_cert=asn1_x509.Certificate.load(chain.holder_der),
            )
        finally:
            await context.aclose()
        if result.aa_cert.dump() != aa_der:
            raise RuntimeError("async_validate_ac: the AC was validated under another AA")

    async def run() -> list[float]:
        for _ in range(VALIDATE_WARMUP):  # raises if the AC does not validate
            await validate_once()
        times = []
        for _ in range(VALIDATE_ROUNDS):
            start = time.perf_counter()
            await validate_once()
            times.append((time.perf_counter() - start) * 1000)
        return times

    return Timing.of(asyncio.run(run()))


# -- the chain reader ---------------------------------------------------------


def bench_chain(chain: AcChain) -> Timing:
    reader = MandateChainReader(chain.aa.certificate_der)  # built once: the AA path cached
    revoked: dict[int, datetime] = {}

    def evaluate() -> None:
        verdict = reader.evaluate(
            chain.leaf,
            chain.purpose,
            principal=PRINCIPAL,
            signer_certificate_der=chain.holder_der,
            status_of=revoked.get,
        )
        if not verdict.holds:
            raise RuntimeError(f"the depth-3 chain does not hold: {verdict.codes()}")

    for _ in range(CHAIN_WARMUP):  # raises if the chain does not hold
        evaluate()
    return Timing.of([time_ms(evaluate) for _ in range(CHAIN_ROUNDS)])


# -- the authority query: data ------------------------------------------------


@dataclass
class _Grant:
    """What a generated mandate passes on to its sub-delegations."""

    row: dict[str, Any]
    scope: Scope
    holders: frozenset[str]  # person ids of the chain's grantees, to avoid loops


@dataclass(frozen=True)
class Dataset:
    at: datetime
    principals: tuple[str, ...]
    corporations: list[dict[str, Any]]
    people: list[dict[str, Any]]
    mandates: list[dict[str, Any]]  # parents before children

    def share(self, predicate: Callable[[dict[str, Any]], bool]) -> float:
        return sum(1 for m in self.mandates if predicate(m)) / len(self.mandates)


def _sha(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def _subset(rng: random.Random, items: Sequence[str], most: int | None = None) -> frozenset[str]:
    ordered = sorted(items)
    return frozenset(rng.sample(ordered, rng.randint(1, min(most or len(ordered), len(ordered)))))


def _root_scope(rng: random.Random, at: datetime) -> Scope:
    actions = _subset(rng, ACTIONS, 3) | ({"bid"} if rng.random() < 0.6 else set())
    not_before = at + timedelta(days=rng.randint(-730, 60), seconds=rng.randint(0, 86_399))
    return Scope(
        actions=actions,
        procuring_entities=None if rng.random() < 0.4 else _subset(rng, PROCURING_ENTITIES, 4),
        cases=None if rng.random() < 0.9 else frozenset({f"R8-{rng.randint(1, 999):03d}"}),
        amount_limit_jpy=None if rng.random() < 0.3 else rng.randint(1, 500) * 10_000_000,
        not_before=not_before,
        not_after=not_before + timedelta(days=rng.randint(30, 1095)),
        max_depth=rng.choice((0, 1, 2, 2)),
    )


def _child_scope(rng: random.Random, parent: Scope) -> Scope:
    """A scope within ``parent`` in every dimension (a valid sub-delegation)."""
    span = (parent.not_after - parent.not_before) // 4
    not_before = parent.not_before + rng.random() * span
    not_after = parent.not_after - rng.random() * span
    entities = parent.procuring_entities
    if entities is None and rng.random() < 0.5:
        entities = _subset(rng, PROCURING_ENTITIES, 3)
    elif entities is not None:
        entities = _subset(rng, entities)
    limit = parent.amount_limit_jpy
    return Scope(
        actions=_subset(rng, parent.actions),
        procuring_entities=entities,
        cases=parent.cases,
        amount_limit_jpy=limit
        if limit is None or rng.random() < 0.5
        else max(1, limit // rng.randint(2, 10)),
        not_before=not_before.replace(microsecond=0),
        not_after=not_after.replace(microsecond=0),
        max_depth=rng.randint(0, parent.max_depth - 1),
    )


def generate(mandates: int, at: datetime, seed: int = SEED) -> Dataset:
    """``mandates`` rows over 1,000 corporations, ~40% root grants, ~35% at depth 1 and
    ~25% at depth 2 (under a parent allowing it, else one level up), ~5% revoked (a
    revocation cascades to the descendants, as ``MandateService.revoke`` does)."""
    rng = random.Random(seed)
    per_corporation = max(1, mandates // CORPORATIONS)
    # Small blobs: the authority query loads these columns (select(Mandate)) but uses none.
    placeholder = b"\x30\x03\x02\x01\x00"
    corporations, people, rows = [], [], []
    principals = []
    for index in range(CORPORATIONS):
        number = corporate_number(f"0104{index + 1:08d}")
        name = f"株式会社ベンチ{index + 1:04d}"
        principals.append(number)
        corporations.append(
            {
                "corporate_number": number,
                "registered_number": number[1:],
                "name": name,
                "joint_representatives": 1,
                "created_at": at,
            }
        )
        staff = []
        for n in range(max(8, per_corporation * 2 // 5)):
            person_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            certificate_sha = _sha(f"signing {person_id}")
            staff.append((person_id, f"社員{n:03d} {index:04d}", certificate_sha))
            people.append(
                {
                    "id": person_id,
                    "name": staff[-1][1],
                    "status": "active",
                    "auth_certificate_sha256": _sha(f"auth {person_id}"),
                    "auth_certificate_der": placeholder,
                    "signing_certificate_sha256": certificate_sha,
                    "signing_certificate_der": placeholder,
                    "personal_data": None,
                    "enrolled_at": at - timedelta(days=1000),
                    "rebound_at": None,
                }
            )
        representative_sha = _sha(f"registration {number}")
        grants: list[list[_Grant]] = [[], [], []]
        remaining = (
            per_corporation
            if index < CORPORATIONS - 1
            else mandates - per_corporation * (CORPORATIONS - 1)
        )
        for n in range(remaining):
            wanted = 0 if n == 0 else rng.choices((0, 1, 2), (40, 35, 25))[0]
            parents: list[_Grant] = []
            for depth in range(wanted, 0, -1):
                parents = [g for g in grants[depth - 1] if g.scope.max_depth >= 1]
                if parents:
                    break
            parent = rng.choice(parents) if parents else None
            scope = _root_scope(rng, at) if parent is None else _child_scope(rng, parent.scope)
            taken = frozenset() if parent is None else parent.holders
            person_id, person_name, person_sha = rng.choice([s for s in staff if s[0] not in taken])
            created_at = min(scope.not_before, at) - timedelta(days=1)
            revoked_at = None if parent is None else parent.row["revoked_at"]
            if revoked_at is None and rng.random() < 0.027:
                revoked_at = created_at + (at - created_at) * rng.uniform(0.1, 1.0)
            if revoked_at is not None:
                created_at = min(created_at, revoked_at - timedelta(seconds=1))
            mandate_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            row = {
                "id": mandate_id,
                "principal": number,
                "principal_name": name,
                "parent_id": None if parent is None else parent.row["id"],
                "depth": 0 if parent is None else parent.row["depth"] + 1,
                "grantor_name": "代表 太郎" if parent is None else parent.row["grantee_name"],
                "grantor_title": "代表取締役" if parent is None else None,
                "grantor_certificate_sha256": representative_sha
                if parent is None
                else parent.row["grantee_certificate_sha256"],
                "representative_certificates": None,
                "representative_revoked_at": None,
                "grantee_person_id": person_id,
                "grantee_name": person_name,
                "grantee_certificate_sha256": person_sha,
                "grantee_certificate_der": placeholder,
                "scope_json": json.dumps(scope.to_json(), ensure_ascii=False),
                "not_before": scope.not_before,
                "not_after": scope.not_after,
                "instruction": placeholder,
                "instruction_sha256": _sha(mandate_id),
                "signatures": placeholder,
                "attribute_certificate": placeholder,
                "status": (
                    MandateStatus.ACTIVE if revoked_at is None else MandateStatus.REVOKED
                ).value,
                "revoked_at": revoked_at,
                "revoked_by": None if revoked_at is None else "bench",
                "revocation_reason": None if revoked_at is None else "privilege_withdrawn",
                "created_by": "bench",
                "created_at": created_at,
            }
            grants[row["depth"]].append(_Grant(row, scope, taken | {person_id}))
        rows.extend(g.row for level in grants for g in level)
    rows.sort(key=lambda r: r["depth"])  # parents first, for the foreign key
    return Dataset(at, tuple(principals), corporations, people, rows)


def fill(engine: Engine, data: Dataset) -> float:
    """Insert the dataset with Core executemany in batches; returns the seconds taken."""
    start = time.perf_counter()
    with engine.begin() as connection:
        for table, rows in (
            (Corporation.__table__, data.corporations),
            (Person.__table__, data.people),
            (Mandate.__table__, data.mandates),
        ):
            for offset in range(0, len(rows), INSERT_BATCH):
                connection.execute(insert(table), rows[offset : offset + INSERT_BATCH])
    return time.perf_counter() - start


# -- the authority query: timing ----------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    backend: str
    fill_s: float
    timing: Timing
    non_empty: int  # queries with at least one authority
    authorities: int  # found over all timed queries


def bench_authority(backend: str, url: str, data: Dataset) -> QueryResult:
    migrate(url)
    engine = make_engine(url)
    try:
        fill_s = fill(engine, data)
        if engine.dialect.name == "postgresql":
            # Autovacuum would analyse a table after 100k inserts; do not time its absence.
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
        sessions = make_session_factory(engine)
        rng = random.Random(SEED + 1)
        times: list[float] = []

        def query() -> int:
            principal = rng.choice(data.principals)
            purpose = Purpose("bid", rng.choice(PROCURING_ENTITIES), None, None, data.at)
            with sessions() as session:
                authority = AuthorityQuery(session)  # it needs the session only
                start = time.perf_counter()
                found = authority.find(principal, purpose)
                times.append((time.perf_counter() - start) * 1000)
            return len(found)

        for _ in range(QUERY_WARMUP):
            query()
        times.clear()
        counts = [query() for _ in range(QUERY_ROUNDS)]
    finally:
        engine.dispose()
    non_empty = sum(1 for c in counts if c)
    if non_empty < QUERY_ROUNDS // 10:
        raise RuntimeError(
            f"{backend}: only {non_empty} of {QUERY_ROUNDS} authority queries "
            "found anyone; the bench would time empty answers"
        )
    return QueryResult(backend, fill_s, Timing.of(times), non_empty, sum(counts))


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="dairi-bench-db-") as directory:
        yield f"sqlite:///{Path(directory) / 'dairi.db'}"


def postgresql_unreachable(server_url: str) -> str | None:
    """Why the PostgreSQL server cannot be used, or None if it answers."""
    engine = make_engine(server_url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except SQLAlchemyError as exc:
        return str(exc.orig or exc).splitlines()[0]
    finally:
        engine.dispose()


def bench_databases(mandates: int, postgresql_url: str) -> list[QueryResult]:
    start = time.perf_counter()
    data = generate(mandates, whole_seconds_now())
    print(
        f"generated {len(data.mandates):,} mandates ({len(data.people):,} people, "
        f"{CORPORATIONS:,} corporations) in {time.perf_counter() - start:.1f} s: "
        f"depth 0/1/2 = "
        + "/".join(f"{data.share(lambda m, d=d: m['depth'] == d):.0%}" for d in range(3))
        + f", revoked {data.share(lambda m: m['revoked_at'] is not None):.1%}, "
        f"live at T {data.share(lambda m: m['not_before'] <= data.at < m['not_after']):.0%}"
    )
    results = []
    with sqlite_database() as url:
        results.append(bench_authority("sqlite", url, data))
    if not postgresql_url:
        print("PostgreSQL: skipped (--postgresql '')")
        return results
    shown = make_url(postgresql_url).render_as_string(hide_password=True)
    reason = postgresql_unreachable(postgresql_url)
    if reason is not None:
        print(f"PostgreSQL at {shown}: not reachable, skipped ({reason})")
        return results
    print(f"PostgreSQL at {shown}: a private schema, dropped afterwards")
    with private_schema(postgresql_url, prefix="bench") as url:
        results.append(bench_authority("postgresql", url, data))
    return results


# -- output -------------------------------------------------------------------


def print_report(
    validate: Timing,
    chain: Timing,
    queries: list[QueryResult],
    mandates: int,
    ac_sizes: Sequence[int] = (),
) -> None:
    print(
        "baseline: pyhanko-certvalidator async_validate_ac, depth-3 leaf AC, fresh context, "
        "OCSP required (AA answers in process, signs in SoftHSM):"
    )
    print(f"  validate_ac             {validate.line()}")
    print("MandateChainReader.evaluate, depth-3 chain (4 ACs), AA path cached:")
    ratio = validate.median_ms / chain.median_ms
    print(f"  chain_depth3            {chain.line(CHAIN_TARGET_MS)}   ({ratio:.1f}x the baseline)")
    if ac_sizes:
        steps = [b - a for a, b in itertools.pairwise(ac_sizes)]
        print(
            f"  AC bytes at depths 0-{len(ac_sizes) - 1}: "
            f"{' / '.join(str(n) for n in ac_sizes)} (each level adds "
            f"{' / '.join(str(n) for n in steps)})"
        )
    print(
        f"AuthorityQuery.find, {mandates:,} mandates over {CORPORATIONS:,} "
        "corporations, random principal and entity, action bid:"
    )
    for q in queries:
        print(f"  authority ({q.backend:<10}) {q.timing.line(QUERY_TARGET_MS)}")
        print(
            f"    filled in {q.fill_s:.1f} s; {q.non_empty} of {q.timing.runs} queries "
            f"found someone, {q.authorities / q.timing.runs:.1f} authorities per query"
        )


def as_json(
    validate: Timing, chain: Timing, queries: list[QueryResult], ac_sizes: Sequence[int] = ()
) -> str:
    by_backend = {q.backend: round(q.timing.median_ms, 2) for q in queries}
    return json.dumps(
        {
            "validate_ac_ms": round(validate.median_ms, 2),
            "chain_depth3_ms": round(chain.median_ms, 2),
            "ac_bytes_by_depth": list(ac_sizes),
            "authority_query_ms": {
                "sqlite": by_backend.get("sqlite"),
                "postgresql": by_backend.get("postgresql"),
            },
        }
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (medians) as the last line"
    )
    parser.add_argument(
        "--mandates",
        type=int,
        default=DEFAULT_MANDATES,
        help=f"mandate rows in the database (default {DEFAULT_MANDATES:,})",
    )
    parser.add_argument(
        "--postgresql",
        metavar="URL",
        default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_POSTGRESQL,
        help="PostgreSQL server for the authority query ('' to skip; "
        f"default TEST_DATABASE_URL or {DEFAULT_POSTGRESQL})",
    )
    args = parser.parse_args(argv)
    if args.mandates < CORPORATIONS:
        parser.error(f"--mandates must be at least {CORPORATIONS:,} (one per corporation)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with bench_environment() as env:
        chain = build_chain(env)
        validate = bench_validate_ac(env, chain)
        chain_timing = bench_chain(chain)
    queries = bench_databases(args.mandates, args.postgresql)
    ac_sizes = [len(ac) for ac in chain.acs]
    print_report(validate, chain_timing, queries, args.mandates, ac_sizes)
    if args.json:
        print(as_json(validate, chain_timing, queries, ac_sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
