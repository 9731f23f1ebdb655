"""The console in a real browser (issue 15): Debian's chromium driven by Playwright,
headless, against the served process (gunicorn, two workers). The sign-in goes through
the cross-device flow (the card approves on "another device": the client library in
this process), with the keyboard only; axe-core finds no serious or critical
violation on any page; a screenshot of each page is written to
``var/console-screenshots/`` for a person to look at."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers_auth import enrolled_employee, new_corporation
from helpers_mandates import new_employee, root_grant, scope, sub_grant
from live_server import LiveServer

from app.client.api import ApiClient
from app.client.cards import SoftwareCard
from app.client.console import approve_sign_in
from app.dev.sample_documents import bid_pdf
from app.people.models import Role, RoleAssignment
from signing import PadesLevel, PadesSpec

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "console-screenshots"

playwright_api = pytest.importorskip("playwright.sync_api")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium missing")


def representative_card(corp) -> SoftwareCard:
    return SoftwareCard(
        corp.representative.key, corp.representative.certificate.public_bytes(Encoding.DER)
    )


def serious_violations(page) -> list[str]:
    results = axe_api.Axe().run(page)
    return [
        f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes)"
        for v in results.response["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


def look(page, name: str) -> None:
    """A screenshot for a person, and axe's verdict."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    assert serious_violations(page) == [], name


def test_a_representative_signs_in_with_the_keyboard_and_reads_the_pages(
    app, client, app_settings, hsm, pki, tmp_path
):
    # The served process and this test's app share the database: the mandate is
    # granted through the test client, then read and revoked in the browser.
    corp = new_corporation(pki, name="株式会社ブラウザ商事")
    employee = new_employee(client, hsm, pki, corp, "鈴木\u3000花子")
    root = root_grant(client, corp, employee, scope(max_depth=1))
    sub_holder = new_employee(client, hsm, pki, corp, "田中\u3000一郎")
    sub = sub_grant(client, hsm, corp, root, employee, sub_holder)
    signed = tmp_path / "入札書-signed.pdf"
    signed.write_bytes(
        app.extensions["dairi"]
        .pades_signer.sign(bid_pdf(), employee.credential, PadesSpec(level=PadesLevel.B_LT))
        .pdf
    )
    # Playwright's sync API runs an event loop in this thread: the set-up above (whose
    # validation runs its own) is done before it starts.
    with LiveServer(app_settings, workers=2) as server, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            browse(server, browser, corp, root, sub, signed)
        finally:
            browser.close()


