"""POST /api/v1/verifications and ``dairi verify``: one report, through HTTP (API
clients with ``signatures:verify`` and signed-in people) and offline on the command line."""

from __future__ import annotations

import base64
import io
import json
import subprocess

import pytest
from click.testing import CliRunner
from helpers_auth import problem

from app.cli.main import main
from app.people.sign_in import AuthService
from signing import PadesLevel, PadesSpec


@pytest.fixture(scope="module")
def lta(pades_signer, employee, bid) -> bytes:
    return pades_signer.sign(bid, employee, PadesSpec(level=PadesLevel.B_LTA)).pdf


def _tampered(pdf: bytes) -> bytes:
    changed = bytearray(pdf)
    at = changed.index(b"/MediaBox")
    digit = next(i for i in range(at, at + 40) if changed[i : i + 1] in (b"5", b"8"))
    changed[digit] = ord("4")
    return bytes(changed)


def _client_headers(app, scopes: tuple[str, ...]) -> dict[str, str]:
    context = app.extensions["dairi"]
    with context.session_factory() as session, session.begin():
        auth = AuthService(session, context.settings, context.certificate_validator, context.clock)
        issued = auth.create_client("調達システム", scopes, "test", all_corporations=True)
        pair = f"{issued.row.client_id}:{issued.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _post(client, headers, document: bytes | None, **form):
    data = dict(form)
    if document is not None:
        data["document"] = (io.BytesIO(document), "bid.pdf", "application/pdf")
    return client.post(
        "/api/v1/verifications" + form.pop("query", ""),
        headers=headers,
        data=data,
        content_type="multipart/form-data",
    )


def test_the_api_reports_on_a_signed_bid_for_a_relying_party(app, client, lta, bid, tmp_path):
    headers = _client_headers(app, ("signatures:verify",))
    response = _post(client, headers, lta)
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert report["indication"] == "TOTAL_PASSED"
    (sig,) = report["signatures"]
    assert sig["level"] == "B-LTA" and sig["signer"]["name"] == "山田 太郎"

    response = _post(client, headers, _tampered(lta))
    assert response.get_json()["signatures"][0]["sub_indication"] == "HASH_FAILURE"

    text = client.post(
        "/api/v1/verifications?lang=ja",
        headers=headers,
        data={"document": (io.BytesIO(lta), "bid.pdf")},
        content_type="multipart/form-data",
    )
    assert text.status_code == 200 and text.mimetype == "text/plain"
    assert text.get_data(as_text=True).startswith("検証結果: 有効\n")
    assert "署名者: 山田 太郎" in text.get_data(as_text=True)

    filed = client.post(
        "/api/v1/verifications?format=pdf",
        headers=headers,
        data={"document": (io.BytesIO(lta), "bid.pdf")},
        content_type="multipart/form-data",
    )
    assert filed.status_code == 200 and filed.mimetype == "application/pdf"
    (tmp_path / "report.pdf").write_bytes(filed.data)
    shown = subprocess.run(
        ["pdftotext", str(tmp_path / "report.pdf"), "-"], capture_output=True, text=True
    ).stdout
    assert "検証結果: 有効" in shown and "山田 太郎" in shown

    # A purpose asked of a signature made under no mandate: nothing covers it.
    purpose = json.dumps({"action": "bid", "principal": "1234567890123"})
    asked = _post(client, headers, lta, purpose=purpose).get_json()
    assert asked["indication"] == "TOTAL_FAILED"
    assert asked["signatures"][0]["reasons"] == ["MANDATE_MISSING"]

    problem(_post(client, headers, b"%PDF-1.7 nothing"), 422, "DOCUMENT_MALFORMED")
    problem(_post(client, headers, b"not a pdf at all"), 422, "DOCUMENT_NOT_PDF")
    problem(_post(client, headers, bid), 422, "DOCUMENT_NOT_SIGNED")
    problem(_post(client, headers, None), 422, "VALIDATION_FAILED")
    problem(_post(client, headers, lta, purpose="{"), 422, "VERIFICATION_PURPOSE_INVALID")
    problem(
        _post(client, headers, lta, purpose=json.dumps({"action": "dance"})),
        422,
        "SCOPE_ACTION_UNKNOWN",
    )
    # Without credentials, or with a client lacking the scope: refused.
    problem(_post(client, {}, lta), 401, "UNAUTHENTICATED")
    problem(_post(client, _client_headers(app, ("mandates:read",)), lta), 403, "FORBIDDEN")


