"""Concurrent revocation and issuance never leave a child valid under a revoked parent,
on PostgreSQL (row locks) and on SQLite (each transaction takes the write lock at
its start: SQLite ignores ``FOR UPDATE``)."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

from helpers_auth import new_corporation
from helpers_mandates import instruction, new_employee, root_grant, scope, sub_grant
from sqlalchemy import select

from app.mandates.models import Mandate
from app.mandates.service import MandateService
from app.people.caller import Caller, CallerKind
from app.unit_of_work import unit_of_work
from delegation.instruction import DelegationRefused
from signing import sign_detached

ROUNDS = 4
GRANTS_PER_ROUND = 4


def service(context, session) -> MandateService:
    return MandateService(
        session,
        context.settings,
        context.certificate_validator,
        context.attribute_authority,
        context.clock,
    )


def test_no_child_stays_valid_under_a_revoked_parent(client, app, hsm, pki):
    context = app.extensions["dairi"]
    corp = new_corporation(pki, name="株式会社大理建設")
    yamada = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    suzuki = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    sato = new_employee(client, hsm, pki, corp, "佐藤\u3000次郎")
    representative = Caller(
        CallerKind.REPRESENTATIVE,
        "test",
        "代表",
        representative_of=frozenset({corp.corporate_number}),
    )
    employee = Caller(
        CallerKind.PERSON,
        suzuki.person_id,
        suzuki.name,
        employee_of=frozenset({corp.corporate_number}),
    )
    outcomes: dict[str, int] = {"granted": 0, "refused": 0}
    for _ in range(ROUNDS):
        root = root_grant(client, corp, yamada, scope(max_depth=2))
        child = sub_grant(client, hsm, corp, root, yamada, suzuki, scope(max_depth=1))
        signed = []
        for n in range(GRANTS_PER_ROUND):
            data = instruction(
                corp,
                sato,
                scope(max_depth=0, amount_limit_jpy=1000 + n),
                parent=child["id"],
                grantor_name=suzuki.name,
                grantor_title=None,
            )
            signed.append((data, sign_detached(hsm, suzuki.credential, data)))
        start = threading.Barrier(GRANTS_PER_ROUND + 1)

        def revoke(root_id: str = root["id"], barrier: threading.Barrier = start) -> str:
            with unit_of_work(context.session_factory) as session:
                barrier.wait()
                service(context, session).revoke(root_id, actor=representative)
                return "revoked"

        def grant(item: tuple[bytes, bytes], barrier: threading.Barrier = start) -> str:
            data, signatures = item
            try:
                with unit_of_work(context.session_factory) as session:  # commits the grant
                    barrier.wait()
                    service(context, session).grant(
                        data,
                        signatures,
                        grantee_certificate=sato.certificate,
                        grantee_person_id=sato.person_id,
                        actor=employee,
                    )
                return "granted"
            except DelegationRefused as exc:
                assert exc.code == "ANCESTOR_REVOKED", exc.code
                return "refused"

        with ThreadPoolExecutor(GRANTS_PER_ROUND + 1) as pool:
            futures = [pool.submit(revoke)] + [pool.submit(grant, item) for item in signed]
            results = [f.result(timeout=60) for f in futures]
        assert results[0] == "revoked"
        granted_now = results[1:].count("granted")
        outcomes["granted"] += granted_now
        outcomes["refused"] += results[1:].count("refused")

        with context.session_factory() as session:
            rows = session.scalars(
                select(Mandate).where(Mandate.principal == corp.corporate_number)
            ).all()
            by_id = {r.id: r for r in rows}
            for row in rows:
                ancestor = row
                while ancestor.parent_id is not None:
                    ancestor = by_id[ancestor.parent_id]
                    if ancestor.revoked_at is not None:
                        assert row.revoked_at is not None, (
                            f"{row.id} stayed valid under revoked {ancestor.id}"
                        )
            assert all(
                r.revoked_at is not None
                for r in rows
                if r.id == root["id"] or r.parent_id == child["id"]
            )
            # Every grant answered "granted" left exactly one mandate under the child,
            # and every refused one left none (no half-written state).
            under_child = [r for r in rows if r.parent_id == child["id"]]
            assert len(under_child) == granted_now, (len(under_child), results)
            granted_digests = {
                hashlib.sha256(data).hexdigest()
                for (data, _), result in zip(signed, results[1:], strict=True)
                if result == "granted"
            }
            assert {r.instruction_sha256 for r in under_child} == granted_digests
    # Both sides of the race are exercised over the rounds is not guaranteed on a loaded
    # machine, so it is reported, not asserted.
    print(f"race outcomes over {ROUNDS} rounds: {outcomes}")
