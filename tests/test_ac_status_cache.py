"""Anonymous and reader requests do not make the HSM sign per request (issue 9.12): the
AA's CRL is published once per validity period and re-made at once on a revocation, OCSP
answers are reused per certificate for a short window, and the signed 電子委任状 is made
once per mandate and status. HSM signatures by the AA key are counted by wrapping the
process's ``Hsm.sign``; time-stamp requests by wrapping the development TSA."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from asn1crypto import cms, ocsp
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from helpers_auth import bearer, login, move_clock, new_corporation
from helpers_mandates import new_employee, root_grant, sub_grant
from live_server import LiveServer
from pyhanko_certvalidator.authority import AuthorityWithCert
from pyhanko_certvalidator.fetchers.common_utils import format_ocsp_request
from test_mandate_document import _pdf_pages

from app.mandates.publication import AC_CRL_VALIDITY, AC_OCSP_REUSE
from delegation.verify import serial_of
from devpki.tsa import DevTsa


@pytest.fixture
def chain(client, hsm, pki):
    a = new_corporation(pki, name="株式会社大理建設")
    yamada = new_employee(client, hsm, pki, a, "山田\u3000太郎")
    suzuki = new_employee(client, hsm, pki, a, "鈴木\u3000花子")
    root = root_grant(client, a, yamada)
    child = sub_grant(client, hsm, a, root, yamada, suzuki)
    return {"a": a, "yamada": yamada, "suzuki": suzuki, "root": root, "child": child}


@pytest.fixture
def aa_signatures(app, monkeypatch) -> list[int]:
    """Every signature the process's HSM makes with the AA key, as it happens."""
    context = app.extensions["dairi"]
    aa_key = context.dev_pki.aa_key
    original = context.hsm.sign
    made: list[int] = []

    def counting(ref, data, **kwargs):
        if ref == aa_key:
            made.append(len(data))
        return original(ref, data, **kwargs)

    monkeypatch.setattr(context.hsm, "sign", counting)
    return made


@pytest.fixture
def tsa_requests(monkeypatch) -> list[int]:
    """Every request the development TSA answers."""
    original = DevTsa.respond
    made: list[int] = []

    def counting(self, request_der):
        made.append(len(request_der))
        return original(self, request_der)

    monkeypatch.setattr(DevTsa, "respond", counting)
    return made


def revoke(client, corp, mandate_id: str) -> None:
    response = client.post(
        f"/api/v1/mandates/{mandate_id}/revocation",
        json={},
        headers=bearer(login(client, corp.representative)),
    )
    assert response.status_code == 200, response.get_json()


def crl_of(der: bytes) -> tuple[int, set[int], datetime, datetime]:
    """(CRL number, revoked serials, thisUpdate, nextUpdate)."""
    tbs = asn1_crl.CertificateList.load(der)["tbs_cert_list"]
    number = next(
        e["extn_value"].native for e in tbs["crl_extensions"] if e["extn_id"].native == "crl_number"
    )
    serials = {e["user_certificate"].native for e in tbs["revoked_certificates"]}
    return number, serials, tbs["this_update"].native, tbs["next_update"].native


def ocsp_request(client, mandate: dict) -> bytes:
    """A request as pyhanko-certvalidator formats it: one CertID and a fresh nonce."""
    import base64

    from asn1crypto import pem

    aa = asn1_x509.Certificate.load(pem.unarmor(client.get("/ac/aa.pem").data)[2])
    ac = cms.AttributeCertificateV2.load(base64.b64decode(mandate["attribute_certificate"]))
    return format_ocsp_request(
        ac, AuthorityWithCert(aa), certid_hash_algo="sha1", request_nonces=True
    ).dump()


