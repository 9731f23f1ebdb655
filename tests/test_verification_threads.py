"""Parsed ASN.1 objects are never shared between threads (DESIGN §3: asn1crypto objects
used by two threads at once got corrupted; they parse their parts lazily, on first use).

A verification runs lock-free beside the request the process is running, so two threads
may verify at once. The verifier's caches of parsed objects (``signing.verification_asn1``
and the :class:`~signing.verification_cache.BoundedCache` maps) therefore belong to one
thread each: the same thread asking twice gets the object it parsed before, another
thread gets its own. Verifications of one signed bid from several threads at once report
exactly what a verification alone does.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from asn1crypto import crl, x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask
from helpers_app import own_service
from helpers_auth import new_corporation
from helpers_mandates import ENTITY, new_employee, root_grant

from app.mandates.evidence import mandate_evidence
from app.mandates.models import Mandate
from app.settings import Settings
from delegation.scope import Purpose
from hsm import Hsm
from signing import PadesLevel, PadesSpec, verification_asn1
from signing.verification import VerificationTrust, _crl_containers, verify_pdf
from signing.verification_asn1 import remembered_asn1
from signing.verification_cache import BoundedCache, clear_all

T = TypeVar("T")


def _in_threads(count: int, work: Callable[[], T]) -> list[T]:
    """``work()`` in ``count`` threads alive at the same time (none ends before all
    have started, so no two share a thread identity)."""
    started = threading.Barrier(count)
    done = threading.Barrier(count)

    def run() -> T:
        started.wait()
        try:
            return work()
        finally:
            done.wait()

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(run) for _ in range(count)]
        return [f.result() for f in futures]


@pytest.fixture(scope="module")
def crl_der(pki) -> bytes:
    return pki.cas["employee-signing"].crl(now=datetime.now(UTC))


# -- the caches, at the cause ------------------------------------------------------------


def test_each_thread_parses_its_own_der_and_remembers_it(crl_der):
    def twice() -> tuple[crl.CertificateList, crl.CertificateList]:
        with remembered_asn1():
            return crl.CertificateList.load(crl_der), crl.CertificateList.load(crl_der)

    (a1, a2), (b1, b2) = _in_threads(2, twice)
    assert a1 is a2 and b1 is b2  # the same thread twice: remembered
    assert a1 is not b1  # two threads: never the same object
    assert a1.dump() == b1.dump() == crl_der


def test_each_thread_gets_its_own_cached_value():
    made = BoundedCache[object]("threads test")

    def twice() -> tuple[object, object]:
        return made.get_or_compute("key", object), made.get_or_compute("key", object)

    (a1, a2), (b1, b2) = _in_threads(2, twice)
    assert a1 is a2 and b1 is b2
    assert a1 is not b1


def test_a_shared_cache_of_immutable_values_serves_every_thread():
    made = BoundedCache[tuple[str, ...]]("shared threads test", shared=True)
    made.put("key", ("MANDATE_REVOKED",))
    assert _in_threads(2, lambda: made.get("key")) == [("MANDATE_REVOKED",)] * 2
    assert len(made) == 1


def test_clearing_a_cache_forgets_every_threads_entries():
    made = BoundedCache[str]("clear threads test")
    filled = threading.Event()
    cleared = threading.Event()

    def other_thread() -> tuple[str | None, str | None]:
        made.put("key", "value")
        before = made.get("key")
        filled.set()
        cleared.wait(10)
        return before, made.get("key")

    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(other_thread)
        filled.wait(10)
        assert len(made) == 1  # counted from this thread too
        made.clear()
        assert len(made) == 0
        cleared.set()
        assert answer.result() == ("value", None)


def test_each_thread_gets_its_own_parsed_crl_containers(crl_der):
    def twice() -> tuple[Any, Any]:
        with remembered_asn1():
            first = _crl_containers((crl_der,))[0]
            return first, _crl_containers((crl_der,))[0]

    (a1, a2), (b1, b2) = _in_threads(2, twice)
    assert a1 is a2 and b1 is b2
    assert a1 is not b1
    assert a1.crl_data is not b1.crl_data


def test_a_thread_the_verification_hands_work_to_parses_afresh(crl_der):
    """``asyncio.to_thread`` copies the context into a pool thread: what that thread
    parses is not remembered there, or the pool thread would hand the same object to
    the next verification that borrows it."""

    async def verification() -> list[crl.CertificateList]:
        with remembered_asn1():
            own = crl.CertificateList.load(crl_der)
            lent = [await asyncio.to_thread(crl.CertificateList.load, crl_der) for _ in range(2)]
            return [own, crl.CertificateList.load(crl_der), *lent]

    own, again, lent1, lent2 = asyncio.run(verification())
    assert own is again
    assert lent1 is not own and lent2 is not own and lent1 is not lent2


def test_one_threads_budget_does_not_evict_anothers(crl_der, pki, monkeypatch):
    monkeypatch.setattr(verification_asn1, "MAX_PARSED_BYTES_PER_THREAD", len(crl_der) + 10)
    other_der = pki.cas["service-root"].crl(now=datetime.now(UTC))
    kept = threading.Event()
    flooded = threading.Event()

    def keeper() -> bool:
        with remembered_asn1():
            first = crl.CertificateList.load(crl_der)
            kept.set()
            flooded.wait(10)
            return crl.CertificateList.load(crl_der) is first

    def flooder() -> bool:
        kept.wait(10)
        with remembered_asn1():
            crl.CertificateList.load(other_der)  # over this thread's budget with the next
            first = crl.CertificateList.load(crl_der)
            evicted = crl.CertificateList.load(other_der)
        flooded.set()
        return first is not None and evicted is not None

    with ThreadPoolExecutor(2) as pool:
        keeps, floods = pool.submit(keeper), pool.submit(flooder)
        assert floods.result() and keeps.result()


def test_a_finished_threads_parsed_objects_are_freed(crl_der):
    import gc
    import weakref

    refs: list[weakref.ref[x509.Certificate | crl.CertificateList]] = []

    def parse() -> None:
        with remembered_asn1():
            refs.append(weakref.ref(crl.CertificateList.load(crl_der)))

    thread = threading.Thread(target=parse)
    thread.start()
    thread.join()
    gc.collect()
    assert refs[0]() is None


# -- verifications at once -----------------------------------------------------------


@pytest.fixture(scope="module")
def served(base_settings: Settings, hsm: Hsm, pki, tmp_path_factory) -> Iterator[Flask]:
    yield from own_service(base_settings, hsm, tmp_path_factory.mktemp("verify-threads"))


@pytest.fixture(scope="module")
def signed_bid(served: Flask, hsm: Hsm, pki, bid) -> tuple[bytes, str]:
    """A bid signed at B-LTA under a representative's root grant, and the principal."""
    client = served.test_client()
    corp = new_corporation(pki, name="株式会社大理建設")
    yamada = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    root = root_grant(client, corp, yamada)
    context = served.extensions["dairi"]
    with context.session_factory() as session:
        evidence = mandate_evidence(
            context, session, [session.get(Mandate, root["id"])], long_term=True
        )
        session.commit()
    spec = PadesSpec(level=PadesLevel.B_LTA, mandate=evidence)
    return context.pades_signer.sign(bid, yamada.credential, spec).pdf, corp.corporate_number


