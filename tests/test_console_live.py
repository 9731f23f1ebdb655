"""The console's cross-device sign-in against the real served process (gunicorn, two
workers): a browser (a requests session sending what a browser sends) asks to sign in,
``dairi client approve CODE`` approves it with a representative's card directory, and
the browser's cookie is then a session on every worker, until it signs out."""

from __future__ import annotations

import json
import re

import pytest
import requests
from click.testing import CliRunner
from helpers_auth import new_corporation
from live_server import LiveServer

from app.cli.main import main
from app.migrate import migrate
from devpki.cards import save_card


@pytest.fixture(scope="module")
def server(base_settings, tmp_path_factory):
    data = tmp_path_factory.mktemp("console-live")
    settings = base_settings.replace(
        database_url=f"sqlite:///{data / 'dairi.db'}", data_dir=str(data)
    )
    migrate(settings.database_url)
    with LiveServer(settings, workers=2) as live:
        yield live


def approve(server, tmp_path, card_dir, code: str):
    return CliRunner().invoke(
        main,
        [
            "client",
            "--url",
            server.url,
            "--state",
            str(tmp_path / "state.json"),
            "--json",
            "approve",
            code,
            "--card",
            str(card_dir),
        ],
    )


def test_dairi_client_approve_signs_a_browser_in(server, pki, tmp_path):
    corp = new_corporation(pki, name="株式会社コンソール商事")
    save_card(corp.representative, tmp_path / "rep")
    browser = requests.Session()
    browser.headers["Origin"] = server.url  # what a browser sends with a form
    started = browser.post(server.url + "/console/sign-in", allow_redirects=False)
    assert started.status_code == 303
    set_cookie = started.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Path=/console" in set_cookie
    waiting = browser.get(server.url + "/console/sign-in/wait")
    code = re.search(r'id="code">([A-Z]{4}-[A-Z]{4})<', waiting.text).group(1)

    refused = approve(server, tmp_path, tmp_path / "rep", "BCDF-GHJK")
    assert refused.exit_code == 2 and "CONSOLE_SIGN_IN_NOT_FOUND" in refused.stderr
    done = approve(server, tmp_path, tmp_path / "rep", code.lower())
    assert done.exit_code == 0, (done.output, done.stderr)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["sign_in"]["code"] == code
    assert answer["caller"]["representative_of"] == [corp.corporate_number]

    home = browser.get(server.url + "/console/sign-in/wait")  # follows to /console/
    assert home.url.endswith("/console/") and home.status_code == 200
    # Each of several requests lands on either worker: the session holds on both.
    pages = [browser.get(server.url + "/console/") for _ in range(8)]
    assert {p.status_code for p in pages} == {200}
    assert all(corp.corporate_number in p.text for p in pages)
    token = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', home.text).group(1)
    out = browser.post(
        server.url + "/console/sign-out", data={"csrf_token": token}, allow_redirects=False
    )
    assert out.status_code == 303
    after = browser.get(server.url + "/console/", allow_redirects=False)
    assert after.status_code == 302 and after.headers["Location"].endswith("/console/sign-in")
