"""The time-stamping authority fails under the real served process (issue 16 item 7).

``GET /api/v1/mandates/{id}/document`` signs the 電子委任状 PAdES B-T with the
AA's key and asks the TSA at ``tsa_url`` for the signature time-stamp. Here
``tsa_url`` points at a TSA on a loopback port (answered by the development TSA)
that is made to hang and then to refuse connections. A client must see a 503
``TIMESTAMP_FAILED`` with Retry-After (it is the service's trouble, so the
client retries), promptly (``tsa_timeout_seconds``), while ``/readyz`` stays
green (everything but time-stamped documents still works), and the documents
must come back by themselves once the TSA does.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from helpers_auth import bearer, login, new_corporation
from helpers_faults import (
    SERVER_ENV,
    FakeTsa,
    audit_chain_intact,
    code_of,
    refused,
    tracebacks,
    wait_until,
)
from helpers_mandates import new_employee, root_grant, scope
from live_server import LiveServer

pytestmark = pytest.mark.faults

TSA_TIMEOUT_SECONDS = 2
# A document request that meets a dead TSA is answered within this many seconds (the
# TSA time-out is 2 s; the rest is room for a loaded machine).
ANSWER_SECONDS = 15
RECOVERY_SECONDS = 10


def test_a_hanging_or_refusing_tsa_is_a_prompt_503_and_documents_come_back(app, client, hsm, pki):
    corp = new_corporation(pki)
    grantee = new_employee(client, hsm, pki, corp, "山田\u3000太郎")
    # Three mandates (distinct amounts: distinct instructions), one per phase, so no
    # answer can come from a cache of an earlier document.
    mandates = [
        root_grant(client, corp, grantee, scope(amount_limit_jpy=amount))["id"]
        for amount in (1_000_000, 2_000_000, 3_000_000)
    ]
    # Fresh documents (each needs a time-stamp) to let every worker see the TSA again.
    probes = [
        root_grant(client, corp, grantee, scope(amount_limit_jpy=amount))["id"]
        for amount in range(4_000_000, 10_000_000, 1_000_000)
    ]
    headers = bearer(login(client, corp.representative))
    settings = app.extensions["dairi"].settings

    with (
        FakeTsa(pki.tsa.respond) as tsa,
        LiveServer(
            settings,
            workers=2,
            env={
                "DAIRI_TSA_URL": tsa.url,
                "DAIRI_TSA_TIMEOUT_SECONDS": str(TSA_TIMEOUT_SECONDS),
                **SERVER_ENV,
            },
        ) as server,
    ):

        def document(mandate_id: str) -> tuple[requests.Response, float]:
            start = time.monotonic()
            response = requests.get(
                f"{server.url}/api/v1/mandates/{mandate_id}/document",
                headers=headers,
                timeout=ANSWER_SECONDS + 30,
            )
            return response, time.monotonic() - start

        def ok(mandate_id: str) -> bool:
            response, _ = document(mandate_id)
            return response.status_code == 200

        first, _ = document(mandates[0])
        assert first.status_code == 200, first.text[:500]
        assert first.headers["Content-Type"] == "application/pdf"
        assert tsa.requests == 1  # the document was time-stamped by this TSA

        # The TSA accepts the request and never answers.
        tsa.hang()
        with ThreadPoolExecutor(max_workers=2) as pool:
            hung = pool.submit(document, mandates[1])
            time.sleep(0.3)
            # Meanwhile a write elsewhere (a refusal's audit event) still gets through.
            write = pool.submit(lambda: (time.monotonic(), refused(server.url), time.monotonic()))
            response, seconds = hung.result()
            began, write_response, ended = write.result()
        _assert_tsa_unavailable(response)
        assert seconds < ANSWER_SECONDS
        assert write_response.status_code == 401
        ready = requests.get(server.url + "/readyz", timeout=30)
        assert ready.status_code == 200, ready.text  # the TSA is not a readiness check
        hang_seconds, write_seconds = seconds, ended - began

        tsa.answer()
        recovered_hang = wait_until(lambda: ok(mandates[1]), RECOVERY_SECONDS)

        # Nothing listens on the TSA's port: connections are refused.
        tsa.close()
        response, refused_seconds = document(mandates[2])
        _assert_tsa_unavailable(response)
        assert refused_seconds < ANSWER_SECONDS
        assert requests.get(server.url + "/readyz", timeout=30).status_code == 200

        tsa.answer()
        recovered_refused = wait_until(lambda: ok(mandates[2]), RECOVERY_SECONDS)

        # A worker logs the end of an outage at its next good time-stamp; the request
        # above may have reached the other worker, so time-stamp fresh documents two at
        # a time (one per worker while both are busy) until the end is logged.
        def recovery_logged() -> bool:
            if "time-stamping authority recovered" in server.log():
                return True
            pair, probes[:] = probes[:2], probes[2:]
            with ThreadPoolExecutor(max_workers=2) as pool:
                assert all(pool.map(ok, pair))
            return "time-stamping authority recovered" in server.log()

        wait_until(recovery_logged, RECOVERY_SECONDS, interval=0.2)
        log = server.log()

    print(
        f"TSA hanging: 503 after {hang_seconds:.1f} s (a write meanwhile took "
        f"{write_seconds:.1f} s), back {recovered_hang:.2f} s after it answered; "
        f"TSA refusing: 503 after {refused_seconds:.2f} s, back {recovered_refused:.2f} s"
    )
    assert tracebacks(log) == 0, log[-3000:]
    outage_lines = [
        line for line in log.splitlines() if "time-stamping authority unavailable" in line
    ]
    assert 1 <= len(outage_lines) <= 4, log[-3000:]
    assert "time-stamping authority recovered" in log

    # Nothing was half-written: the chain of every mandate holds, the audit chain too.
    for mandate_id in mandates:
        verdict = client.get(f"/api/v1/mandates/{mandate_id}/chain", headers=headers)
        assert verdict.status_code == 200
        assert verdict.get_json()["holds"] is True
    audit_chain_intact(settings.database_url)


def _assert_tsa_unavailable(response: requests.Response) -> None:
    assert response.status_code == 503, response.text[:500]
    assert code_of(response) == "TIMESTAMP_FAILED"
    assert int(response.headers["Retry-After"]) > 0
