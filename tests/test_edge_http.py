"""The HTTP edge (issue 9 items 11, 13, 15): body caps that hold for chunked bodies,
the security headers of every response, and where the served process keeps its
control socket. Through the test client, and against the real server (`dairi serve`)
where the defect showed there.

The caps asserted here are the documented ones: 64 KiB for the development PKI's
OCSP and TSA requests and for JSON bodies, 16 KiB for the AA's OCSP requests.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import socket
import stat
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from asn1crypto import tsp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from helpers_auth import bearer, new_corporation, try_login
from live_server import LiveServer

from app.factory import create_app

PROBLEM = "application/problem+json"
KIB = 1024
# (path, content type, cap in bytes)
CAPPED = [
    ("/pki/ocsp/service-root", "application/ocsp-request", 64 * KIB),
    ("/pki/tsa", "application/timestamp-query", 64 * KIB),
    ("/ac/ocsp", "application/ocsp-request", 16 * KIB),
    ("/api/v1/auth/challenges", "application/json", 64 * KIB),
]
HUGE = 50 * 1024 * KIB


class Endless(io.RawIOBase):
    """A request body of ``size`` bytes made on demand, counting what the server read.
    Not seekable, so nothing learns its length but by reading it."""

    def __init__(self, size: int, fill: bytes = b" ") -> None:
        self.size = size
        self.fill = fill
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        n = min(len(buffer), self.size - self.consumed)
        buffer[:n] = self.fill * n
        self.consumed += n
        return n


def _chunked(client, path: str, content_type: str, stream: io.RawIOBase):
    # The test client wants a seekable body; the stream goes in as the server's input.
    # gunicorn de-chunks a body and marks its stream as ending (wsgi.input_terminated).
    return client.post(
        path,
        headers={"Content-Type": content_type, "Transfer-Encoding": "chunked"},
        environ_overrides={
            "wsgi.input": stream,
            "CONTENT_LENGTH": "",
            "wsgi.input_terminated": True,
        },
    )


def _assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data()[:300]
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["code"] == code
    return body


def _ocsp_request(pki) -> bytes:
    ca = pki.cas["service-root"].certificate
    builder = ocsp.OCSPRequestBuilder().add_certificate(pki.tsa_certificate, ca, hashes.SHA1())
    return builder.build().public_bytes(serialization.Encoding.DER)


def _tsa_query() -> bytes:
    return tsp.TimeStampReq(
        {
            "version": 1,
            "message_imprint": {
                "hash_algorithm": {"algorithm": "sha256"},
                "hashed_message": b"\x01" * 32,
            },
            "cert_req": True,
        }
    ).dump()


# -- body caps through the test client ------------------------------------------


@pytest.mark.parametrize(("path", "content_type", "cap"), CAPPED)
def test_a_chunked_body_past_the_cap_is_refused_after_cap_plus_one_bytes(
    client, pki, path, content_type, cap
):
    body = Endless(HUGE)
    _assert_problem(_chunked(client, path, content_type, body), 413, "PAYLOAD_TOO_LARGE")
    assert body.consumed <= cap + 1


@pytest.mark.parametrize(("path", "content_type", "cap"), CAPPED)
def test_a_declared_length_past_the_cap_is_refused_unread(client, pki, path, content_type, cap):
    body = Endless(cap + 1)
    response = client.post(
        path,
        headers={"Content-Type": content_type},
        environ_overrides={
            "wsgi.input": body,
            "CONTENT_LENGTH": str(cap + 1),
            "wsgi.input_terminated": True,
        },
    )
    _assert_problem(response, 413, "PAYLOAD_TOO_LARGE")
    assert body.consumed == 0


def test_a_json_body_of_exactly_the_cap_is_read_one_byte_more_is_not(client, pki):
    cap = 64 * KIB
    document = b'{"purpose": "login"}'
    exact = Endless(cap - len(document))  # JSON allows trailing white space
    response = _chunked(
        client, "/api/v1/auth/challenges", "application/json", _Concat(document, exact)
    )
    assert response.status_code == 201, response.get_json()
    over = _Concat(document, Endless(cap - len(document) + 1))
    _assert_problem(
        _chunked(client, "/api/v1/auth/challenges", "application/json", over),
        413,
        "PAYLOAD_TOO_LARGE",
    )


def test_chunked_protocol_requests_within_the_cap_are_answered(client, pki):
    response = _chunked(
        client, "/pki/ocsp/service-root", "application/ocsp-request", io.BytesIO(_ocsp_request(pki))
    )
    assert response.status_code == 200
    assert ocsp.load_der_ocsp_response(response.data).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )
    reply = _chunked(client, "/pki/tsa", "application/timestamp-query", io.BytesIO(_tsa_query()))
    assert tsp.TimeStampResp.load(reply.data)["status"]["status"].native == "granted"


class _Concat(io.RawIOBase):
    def __init__(self, head: bytes, tail: io.RawIOBase) -> None:
        self.head = io.BytesIO(head)
        self.tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        n = self.head.readinto(buffer)
        return n if n else self.tail.readinto(buffer)


# -- body caps against the real server --------------------------------------------


def _upload_chunked(port: int, path: str, content_type: str, total: int):
    """Send ``total`` bytes as a chunked body while reading the answer; returns the
    answer and how many bytes had been handed to the socket when it came."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}"
            "\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    piece = 64 * KIB
    chunk = b"%x\r\n" % piece + b"x" * piece + b"\r\n"
    sent = [0]
    stop = threading.Event()

    def send() -> None:
        try:
            while sent[0] < total and not stop.is_set():
                sock.sendall(chunk)
                sent[0] += piece
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection after answering

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        sent_when_answered = sent[0]
        body = answer.read()
    finally:
        stop.set()
        sender.join(timeout=30)
        sock.close()
    return answer.status, answer.getheader("Content-Type"), body, sent_when_answered