def ocsp_status(response_der: bytes) -> tuple[str, datetime]:
    """(certificate status, thisUpdate) of a successful one-certificate answer."""
    response = ocsp.OCSPResponse.load(response_der)
    assert response["response_status"].native == "successful"
    [single] = response["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
    return single["cert_status"].name, single["this_update"].native


# -- the AC CRL ---------------------------------------------------------------------


def test_two_crl_fetches_in_a_row_are_identical(client, app, chain, aa_signatures):
    first = client.get("/ac/crl")
    assert first.status_code == 200 and first.content_type == "application/pkix-crl"
    move_clock(app, timedelta(seconds=3))  # a later second: a fresh CRL would differ
    second = client.get("/ac/crl")
    assert second.data == first.data
    assert len(aa_signatures) <= 1


def test_a_revocation_is_on_the_next_crl_at_once(client, app, chain, aa_signatures):
    number, serials, _, _ = crl_of(client.get("/ac/crl").data)
    assert serials == set()
    revoke(client, chain["a"], chain["root"]["id"])
    after, serials, this_update, _ = crl_of(client.get("/ac/crl").data)
    assert serials == {serial_of(chain["root"]["id"]), serial_of(chain["child"]["id"])}
    assert after > number
    assert this_update <= datetime.now(UTC)
    signed = len(aa_signatures)
    assert client.get("/ac/crl").data == client.get("/ac/crl").data
    assert len(aa_signatures) == signed


def test_the_crl_is_re_made_shortly_before_its_next_update(client, app, chain):
    number, _, _, next_update = crl_of(client.get("/ac/crl").data)
    assert next_update - datetime.now(UTC) > AC_CRL_VALIDITY - timedelta(minutes=1)
    move_clock(app, AC_CRL_VALIDITY - timedelta(minutes=1))
    later, _, _, later_next = crl_of(client.get("/ac/crl").data)
    assert later > number
    assert later_next > next_update
    # Never handed out close to or past its nextUpdate.
    assert later_next - app.extensions["dairi"].clock() > timedelta(minutes=5)


# -- OCSP ---------------------------------------------------------------------------


def test_fifty_ocsp_requests_for_one_serial_sign_once(client, app, chain, aa_signatures):
    child = chain["child"]
    requests_ = [ocsp_request(client, child) for _ in range(50)]
    assert len(set(requests_)) == 50  # every request carries its own nonce
    answers = [
        client.post("/ac/ocsp", data=r, content_type="application/ocsp-request") for r in requests_
    ]
    assert {ocsp_status(a.data)[0] for a in answers} == {"good"}
    assert len(aa_signatures) <= 1

    # A revocation is reflected at once, not when the cached answer ages out.
    revoke(client, chain["a"], child["id"])
    signed = len(aa_signatures)
    status, _ = ocsp_status(
        client.post(
            "/ac/ocsp", data=ocsp_request(client, child), content_type="application/ocsp-request"
        ).data
    )
    assert status == "revoked"
    for _ in range(20):
        client.post(
            "/ac/ocsp", data=ocsp_request(client, child), content_type="application/ocsp-request"
        )
    assert len(aa_signatures) == signed + 1


def test_an_ocsp_answer_is_renewed_after_its_window(client, app, chain, aa_signatures):
    root = chain["root"]
    _, first = ocsp_status(client.post("/ac/ocsp", data=ocsp_request(client, root)).data)
    move_clock(app, AC_OCSP_REUSE + timedelta(seconds=1))
    _, second = ocsp_status(client.post("/ac/ocsp", data=ocsp_request(client, root)).data)
    assert second > first
    assert len(aa_signatures) == 2


def test_serials_the_aa_never_issued_are_not_signed_for(client, app, chain, aa_signatures):
    request = ocsp.OCSPRequest.load(ocsp_request(client, chain["root"]))
    request["tbs_request"]["request_list"][0]["req_cert"]["serial_number"] = 123456789
    response = client.post("/ac/ocsp", data=request.dump(), content_type="application/ocsp-request")
    assert ocsp.OCSPResponse.load(response.data)["response_status"].native == "unauthorized"
    assert aa_signatures == []


# -- the signed 電子委任状 ------------------------------------------------------------


def test_the_document_is_signed_once_per_status(client, app, chain, aa_signatures, tsa_requests):
    child, suzuki = chain["child"], chain["suzuki"]
    url = f"/api/v1/mandates/{child['id']}/document"
    first = client.get(url, headers=bearer(suzuki.token))
    assert first.status_code == 200, first.get_json()
    move_clock(app, timedelta(seconds=3))
    second = client.get(url, headers=bearer(suzuki.token))
    # Another reader gets the same document.
    third = client.get(url, headers=bearer(chain["yamada"].token))
    assert first.data == second.data == third.data
    assert len(tsa_requests) == 1
    assert len(aa_signatures) == 1
    assert "状態: 有効" in "\n".join(_pdf_pages(first.data)[0])

    # Revoking the parent changes what the document says at once.
    revoke(client, chain["a"], chain["root"]["id"])
    after = client.get(url, headers=bearer(suzuki.token))
    assert after.status_code == 200 and after.data != first.data
    assert "状態: 失効" in "\n".join(_pdf_pages(after.data)[0])
    assert len(tsa_requests) == 2
    assert client.get(url, headers=bearer(suzuki.token)).data == after.data
    assert len(tsa_requests) == 2


# -- across gunicorn workers ----------------------------------------------------------


def test_two_workers_serve_one_crl_and_see_revocations_at_once(client, app, app_settings, chain):
    child = chain["child"]
    request = ocsp_request(client, child)  # the nonce does not matter to the answer

    def fetch(url: str) -> tuple[bytes, str]:
        # A new connection per request, so either worker may answer.
        with requests.Session() as http:
            crl = http.get(url + "/ac/crl", timeout=30)
            answer = http.post(
                url + "/ac/ocsp",
                data=request,
                timeout=30,
                headers={"Content-Type": "application/ocsp-request"},
            )
        assert crl.status_code == 200 and answer.status_code == 200
        return crl.content, ocsp_status(answer.content)[0]

    with LiveServer(app_settings, workers=2) as server:
        with ThreadPoolExecutor(max_workers=4) as pool:
            before = list(pool.map(lambda _: fetch(server.url), range(16)))
        # The revocation is written by another process (this test's app).
        revoke(client, chain["a"], child["id"])
        with ThreadPoolExecutor(max_workers=4) as pool:
            after = list(pool.map(lambda _: fetch(server.url), range(16)))
        log = server.log()
    assert len({crl for crl, _ in before}) == 1, log[-3000:]
    assert {status for _, status in before} == {"good"}
    assert len({crl for crl, _ in after}) == 1
    assert {status for _, status in after} == {"revoked"}
    assert serial_of(child["id"]) in crl_of(after[0][0])[1]
