"""A newcomer's stumbles (issue 10 item 10): the served address, the chain's reasons,
a bad 法人番号 in a query, the 電子委任状's times, and the OpenAPI security schemes."""

from __future__ import annotations

import base64
import json

import requests
from live_server import LiveServer

# -- 1. public_base_url follows dairi serve --port --------------------------------

def test_dairi_serve_port_is_the_service_a_challenge_names(app, app_settings, pki):
    """Without DAIRI_PUBLIC_BASE_URL the challenge names the address actually served,
    not the configuration's default port."""
    with LiveServer(app_settings, workers=1, set_public_base_url=False) as server:
        response = requests.post(server.url + "/api/v1/auth/challenges", timeout=30)
        log = server.log()
    assert response.status_code == 201, (response.text, log[-2000:])
    signed = json.loads(base64.b64decode(response.json()["to_sign"]))
    assert signed["service"] == f"http://127.0.0.1:{server.port}"


def test_an_explicit_public_base_url_wins_over_the_port(app, app_settings, pki):
    """A deployment behind a proxy names its public address; serve must not replace it."""
    public = "https://dairi.example.jp"
    with LiveServer(app_settings, workers=1, set_public_base_url=False,
                    env={"DAIRI_PUBLIC_BASE_URL": public}) as server:
        response = requests.post(server.url + "/api/v1/auth/challenges", timeout=30)
    assert response.status_code == 201, response.text
    signed = json.loads(base64.b64decode(response.json()["to_sign"]))
    assert signed["service"] == public