def test_the_served_process_refuses_large_chunked_bodies(app, app_settings, pki):
    with LiveServer(app_settings, workers=2) as server:
        answers = {
            path: _upload_chunked(server.port, path, content_type, 27 * 1024 * KIB)
            for path, content_type, _ in CAPPED
        }
        ocsp_answer = requests.post(  # a generator body goes out chunked
            server.url + "/pki/ocsp/service-root",
            data=iter([_ocsp_request(pki)]),
            headers={"Content-Type": "application/ocsp-request"},
            timeout=30,
        )
        healthy = requests.get(server.url + "/healthz", timeout=10).status_code
        log = server.log()
    for path, (status, content_type, body, sent) in answers.items():
        assert (status, content_type) == (413, PROBLEM), (path, status, body[:300])
        assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
        # Answered long before the client was done sending (socket buffers hold a few MB).
        assert sent < 20 * 1024 * KIB, (path, sent)
    assert ocsp_answer.status_code == 200
    assert ocsp.load_der_ocsp_response(ocsp_answer.content).certificate_status is (
        ocsp.OCSPCertStatus.GOOD
    )
    assert healthy == 200
    assert "Traceback" not in log


# -- response headers -----------------------------------------------------------


def test_every_response_forbids_content_sniffing(client, pki):
    for path in [
        "/healthz",
        "/docs",
        "/openapi.json",
        "/no/such/page",
        "/pki/crl/jpki-sign.crl",
        "/ac/aa.pem",
        "/api/v1/me",
    ]:
        response = client.get(path)
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
    posted = client.post("/api/v1/auth/challenges", json={"purpose": "login"})
    assert posted.headers.get("X-Content-Type-Options") == "nosniff"


def test_api_answers_are_never_stored(client, pki):
    """Tokens, invitation codes and client secrets only ever travel in /api/ answers."""
    corp = new_corporation(pki)
    challenge = client.post("/api/v1/auth/challenges", json={"purpose": "login"})
    logged_in = try_login(client, corp.representative)
    token = logged_in.get_json()["access_token"]
    invitation = client.post(
        f"/api/v1/corporations/{corp.corporate_number}/invitations",
        json={"name": "山田\u3000太郎"},
        headers=bearer(token),
    )
    assert invitation.status_code == 201 and invitation.get_json()["code"]
    refused = client.get("/api/v1/me", headers=bearer("dairi_at_nonsense"))
    me = client.get("/api/v1/me", headers=bearer(token))
    for response in [challenge, logged_in, invitation, refused, me]:
        assert response.headers.get("Cache-Control") == "no-store", response.request.path


