"""The web console's cross-device sign-in and its first pages (issue 15), through the
Flask test client: a browser asks, the card approves on another device (the API that
``dairi client approve`` drives), the browser's cookie becomes its session; CSRF,
origin, expiry, sign-out and a revoked card each end or refuse as they should."""

from __future__ import annotations

import base64
import io
import json
import re
from datetime import timedelta

import pytest
from cryptography import x509
from helpers_auth import (
    audit_codes,
    bearer,
    enrolled_employee,
    login,
    move_clock,
    new_card,
    new_corporation,
    problem,
    proof,
    try_enrol,
)
from helpers_mandates import new_employee, root_grant

from app.console.text import TEXT
from app.dev.sample_documents import bid_pdf
from app.factory import create_app
from signing import PadesLevel, PadesSpec

ORIGIN = {"Origin": "http://localhost"}
COOKIE = "dairi_console"


def ask_to_sign_in(browser) -> str:
    """The browser's side: start, follow to the waiting page; the code it shows."""
    started = browser.post("/console/sign-in", headers=ORIGIN)
    assert started.status_code == 303, started.get_data(as_text=True)
    assert started.headers["Location"].endswith("/console/sign-in/wait")
    page = browser.get("/console/sign-in/wait")
    assert page.status_code == 200
    found = re.search(r'id="code">([A-Z]{4}-[A-Z]{4})<', page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)
    return found.group(1)


def approve(device, card, code: str, *, challenge_code: str | None = None):
    """The other device's side (what ``dairi client approve CODE`` sends)."""
    opened = device.post(f"/api/v1/console/sign-ins/{challenge_code or code}/challenge")
    assert opened.status_code == 201, opened.get_json()
    to_sign = base64.b64decode(opened.get_json()["to_sign"])
    return device.post(
        f"/api/v1/console/sign-ins/{code}/approval",
        json={"challenge_id": opened.get_json()["id"], **proof(card, to_sign)},
    )


@pytest.fixture
def world(client, pki):
    corp = new_corporation(pki, name="株式会社大理建設")
    card, person_id, _ = enrolled_employee(client, pki, corp, "山田\u3000太郎")
    return {"corp": corp, "card": card, "person_id": person_id}


def test_a_browser_signs_in_with_a_card_on_another_device(app, client, world):
    browser, device = app.test_client(), client
    assert browser.get("/console/").headers["Location"].endswith("/console/sign-in")
    code = ask_to_sign_in(browser)
    cookie = browser.get_cookie(COOKIE, path="/console")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert not cookie.secure  # the test service is http; https sets Secure
    # Waiting: the code, a QR code as inline SVG, a script from a file (none inline).
    waiting = browser.get("/console/sign-in/wait")
    body = waiting.get_data(as_text=True)
    assert "<svg" in body and not re.search(r"<script(?![^>]*\bsrc=)", body)
    assert re.search(rf"<code>dairi client --url \S+ approve {code}</code>", body), body
    policy = waiting.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in waiting.headers["Content-Security-Policy"]
    assert browser.get("/console/").status_code == 302  # not yet signed in
    assert browser.get("/console/sign-in/status").get_json() == {"state": "pending"}

    opened = device.post(f"/api/v1/console/sign-ins/{code.lower()}/challenge").get_json()
    assert opened["sign_in"]["code"] == code  # the approver sees what they approve
    approved = approve(device, world["card"].authentication, code)
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["caller"]["id"] == world["person_id"]

    assert browser.get("/console/sign-in/status").get_json() == {"state": "approved"}
    moved_on = browser.get("/console/sign-in/wait")
    assert moved_on.status_code == 302 and moved_on.headers["Location"].endswith("/console/")
    home = browser.get("/console/")
    assert home.status_code == 200
    assert "山田\u3000太郎" in home.get_data(as_text=True)
    assert "従業員" in home.get_data(as_text=True)  # the role, in the page's language
    assert home.headers["Cache-Control"] == "no-store"
    # The code is spent: approving it again finds nothing waiting.
    problem(
        device.post(f"/api/v1/console/sign-ins/{code}/challenge"),
        404,
        "CONSOLE_SIGN_IN_NOT_FOUND",
    )
    assert ("console:sign-in:approved", "") in audit_codes(app)


