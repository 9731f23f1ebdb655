"""The console in a real browser (issue 15): Debian's chromium driven by Playwright,
headless, against the served process (gunicorn, two workers). The sign-in goes through
the cross-device flow (the card approves on "another device": the client library in
this process), with the keyboard only; axe-core finds no serious or critical
violation on any page; a screenshot of each page is written to
``var/console-screenshots/`` for a person to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers_auth import new_corporation
from live_server import LiveServer

from app.client.api import ApiClient
from app.client.cards import SoftwareCard
from app.client.console import approve_sign_in
from app.migrate import migrate

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "console-screenshots"

playwright_api = pytest.importorskip("playwright.sync_api")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium missing")


@pytest.fixture(scope="module")
def server(base_settings, tmp_path_factory):
    data = tmp_path_factory.mktemp("console-browser")
    settings = base_settings.replace(
        database_url=f"sqlite:///{data / 'dairi.db'}", data_dir=str(data)
    )
    migrate(settings.database_url)
    with LiveServer(settings, workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


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


def test_a_representative_signs_in_with_the_keyboard_and_reads_the_pages(server, browser, pki):
    corp = new_corporation(pki, name="株式会社ブラウザ商事")
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
        representative = SoftwareCard(
            corp.representative.key, corp.representative.certificate.public_bytes(Encoding.DER)
        )
        approved = approve_sign_in(device, representative, code)
    assert approved["caller"]["representative_of"] == [corp.corporate_number]
    page.wait_for_url("**/console/", timeout=15_000)  # the page's refresh moves on
    assert "佐藤" in page.inner_text("main")
    look(page, "home")

    page.goto(server.url + "/console/mandates")
    look(page, "mandates")
    page.goto(server.url + "/console/mandates?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    look(page, "mandates-en")

    page.get_by_role("button", name="Sign out").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/sign-in")
    page.goto(server.url + "/console/")
    assert page.url.endswith("/console/sign-in")
    context.close()