def test_the_command_line_gives_the_same_report_offline(base_settings, lta, tmp_path, cli_env):
    signed = tmp_path / "bid.pdf"
    signed.write_bytes(lta)
    trust = str(base_settings.trust_dir)
    runner = CliRunner()
    as_json = runner.invoke(main, ["verify", str(signed), "--trust-dir", trust, "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert report["indication"] == "TOTAL_PASSED"
    assert report["signatures"][0]["level"] == "B-LTA"

    filed = tmp_path / "検証結果.pdf"
    text = runner.invoke(main, ["verify", str(signed), "--trust", trust, "--pdf", str(filed)])
    assert text.exit_code == 0 and text.output.startswith("検証結果: 有効")
    assert filed.read_bytes().startswith(b"%PDF-")
    english = runner.invoke(main, ["verify", str(signed), "--trust", trust, "--lang", "en"])
    assert english.output.startswith("Verification result: valid")

    # Trust anchors that do not reach the signer: undecided, not failed (exit 2).
    strangers = tmp_path / "no-anchors"
    strangers.mkdir()
    undecided = runner.invoke(main, ["verify", str(signed), "--trust", str(strangers)])
    assert undecided.exit_code == 2 and undecided.output.startswith("検証結果: 判定不能")

    signed.write_bytes(_tampered(lta))
    failed = runner.invoke(main, ["verify", str(signed), "--trust", trust])
    assert failed.exit_code == 1 and failed.output.startswith("検証結果: 無効")

    signed.write_bytes(b"hello")
    bad = runner.invoke(main, ["verify", str(signed), "--trust", trust])
    assert bad.exit_code == 2 and "error DOCUMENT_NOT_PDF" in bad.output


def test_the_command_line_verifies_an_enveloped_xades_signature_too(
    hsm, employee, dev_tsa, pades_signer, base_settings, tmp_path, cli_env
):
    from signing import XadesLevel, XadesSigner, XadesSpec

    xades = XadesSigner(
        hsm, tsa=dev_tsa, validation_data=pades_signer._validation, max_document_bytes=100_000
    )
    application = '<?xml version="1.0" encoding="UTF-8"?>\n<申請 xmlns="urn:example">届出</申請>\n'
    signed = xades.sign(application.encode(), employee, XadesSpec(level=XadesLevel.B_LTA)).xml
    path = tmp_path / "application.xml"
    path.write_bytes(signed)
    trust = str(base_settings.trust_dir)
    result = CliRunner().invoke(main, ["verify", str(path), "--trust", trust, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["signatures"][0]["signer"]["name"] == "山田 太郎"
    path.write_bytes(signed.replace("届出".encode(), "取下".encode()))
    assert CliRunner().invoke(main, ["verify", str(path), "--trust", trust]).exit_code == 1


def test_the_command_line_renders_text_json_or_the_filed_pdf(base_settings, lta, tmp_path, cli_env):
    signed = tmp_path / "bid.pdf"
    signed.write_bytes(lta)
    trust = str(base_settings.trust_dir)
    runner = CliRunner()

    def run(*options: str):
        return runner.invoke(main, ["verify", str(signed), "--trust", trust, *options])

    text = run("--format", "text")
    assert text.exit_code == 0 and text.output.startswith("検証結果: 有効\n")
    as_json = run("--format", "json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["indication"] == "TOTAL_PASSED"
    assert (
        json.loads(run("--json").output)["signatures"] == json.loads(as_json.output)["signatures"]
    )

    filed = tmp_path / "検証結果.pdf"
    pdf = run("--format", "pdf", "--out", str(filed))
    assert pdf.exit_code == 0 and pdf.output == "検証結果: 有効\n"
    # What an officer's reader shows: poppler's text extraction of the filed report.
    shown = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(filed), "-"], capture_output=True, text=True, timeout=60
    ).stdout
    assert "検証結果: 有効" in shown and "山田 太郎" in shown

    saved = tmp_path / "report.json"
    to_file = run("--format", "json", "--out", str(saved))
    assert to_file.exit_code == 0 and to_file.output == "検証結果: 有効\n"
    assert json.loads(saved.read_text())["indication"] == "TOTAL_PASSED"

    no_file = run("--format", "pdf")
    assert no_file.exit_code == 2 and no_file.output.startswith("error INPUT_INVALID: ")
    assert no_file.output.count("\n") == 1


@pytest.fixture(scope="module")
def detached_xades(hsm, employee, dev_tsa, pades_signer) -> tuple[bytes, bytes]:
    from signing import XadesLevel, XadesSigner, XadesSpec

    xades = XadesSigner(
        hsm, tsa=dev_tsa, validation_data=pades_signer._validation, max_document_bytes=100_000
    )
    application = '<?xml version="1.0" encoding="UTF-8"?>\n<申請 xmlns="urn:example">届出</申請>\n'
    spec = XadesSpec(level=XadesLevel.B_LTA, packaging="detached", detached_uri="application.xml")
    return xades.sign(application.encode(), employee, spec).xml, application.encode()


def test_a_detached_xades_signature_is_verified_with_its_document(
    app, client, detached_xades, base_settings, tmp_path, cli_env
):
    signature, document = detached_xades
    headers = _client_headers(app, ("signatures:verify",))

    def posted(given: bytes | None) -> dict:
        data: dict = {"document": (io.BytesIO(signature), "signature.xml", "application/xml")}
        if given is not None:
            data["detached"] = (io.BytesIO(given), "application.xml", "application/xml")
        response = client.post(
            "/api/v1/verifications", headers=headers, data=data, content_type="multipart/form-data"
        )
        assert response.status_code == 200, response.get_json()
        (sig,) = response.get_json()["signatures"]
        return sig

    assert posted(document)["indication"] == "TOTAL_PASSED"
    assert posted(document)["coverage"]["coverage"] == "DETACHED:application.xml"
    missing = posted(None)
    assert (missing["indication"], missing["sub_indication"]) == (
        "INDETERMINATE",
        "SIGNED_DATA_NOT_FOUND",
    )
    changed = posted(document.replace("届出".encode(), "取下".encode()))
    assert (changed["indication"], changed["sub_indication"]) == ("TOTAL_FAILED", "HASH_FAILURE")

    signature_path, document_path = tmp_path / "signature.xml", tmp_path / "application.xml"
    signature_path.write_bytes(signature)
    document_path.write_bytes(document)
    trust = str(base_settings.trust_dir)
    runner = CliRunner()
    given = ["verify", str(signature_path), "--trust", trust, "--detached", str(document_path)]
    assert runner.invoke(main, given).exit_code == 0
    assert runner.invoke(main, given[:-2]).exit_code == 2