def test_public_assets_stay_cacheable(client):
    asset = client.get("/docs/assets/swagger-ui.css")
    assert asset.status_code == 200
    assert "no-store" not in asset.headers.get("Cache-Control", "")
    assert "max-age" in asset.headers.get("Cache-Control", "")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.inline_script = False
        self.links: list[str] = []
        self.inline_handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.inline_handlers += [name for name in found if name.startswith("on")]
        if tag == "script":
            self.scripts.append(found.get("src"))
            self._in_script = True
        if tag == "link" and found.get("href"):
            self.links.append(str(found["href"]))

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def _directives(policy: str) -> dict[str, list[str]]:
    parts = [p.split() for p in policy.split(";") if p.strip()]
    return {p[0]: p[1:] for p in parts}


def test_the_docs_page_has_a_policy_that_forbids_framing_and_still_lets_it_work(client):
    page = client.get("/docs")
    assert page.status_code == 200
    csp = _directives(page.headers["Content-Security-Policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["default-src"] == ["'none'"]
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
    assert csp["connect-src"] == ["'self'"]  # the spec and "try it out" stay on this origin
    html = _Page()
    html.feed(page.get_data(as_text=True))
    assert not html.inline_script and not html.inline_handlers
    assert html.scripts and all(src and src.startswith("/docs/") for src in html.scripts)
    assert all(href.startswith("/docs/") for href in html.links)
    # With nosniff, a browser runs a script or applies a stylesheet only if served as one.
    for src in html.scripts:
        asset = client.get(src)
        assert asset.status_code == 200, src
        assert asset.mimetype in {"text/javascript", "application/javascript"}, src
    styles = [href for href in html.links if href.endswith(".css")]
    for href in styles:
        asset = client.get(href)
        assert asset.status_code == 200 and asset.mimetype == "text/css", href
        # Swagger UI's icons are data: SVGs in its stylesheet; it also sets inline styles.
        if "url(data:" in asset.get_data(as_text=True).replace('"', "").replace("'", ""):
            assert "data:" in csp["img-src"]
    assert "'unsafe-inline'" in csp["style-src"]
    # The spec the page loads is on this origin, and the validator badge (an image from
    # validator.swagger.io) is turned off rather than blocked.
    initializer = client.get("/docs/swagger-initializer.js").get_data(as_text=True)
    assert re.search(r"url:\s*\"/openapi\.json\"", initializer)
    assert re.search(r"validatorUrl:\s*null", initializer)


def test_hsts_only_when_the_public_url_is_https(app_settings, hsm):
    def get(base_url: str):
        app = create_app(app_settings.replace(public_base_url=base_url), hsm=hsm)
        try:
            return app.test_client().get("/healthz").headers
        finally:
            app.extensions["dairi"].engine.dispose()

    secure = get("https://dairi.example.jp")["Strict-Transport-Security"]
    assert int(re.fullmatch(r"max-age=(\d+)", secure).group(1)) >= 31536000
    assert "Strict-Transport-Security" not in get("http://127.0.0.1:8080")


# -- the control socket -------------------------------------------------------------


def test_serve_keeps_its_control_socket_in_the_data_directory(
    app, app_settings, pki, tmp_path_factory
):
    home = tmp_path_factory.mktemp("home")
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": ""}
    with LiveServer(app_settings, workers=1, env=env):
        control = Path(app_settings.data_dir) / "gunicorn.ctl"
        assert stat.S_ISSOCK(control.stat().st_mode)
        assert stat.S_IMODE(control.stat().st_mode) == 0o600
    assert list(home.iterdir()) == [], os.listdir(home)