def test_refusals_of_the_approving_device(app, client, pki, world):
    browser, device = app.test_client(), client
    code = ask_to_sign_in(browser)
    other = ask_to_sign_in(app.test_client())
    card = world["card"].authentication
    problem(device.post("/api/v1/console/sign-ins/ABC/challenge"), 422, "CONSOLE_CODE_INVALID")
    problem(
        device.post("/api/v1/console/sign-ins/BCDF-GHJK/challenge"),
        404,
        "CONSOLE_SIGN_IN_NOT_FOUND",
    )
    # A challenge opened for another browser's code does not approve this one.
    problem(approve(device, card, code, challenge_code=other), 409, "CONSOLE_CHALLENGE_MISMATCH")
    # A card that is not enrolled signs nobody in.
    stranger = new_card(pki, "佐々木　次郎").authentication
    problem(approve(device, stranger, code), 403, "CERTIFICATE_NOT_ENROLLED")
    assert browser.get("/console/sign-in/wait").status_code == 200  # still waiting
    # An expired code: the page says so and the device finds nothing to approve.
    move_clock(app, timedelta(seconds=301))
    assert "期限" in browser.get("/console/sign-in/wait").get_data(as_text=True)
    assert browser.get("/console/sign-in/status").get_json() == {"state": "expired"}
    problem(
        device.post(f"/api/v1/console/sign-ins/{code}/challenge"),
        404,
        "CONSOLE_SIGN_IN_NOT_FOUND",
    )
    refused = [code for tag, code in audit_codes(app) if tag == "console:sign-in:refused"]
    assert "CONSOLE_CHALLENGE_MISMATCH" in refused and "CERTIFICATE_NOT_ENROLLED" in refused