def browse(server, browser, corp, root: dict, sub: dict, signed: Path) -> None:
    context = browser.new_context(locale="ja-JP", viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.goto(server.url + "/console/")
    assert page.url.endswith("/console/sign-in")
    look(page, "sign-in")

    # Keyboard only: the skip link, the menu's language link, then the button.
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.type") == "submit":
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/sign-in/wait")
    code = page.inner_text("#code")
    assert page.locator("figure.qr svg").count() == 1
    look(page, "sign-in-wait")

    with ApiClient(server.url) as device:
        approved = approve_sign_in(device, representative_card(corp), code)
    assert approved["caller"]["representative_of"] == [corp.corporate_number]
    page.wait_for_url("**/console/", timeout=15_000)  # the page's refresh moves on
    assert "佐藤" in page.inner_text("main")
    look(page, "home")

    page.goto(server.url + "/console/mandates")
    look(page, "mandates")
    page.goto(server.url + "/console/mandates?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    look(page, "mandates-en")
    page.goto(server.url + "/console/mandates?lang=ja")
    page.get_by_role("link", name="田中\u3000一郎").click()  # the sub-delegation
    page.wait_for_url(f"**/console/mandates/{sub['id']}")
    assert page.locator("svg.chain g").count() == 3  # principal, agent, sub-agent
    look(page, "mandate")

    entity = quote(root["scope"]["procuring_entities"][0])
    page.goto(
        server.url + f"/console/authority?principal={corp.corporate_number}&action=bid"
        f"&procuring_entity={entity}"
    )
    assert page.get_by_role("link", name="鈴木\u3000花子").count() >= 1
    look(page, "authority")
    page.get_by_role("link", name="従業員").click()
    page.wait_for_url(f"**/console/corporations/{corp.corporate_number}/people")
    look(page, "people")
    page.fill("#name", "佐藤 次郎")
    page.get_by_role("button", name="招待コードを発行").click()
    page.wait_for_selector("#invitation-code")
    look(page, "invitation")
    page.goto(server.url + "/console/audit?check=1")
    assert "改ざんは見つかりませんでした" in page.inner_text("main")
    look(page, "audit")

    # Revoke the root from its page, with the keyboard, after the confirmation page.
    page.goto(server.url + f"/console/mandates/{root['id']}")
    page.get_by_role("link", name="この委任状を失効させる").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/mandates/{root['id']}/revoke")
    look(page, "mandate-revoke")
    page.get_by_role("button", name="失効させる").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/mandates/{root['id']}?revoked=1")
    assert "委任状を失効させました" in page.inner_text("main")
    look(page, "mandate-revoked")
    # The sub-delegation under it is revoked too, as the API says.
    with ApiClient(server.url) as api:
        api.login(representative_card(corp))
        judged = api.call("GET", f"/api/v1/mandates/{sub['id']}/chain")
    assert judged["holds"] is False

    # Verification: upload the signed bid, read the verdict.
    page.get_by_role("link", name="検証").click()
    page.wait_for_url("**/console/verify")
    look(page, "verify")
    page.set_input_files("#document", str(signed))
    page.get_by_role("button", name="検証する").click()
    page.wait_for_selector("pre.report")
    assert page.inner_text("h2 .indication") == "TOTAL_PASSED"
    look(page, "verify-result")

    page.get_by_role("button", name="サインアウト").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/sign-in")
    page.goto(server.url + "/console/")
    assert page.url.endswith("/console/sign-in")
    context.close()


@contextlib.contextmanager
def signed_in_browser(settings, authentication_key) -> Iterator[tuple[LiveServer, Any]]:
    """The served process and a browser page signed in with a My Number Card's
    authentication key, through the sign-in page and the card's approval."""
    card = SoftwareCard(
        authentication_key.key, authentication_key.certificate.public_bytes(Encoding.DER)
    )
    with LiveServer(settings, workers=2) as server, playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_context(locale="ja-JP").new_page()
            page.goto(server.url + "/console/sign-in")
            page.get_by_role("button", name="コードを表示する").click()
            page.wait_for_url("**/console/sign-in/wait")
            with ApiClient(server.url) as device:
                approve_sign_in(device, card, page.inner_text("#code"))
            page.wait_for_url("**/console/", timeout=15_000)
            yield server, page
        finally:
            browser.close()


def test_an_employee_reads_what_employees_may_and_is_refused_the_rest(client, app_settings, pki):
    corp = new_corporation(pki, name="株式会社ブラウザ商事")
    card, _, _ = enrolled_employee(client, pki, corp, "山田\u3000太郎")
    with signed_in_browser(app_settings, card.authentication) as (server, page):
        assert "従業員" in page.inner_text("main")
        assert page.get_by_role("link", name="監査").count() == 0  # not offered
        page.goto(server.url + "/console/people")
        assert page.get_by_role("button", name="招待コードを発行").count() == 0
        page.goto(server.url + "/console/audit")  # asked for anyway
        assert "403" in page.inner_text("h1") and "FORBIDDEN" in page.inner_text("h1")
        look(page, "employee-audit-forbidden")


def test_an_auditor_reads_every_corporation_and_no_one_may_invite(
    app, client, app_settings, hsm, pki
):
    first = new_corporation(pki, name="株式会社一番商事")
    second = new_corporation(pki, name="株式会社二番商事")
    for corp, name in ((first, "鈴木\u3000花子"), (second, "佐々木\u3000三郎")):
        root_grant(client, corp, new_employee(client, hsm, pki, corp, name))
    card, person_id, _ = enrolled_employee(client, pki, first, "監査\u3000太郎")
    with app.extensions["dairi"].session_factory() as session:
        session.add(RoleAssignment(person_id=person_id, role=Role.AUDITOR.value, granted_by="test"))
        session.commit()
    with signed_in_browser(app_settings, card.authentication) as (server, page):
        assert "監査担当者" in page.inner_text("main")
        page.get_by_role("link", name="委任状", exact=True).click()
        listed = page.inner_text("main")
        assert "鈴木\u3000花子" in listed and "佐々木\u3000三郎" in listed  # both
        page.get_by_role("link", name="監査").click()
        page.wait_for_url("**/console/audit")
        assert second.corporate_number in page.inner_text("main")
        look(page, "auditor-audit")
        page.goto(server.url + f"/console/corporations/{second.corporate_number}/people")
        assert page.get_by_role("button", name="招待コードを発行").count() == 0
        look(page, "auditor-people")