@pytest.fixture(scope="module")
def trust(served: Flask, pki) -> VerificationTrust:
    return VerificationTrust(
        roots=tuple(c.public_bytes(Encoding.DER) for c in pki.roots().values()),
        aa_certificates=(served.extensions["dairi"].attribute_authority.certificate_der,),
        registration_roots=(pki.roots()["registrar"].public_bytes(Encoding.DER),),
    )


THREADS = 4
ROUNDS = 2
COLD_STARTS = 5


def test_verifications_at_once_report_what_one_alone_does(signed_bid, trust):
    pdf, principal = signed_bid
    at = datetime.now(UTC)
    purpose = Purpose("bid", ENTITY, None, 10_000_000, at)

    def verify() -> dict[str, Any]:
        return verify_pdf(pdf, trust, purpose, principal=principal, at=at).to_json()

    alone = verify()
    (sig,) = alone["signatures"]
    assert (sig["indication"], sig["level"], sig["mandate"]["holds"]) == (
        "TOTAL_PASSED",
        "B-LTA",
        True,
    )
    # Cold caches, and thread switches far more often than usual: the threads parse
    # and fill the caches at the same time.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(COLD_STARTS):
            clear_all()
            verification_asn1.forget_parsed()
            reports = _in_threads(THREADS, lambda: [verify() for _ in range(ROUNDS)])
            assert [r for rounds in reports for r in rounds] == [alone] * (THREADS * ROUNDS)
    finally:
        sys.setswitchinterval(interval)