def test_forms_need_this_origin_and_the_session_csrf_token(app, client, world):
    browser = app.test_client()
    refused = browser.post("/console/sign-in")  # no Origin: a form of another site?
    assert refused.status_code == 403 and "CSRF_TOKEN_INVALID" in refused.get_data(as_text=True)
    assert "<html" in refused.get_data(as_text=True)  # a page, not JSON
    assert (
        browser.post("/console/sign-in", headers={"Origin": "https://evil.example"}).status_code
        == 403
    )
    code = ask_to_sign_in(browser)
    assert approve(client, world["card"].authentication, code).status_code == 200
    browser.get("/console/sign-in/wait")
    home = browser.get("/console/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', home).group(1)
    assert browser.post("/console/sign-out", headers=ORIGIN).status_code == 403
    wrong = browser.post("/console/sign-out", headers=ORIGIN, data={"csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert browser.get("/console/").status_code == 200  # still signed in
    secret = browser.get_cookie(COOKIE, path="/console").value

    out = browser.post("/console/sign-out", headers=ORIGIN, data={"csrf_token": token})
    assert out.status_code == 303
    assert browser.get_cookie(COOKIE, path="/console") is None
    # The session's secret is dead everywhere, even replayed by hand.
    replay = app.test_client()
    replay.set_cookie(COOKIE, secret, path="/console")
    assert replay.get("/console/").status_code == 302
    problem(client.get("/api/v1/me", headers=bearer(secret)), 401, "TOKEN_INVALID")
    assert ("console:sign-out", "") in audit_codes(app)


def test_a_revoked_card_ends_the_console_session(app, client, pki, world):
    browser = app.test_client()
    code = ask_to_sign_in(browser)
    assert approve(client, world["card"].authentication, code).status_code == 200
    browser.get("/console/sign-in/wait")
    assert browser.get("/console/").status_code == 200
    pki.ca_for_slug("jpki-auth").revoke(
        world["card"].authentication.certificate.serial_number,
        x509.ReasonFlags.key_compromise,
        now=pki.clock(),
    )
    move_clock(app, timedelta(minutes=6))  # past the validator's cached good answer
    assert browser.get("/console/").headers["Location"].endswith("/console/sign-in")


def test_the_mandates_page_lists_what_the_api_lists(app, client, hsm, pki):
    corp = new_corporation(pki, name="株式会社大理建設")
    employee = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    granted = root_grant(client, corp, employee)
    browser = app.test_client()
    code = ask_to_sign_in(browser)
    assert approve(client, corp.representative, code).status_code == 200
    browser.get("/console/sign-in/wait")
    page = browser.get(f"/console/mandates?principal={corp.corporate_number}&status=active")
    assert page.status_code == 200, page.get_data(as_text=True)
    body = page.get_data(as_text=True)
    assert "鈴木\u3000花子" in body and granted["scope"]["actions"][0] in body
    assert "1 件中 1–1 件" in body
    by_action = browser.get(f"/console/mandates?principal={corp.corporate_number}&action=contract")
    assert "該当する委任状はありません" in by_action.get_data(as_text=True)
    by_person = browser.get(f"/console/mandates?grantee={employee.person_id}&action=bid")
    assert "1 件中 1–1 件" in by_person.get_data(as_text=True)
    before = browser.get(
        f"/console/mandates?principal={corp.corporate_number}&status=active"
        "&at=2000-01-01T00:00:00%2B09:00"
    )
    assert "該当する委任状はありません" in before.get_data(as_text=True)
    english = browser.get(f"/console/mandates?principal={corp.corporate_number}&lang=en")
    assert "1–1 of 1" in english.get_data(as_text=True)
    assert browser.get("/console/").get_data(as_text=True).count('lang="en"') >= 1
    # Bad input is the API's refusal, shown as a page.
    bad = browser.get("/console/mandates?principal=123")
    assert bad.status_code == 422 and "<html" in bad.get_data(as_text=True)


def signed_in(app, client, card):
    """A browser signed in with ``card`` (approved from ``client``, the other device)."""
    browser = app.test_client()
    assert approve(client, card, ask_to_sign_in(browser)).status_code == 200
    browser.get("/console/sign-in/wait")
    return browser


def csrf_of(page) -> str:
    return re.search(
        r'name="csrf_token" value="([0-9a-f]{64})"', page.get_data(as_text=True)
    ).group(1)


def test_a_mandate_page_shows_the_chain_and_a_representative_revokes_it(app, client, hsm, pki):
    corp = new_corporation(pki, name="株式会社大理建設")
    employee = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    granted = root_grant(client, corp, employee)
    browser = signed_in(app, client, corp.representative)
    page = browser.get(f"/console/mandates/{granted['id']}")
    assert page.status_code == 200, page.get_data(as_text=True)
    body = page.get_data(as_text=True)
    # The chain as a diagram, with its text for those who do not see it.
    assert '<svg class="chain" role="img"' in body
    assert re.search(r"<title id=\"chain-title\">[^<]*株式会社大理建設[^<]*鈴木\u3000花子", body)
    assert "委任事項: 入札" in body  # the scope in Japanese
    assert "mandate:granted" in body  # its history
    pdf = browser.get(f"/console/mandates/{granted['id']}/document.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    ac = browser.get(f"/console/mandates/{granted['id']}/ac.der")
    assert ac.data == base64.b64decode(granted["attribute_certificate"])

    confirm = browser.get(f"/console/mandates/{granted['id']}/revoke")
    assert confirm.status_code == 200
    token = csrf_of(confirm)
    # Without the session's CSRF token nothing is revoked.
    forged = browser.post(
        f"/console/mandates/{granted['id']}/revoke",
        headers=ORIGIN,
        data={"reason": "privilege_withdrawn"},
    )
    assert forged.status_code == 403
    done = browser.post(
        f"/console/mandates/{granted['id']}/revoke",
        headers=ORIGIN,
        data={"reason": "privilege_withdrawn", "csrf_token": token},
    )
    assert done.status_code == 303 and done.headers["Location"].endswith("?revoked=1")
    # The API sees it at once: the chain no longer holds.
    rep_token = login(client, corp.representative)
    chain = client.get(f"/api/v1/mandates/{granted['id']}/chain", headers=bearer(rep_token))
    assert chain.get_json()["holds"] is False
    assert "MANDATE_REVOKED" in chain.get_json()["reasons"]
    assert ("mandate:revoked", "") in audit_codes(app)
    after = browser.get(done.headers["Location"]).get_data(as_text=True)
    assert "mandate:revoked" in after
    assert 'class="box-bad"' in after and 'class="box-bad"' not in body  # drawn broken


def test_an_employee_may_not_revoke_anothers_grant_from_the_console(app, client, hsm, pki):
    corp = new_corporation(pki, name="株式会社大理建設")
    holder = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    granted = root_grant(client, corp, holder)
    colleague_card, _, _ = enrolled_employee(client, pki, corp, "田中\u3000一郎")
    browser = signed_in(app, client, colleague_card.authentication)
    confirm = browser.get(f"/console/mandates/{granted['id']}/revoke")
    assert confirm.status_code == 200
    refused = browser.post(
        f"/console/mandates/{granted['id']}/revoke",
        headers=ORIGIN,
        data={"reason": "privilege_withdrawn", "csrf_token": csrf_of(confirm)},
    )
    assert refused.status_code == 403 and "<html" in refused.get_data(as_text=True)
    rep_token = login(client, corp.representative)
    chain = client.get(f"/api/v1/mandates/{granted['id']}/chain", headers=bearer(rep_token))
    assert chain.get_json()["holds"] is True
    # Another corporation's mandate is not found, as through the API.
    other = new_corporation(pki, name="合同会社別会社")
    outsider = signed_in(app, client, other.representative)
    assert outsider.get(f"/console/mandates/{granted['id']}").status_code == 404


def signed_bid(app, employee) -> bytes:
    """A bid signed at B-LT by ``employee``'s HSM key (the operator's path: no mandate)."""
    context = app.extensions["dairi"]
    return context.pades_signer.sign(
        bid_pdf(), employee.credential, PadesSpec(level=PadesLevel.B_LT)
    ).pdf


def test_the_verification_page_gives_the_apis_verdict(app, client, hsm, pki):
    corp = new_corporation(pki, name="株式会社大理建設")
    employee = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    signed = signed_bid(app, employee)
    tampered = bytearray(signed)
    tampered[len(tampered) // 3] ^= 0x01
    rep_token = login(client, corp.representative)
    browser = signed_in(app, client, corp.representative)
    form = browser.get("/console/verify")
    assert form.status_code == 200
    token = csrf_of(form)

    def upload(document: bytes, **fields: str):
        return browser.post(
            "/console/verify",
            headers=ORIGIN,
            data={"csrf_token": token, "document": (io.BytesIO(document), "bid.pdf"), **fields},
            content_type="multipart/form-data",
        )

    def api_indication(document: bytes) -> str:
        answer = client.post(
            "/api/v1/verifications",
            headers=bearer(rep_token),
            data={"document": (io.BytesIO(document), "bid.pdf")},
            content_type="multipart/form-data",
        )
        return answer.get_json()["indication"]

    for document in (signed, bytes(tampered)):
        page = upload(document)
        assert page.status_code == 200, page.get_data(as_text=True)
        shown = re.search(r'class="indication [^"]*">([A-Z_]+)<', page.get_data(as_text=True))
        assert shown, page.get_data(as_text=True)[-1500:]
        assert shown.group(1) == api_indication(document)
    assert api_indication(bytes(tampered)) == "TOTAL_FAILED"
    pdf = upload(signed, format="pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    as_json = upload(signed, format="json")
    assert as_json.get_json()["indication"] == api_indication(signed)
    # Bad input: the API's code, on a page.
    refused = upload(b"not a pdf at all")
    assert refused.status_code == 422 and "DOCUMENT_NOT_PDF" in refused.get_data(as_text=True)
    # Not open to anyone unless the operator says so.
    anonymous = app.test_client().get("/console/verify")
    assert anonymous.status_code == 302


def test_the_operator_may_open_verification_to_anyone(app_settings, hsm, pki, client):
    corp = new_corporation(pki, name="株式会社大理建設")
    employee = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    opened = create_app(app_settings.replace(console_open_verification=True), hsm=hsm)
    signed = signed_bid(opened, employee)
    officer = opened.test_client()
    assert officer.get("/console/verify").status_code == 200
    page = officer.post(
        "/console/verify",
        headers=ORIGIN,
        data={"document": (io.BytesIO(signed), "bid.pdf")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 200 and "検証結果" in page.get_data(as_text=True)
    # Still no form from another site.
    assert officer.post("/console/verify", data={}).status_code == 403


def test_the_authority_page_answers_as_the_api(app, client, hsm, pki):
    corp = new_corporation(pki, name="株式会社大理建設")
    employee = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    granted = root_grant(client, corp, employee)
    browser = signed_in(app, client, corp.representative)
    assert "<form" in browser.get("/console/authority").get_data(as_text=True)
    entity = granted["scope"]["procuring_entities"][0]
    asked = browser.get(
        "/console/authority",
        query_string={
            "principal": corp.corporate_number,
            "action": "bid",
            "procuring_entity": entity,
        },
    )
    assert asked.status_code == 200
    assert f'/console/mandates/{granted["id"]}">鈴木\u3000花子' in asked.get_data(as_text=True)
    # Outside the scope: nobody.
    elsewhere = browser.get(
        "/console/authority",
        query_string={
            "principal": corp.corporate_number,
            "action": "bid",
            "procuring_entity": "他の機関",
        },
    )
    assert "該当する人はいません" in elsewhere.get_data(as_text=True)
    # Another corporation: refused as the API refuses it.
    other = new_corporation(pki, name="合同会社別会社")
    refused = browser.get(
        "/console/authority", query_string={"principal": other.corporate_number, "action": "bid"}
    )
    assert refused.status_code == 403


def test_the_audit_page_for_representatives_and_auditors_only(app, client, hsm, pki):
    corp = new_corporation(pki, name="株式会社大理建設")
    employee = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    granted = root_grant(client, corp, employee)
    other = new_corporation(pki, name="合同会社別会社")
    other_employee = new_employee(client, hsm, pki, other, "佐々木\u3000三郎")
    root_grant(client, other, other_employee)
    browser = signed_in(app, client, corp.representative)
    page = browser.get("/console/audit?tag=mandate:*")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert granted["id"] in body and "mandate:granted" in body
    assert other.corporate_number not in body  # a representative sees their own only
    checked = browser.get("/console/audit?check=1").get_data(as_text=True)
    assert "改ざんは見つかりませんでした" in checked
    export = browser.get("/console/audit/export.jsonl?tag=mandate:*")
    events = [json.loads(line) for line in export.get_data(as_text=True).splitlines()]
    assert events and {e["principal"] for e in events} == {corp.corporate_number}
    assert all(e["tag"].startswith("mandate:") for e in events)
    # An employee has no audit page (as the API: 403) and sees no history on a mandate.
    holder = signed_in(app, client, employee_card(client, pki, corp))
    assert holder.get("/console/audit").status_code == 403
    assert "監査担当者・代表者・管理者" in holder.get(
        f"/console/mandates/{granted['id']}"
    ).get_data(as_text=True)


def test_a_representative_sees_the_people_and_invites_one(app, client, pki, world):
    corp = world["corp"]
    browser = signed_in(app, client, corp.representative)
    assert (
        browser.get("/console/people")
        .headers["Location"]
        .endswith(f"/console/corporations/{corp.corporate_number}/people")
    )
    page = browser.get(f"/console/corporations/{corp.corporate_number}/people")
    assert page.status_code == 200
    assert "山田\u3000太郎" in page.get_data(as_text=True)
    issued = browser.post(
        f"/console/corporations/{corp.corporate_number}/invitations",
        headers=ORIGIN,
        data={"name": "佐藤 次郎", "csrf_token": csrf_of(page)},
    )
    assert issued.status_code == 200
    code = re.search(r'id="invitation-code">([^<]+)<', issued.get_data(as_text=True)).group(1)
    # The code enrols the person it names, with their card, through the API.
    card = new_card(pki, "佐藤\u3000次郎")
    assert try_enrol(client, code, card).status_code == 201
    # An employee reads the list but has no invitation form and cannot post one.
    colleague = signed_in(app, client, world["card"].authentication)
    theirs = colleague.get(f"/console/corporations/{corp.corporate_number}/people")
    assert theirs.status_code == 200 and "招待コードを発行" not in theirs.get_data(as_text=True)
    refused = colleague.post(
        f"/console/corporations/{corp.corporate_number}/invitations",
        headers=ORIGIN,
        data={"name": "偽 名", "csrf_token": csrf_of(theirs)},
    )
    assert refused.status_code == 403
    # Another corporation's people: forbidden, as through the API.
    other = new_corporation(pki, name="合同会社別会社")
    assert browser.get(f"/console/corporations/{other.corporate_number}/people").status_code == 403
    assert browser.get("/console/corporations/1234567890123/people").status_code == 422


def employee_card(client, pki, corp):
    card, _, _ = enrolled_employee(client, pki, corp, "田中\u3000一郎")
    return card.authentication


def test_every_word_has_both_languages():
    assert all(len(pair) == 2 and all(pair) for pair in TEXT.values())
