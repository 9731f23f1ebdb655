"""Signing sessions with signature activation (SCAL2) over HTTP (issue 11 items 2 and 7):
a document is signed only after the employee's card proof over ``to_sign`` and under a
mandate whose chain holds at each step; every refusal with its own code, audited."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from datetime import timedelta

import pytest
from cryptography import x509
from helpers_auth import audit_codes, bearer, login, move_clock, new_corporation, problem
from helpers_mandates import OTHER_ENTITY, instruction, post_grant, root_grant, scope
from helpers_signing_sessions import (
    authorized,
    new_signer,
    opened,
    purpose,
    try_authorize,
    try_open,
    try_sign,
)

from app.dev.sample_documents import bid_pdf
from delegation.scope import BID, CONTRACT

YAMADA = "山田\u3000太郎"
SUZUKI = "鈴木\u3000花子"


@pytest.fixture(scope="module")
def documents() -> list[bytes]:
    return [bid_pdf(), bid_pdf(case="令和8年度 第43号 庁舎警備業務委託")]


@pytest.fixture
def world(client, hsm, pki):
    """Corporation A; 山田 holds a root mandate (bid, quote; one entity; 1 億円), 鈴木
    holds none."""
    a = new_corporation(pki, name="株式会社大理建設")
    yamada = new_signer(client, hsm, pki, a, YAMADA)
    suzuki = new_signer(client, hsm, pki, a, SUZUKI)
    mandate = root_grant(client, a, yamada.employee)
    return {"a": a, "yamada": yamada, "suzuki": suzuki, "mandate": mandate}


def pdfsig(data: bytes, tmp_path) -> str:
    path = tmp_path / f"{hashlib.sha256(data).hexdigest()[:12]}.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60).stdout


def test_an_employee_signs_two_documents_with_one_card_proof(
    client, app, world, documents, tmp_path
):
    a, yamada, mandate = world["a"], world["yamada"], world["mandate"]
    session = opened(client, yamada, a, documents)
    assert session["status"] == "open" and session["mandate_id"] == mandate["id"]
    assert [d["name"] for d in session["documents"]] == ["入札書-0.pdf", "入札書-1.pdf"]
    # What the card signs binds everything the SAD will allow (hand-listed members).
    bound = json.loads(base64.b64decode(session["to_sign"]))
    assert bound["purpose"] == "signature-activation"
    assert bound["session"] == session["id"] and bound["mandate"] == mandate["id"]
    assert bound["credential"] == {
        "id": yamada.credential_id,
        "certificate_sha256": yamada.employee.sha256,
    }
    assert bound["documents"] == [hashlib.sha256(d).hexdigest() for d in documents]
    assert bound["document_count"] == 2 and bound["signing_purpose"] == purpose(a)
    assert len(base64.urlsafe_b64decode(bound["challenge"] + "=")) == 32
    assert bound["service"] == app.extensions["dairi"].settings.public_base_url

    response = try_authorize(client, yamada, session)
    assert response.status_code == 200, response.get_json()
    activation = response.get_json()
    assert activation["documents"] == 2
    assert len(base64.urlsafe_b64decode(activation["sad"] + "=")) == 32

    signed = try_sign(client, yamada, session["id"], activation["sad"])
    assert signed.status_code == 200, signed.get_json()
    results = signed.get_json()["documents"]
    assert [r["index"] for r in results] == [0, 1]
    for result, original in zip(results, documents, strict=True):
        assert result["sha256"] == hashlib.sha256(original).hexdigest()
        fetched = client.get(result["href"], headers=bearer(yamada.token))
        assert fetched.status_code == 200 and fetched.mimetype == "application/pdf"
        pdf = fetched.get_data()
        assert hashlib.sha256(pdf).hexdigest() == result["signed_sha256"]
        shown = pdfsig(pdf, tmp_path)
        assert "Signature Validation: Signature is Valid." in shown, shown
        assert "Signer Certificate Common Name: 山田　太郎" in shown, shown
        path = tmp_path / "signed.pdf"
        path.write_bytes(pdf)
        checked = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        # The grant evidence travels inside, covered by the signature (names by hand).
        listed = subprocess.run(["pdfdetach", "-list", str(path)], capture_output=True, text=True)
        for name in ("mandate-0-instruction.json", "mandate-0-instruction.p7s", "mandate-0-ac.der"):
            assert name in listed.stdout, listed.stdout
        # Fetched once: then gone.
        problem(
            client.get(result["href"], headers=bearer(yamada.token)),
            410,
            "DOCUMENT_ALREADY_FETCHED",
        )
    # The SAD is spent: replayed, refused.
    problem(try_sign(client, yamada, session["id"], activation["sad"]), 409, "SAD_USED")
    state = client.get(f"/api/v1/signing-sessions/{session['id']}", headers=bearer(yamada.token))
    assert state.get_json()["status"] == "signed"
    assert all(d["fetched"] for d in state.get_json()["documents"])
    # Nobody else sees the session.
    problem(
        client.get(
            f"/api/v1/signing-sessions/{session['id']}", headers=bearer(world["suzuki"].token)
        ),
        404,
        "SESSION_NOT_FOUND",
    )
    tags = [tag for tag, _ in audit_codes(app)]
    assert tags.count("signature:session:opened") == 1
    assert tags.count("signature:sad:issued") == 1
    assert tags.count("signature:pades:created") == 2
    assert ("signature:signing:refused", "SAD_USED") in audit_codes(app)


def revoke_mandate(client, corp, mandate_id: str) -> None:
    rep = login(client, corp.representative)
    response = client.post(
        f"/api/v1/mandates/{mandate_id}/revocation", json={}, headers=bearer(rep)
    )
    assert response.status_code == 200, response.get_json()


def revoke_credential(client, signer) -> None:
    response = client.post(
        f"/api/v1/credentials/{signer.credential_id}/revocation",
        json={},
        headers=bearer(signer.token),
    )
    assert response.status_code == 200, response.get_json()


def encrypted(document: bytes, tmp_path) -> bytes:
    plain, locked = tmp_path / "plain.pdf", tmp_path / "locked.pdf"
    plain.write_bytes(document)
    subprocess.run(
        ["qpdf", "--encrypt", "u", "o", "256", "--", str(plain), str(locked)], check=True
    )
    return locked.read_bytes()


def test_opening_refuses_each_unsafe_request_with_its_code(
    client, app, hsm, pki, world, documents, tmp_path
):
    a, yamada, suzuki, mandate = world["a"], world["yamada"], world["suzuki"], world["mandate"]
    one = documents[:1]
    # Purpose outside the mandate, one scope dimension at a time (the mandate named).
    named = {"mandate_id": mandate["id"]}
    for changes, code in (
        ({"action": CONTRACT}, "SCOPE_ACTION_NOT_GRANTED"),
        ({"procuring_entity": OTHER_ENTITY}, "SCOPE_ENTITY_NOT_GRANTED"),
        ({"amount": 100_000_001}, "SCOPE_AMOUNT_EXCEEDED"),
    ):
        response = try_open(client, yamada, a, one, purpose=purpose(a, **changes), **named)
        problem(response, 403, code)
        # Not named: no mandate of 山田's covers it.
        response = try_open(client, yamada, a, one, purpose=purpose(a, **changes))
        problem(response, 403, "NO_COVERING_MANDATE")
    # A second mandate also covering the purpose: which one is the caller's to say.
    cased = root_grant(
        client,
        a,
        yamada.employee,
        scope(actions=frozenset({BID}), cases=frozenset({"令和8年度 第42号"})),
    )
    body = problem(try_open(client, yamada, a, one), 409, "MANDATE_AMBIGUOUS")
    assert body["mandates"] == sorted([mandate["id"], cased["id"]])
    response = try_open(
        client, yamada, a, one, purpose=purpose(a, case="第99号"), mandate_id=cased["id"]
    )
    problem(response, 403, "SCOPE_CASE_NOT_GRANTED")
    assert opened(client, yamada, a, one, mandate_id=cased["id"])["mandate_id"] == cased["id"]
    # Someone else's credential; a mandate held by another's certificate; another principal.
    problem(try_open(client, yamada, a, one, token=suzuki.token), 403, "CREDENTIAL_NOT_OWNED")
    problem(try_open(client, suzuki, a, one), 403, "NO_COVERING_MANDATE")
    problem(try_open(client, suzuki, a, one, **named), 403, "HOLDER_MISMATCH")
    b = new_corporation(pki, name="株式会社ビー")
    problem(try_open(client, yamada, b, one, purpose=purpose(b)), 403, "NO_COVERING_MANDATE")
    response = try_open(client, yamada, b, one, purpose=purpose(b), **named)
    problem(response, 403, "PRINCIPAL_MISMATCH")
    # Documents dairi cannot sign safely.
    for document, code in (
        (b"%!PS-Adobe-3.0 not a pdf", "DOCUMENT_NOT_PDF"),
        (documents[0][: len(documents[0]) // 2], "DOCUMENT_MALFORMED"),
        (encrypted(documents[0], tmp_path), "DOCUMENT_ENCRYPTED"),
    ):
        problem(try_open(client, yamada, a, [documents[1], document], **named), 422, code)
    problem(try_open(client, yamada, a, [], **named), 422, "DOCUMENTS_MISSING")
    context = app.extensions["dairi"]
    settings = context.settings
    context.settings = settings.replace(max_documents_per_session=1)
    problem(try_open(client, yamada, a, documents, **named), 422, "DOCUMENTS_TOO_MANY")
    context.settings = settings.replace(max_document_bytes=len(documents[0]) - 1)
    problem(try_open(client, yamada, a, one, **named), 422, "DOCUMENT_TOO_LARGE")
    context.settings = settings
    # Malformed requests are 422s too, never a 500.
    response = try_open(client, yamada, a, one, level="B-X")
    problem(response, 422, "VALIDATION_FAILED")
    response = try_open(client, yamada, a, one, purpose=purpose(a, principal="1234567890123"))
    problem(response, 422, "CORPORATE_NUMBER_INVALID")
    # A revoked mandate, a revoked credential.
    revoke_mandate(client, a, cased["id"])
    problem(try_open(client, yamada, a, one, mandate_id=cased["id"]), 403, "MANDATE_REVOKED")
    revoke_credential(client, yamada)
    problem(try_open(client, yamada, a, one, **named), 409, "CREDENTIAL_NOT_ACTIVE")
    refused = {code for tag, code in audit_codes(app) if tag == "signature:session:refused"}
    assert {
        "SCOPE_ACTION_NOT_GRANTED",
        "NO_COVERING_MANDATE",
        "MANDATE_AMBIGUOUS",
        "CREDENTIAL_NOT_OWNED",
        "HOLDER_MISMATCH",
        "DOCUMENT_ENCRYPTED",
        "DOCUMENTS_TOO_MANY",
        "VALIDATION_FAILED",
        "MANDATE_REVOKED",
        "CREDENTIAL_NOT_ACTIVE",
    } <= refused


def test_authorization_needs_the_callers_own_card_once_and_in_time(client, app, world, documents):
    a, yamada, suzuki, mandate = world["a"], world["yamada"], world["suzuki"], world["mandate"]
    session = opened(client, yamada, a, documents[:1])
    # Another person's (valid) card, a signature over other bytes, another's session.
    problem(
        try_authorize(client, yamada, session, card=suzuki.card.authentication),
        403,
        "CARD_NOT_CALLERS",
    )
    forged = dict(session, to_sign=base64.b64encode(b"{}").decode())
    problem(try_authorize(client, yamada, forged), 403, "SIGNATURE_INVALID")
    problem(
        try_authorize(client, suzuki, session, card=yamada.card.authentication),
        404,
        "SESSION_NOT_FOUND",
    )
    assert authorized(client, yamada, session)
    problem(try_authorize(client, yamada, session), 409, "SESSION_ALREADY_AUTHORIZED")
    # The challenge lives at most 120 s.
    late = opened(client, yamada, a, documents[:1])
    move_clock(app, timedelta(seconds=121))
    problem(try_authorize(client, yamada, late), 410, "SESSION_EXPIRED")
    problem(try_sign(client, yamada, late["id"], "x" * 43), 410, "SESSION_EXPIRED")
    move_clock(app, timedelta(0))
    # A mandate revoked after the session opened: no SAD.
    revoked = opened(client, yamada, a, documents[:1])
    revoke_mandate(client, a, mandate["id"])
    problem(try_authorize(client, yamada, revoked), 403, "MANDATE_REVOKED")
    refused = [code for tag, code in audit_codes(app) if tag == "signature:sad:refused"]
    assert refused == [
        "CARD_NOT_CALLERS",
        "SIGNATURE_INVALID",
        "SESSION_NOT_FOUND",
        "SESSION_ALREADY_AUTHORIZED",
        "SESSION_EXPIRED",
        "MANDATE_REVOKED",
    ]
    assert [tag for tag, _ in audit_codes(app)].count("signature:sad:issued") == 1


def test_a_revoked_authentication_certificate_gets_no_sad(client, app, pki, world, documents):
    a, yamada = world["a"], world["yamada"]
    pki.ca_for_slug("jpki-auth").revoke(
        yamada.card.authentication.certificate.serial_number,
        x509.ReasonFlags.key_compromise,
        now=pki.clock(),
    )
    move_clock(app, timedelta(minutes=6))  # past the validator's cached good answer
    session = try_open(client, yamada, a, documents[:1])
    # The bearer token was earned with that very card: it ends first (401), and no
    # session, let alone a SAD, comes of it.
    problem(session, 401, "TOKEN_CERTIFICATE_REVOKED")
    tags = [tag for tag, _ in audit_codes(app)]
    assert "signature:session:opened" not in tags and "signature:sad:issued" not in tags


def test_a_sad_signs_only_its_own_session_once_and_in_time(client, app, world, documents):
    a, yamada, suzuki = world["a"], world["yamada"], world["suzuki"]
    single = opened(client, yamada, a, documents[:1])
    double = opened(client, yamada, a, documents)
    sad_single = authorized(client, yamada, single)
    sad_double = authorized(client, yamada, double)
    # A 1-document session's SAD cannot sign another session's 2 documents.
    problem(try_sign(client, yamada, double["id"], sad_single), 403, "SAD_INVALID")
    problem(try_sign(client, yamada, double["id"], None), 403, "SAD_MISSING")
    problem(try_sign(client, yamada, double["id"], ""), 403, "SAD_MISSING")
    problem(try_sign(client, yamada, "no-such-session", sad_double), 404, "SESSION_NOT_FOUND")
    problem(try_sign(client, suzuki, double["id"], sad_double), 404, "SESSION_NOT_FOUND")
    move_clock(app, timedelta(minutes=5, seconds=1))
    problem(try_sign(client, yamada, single["id"], sad_single), 410, "SAD_EXPIRED")
    move_clock(app, timedelta(0))
    # Refused attempts did not spend the SAD; the right one signs exactly two documents.
    signed = try_sign(client, yamada, double["id"], sad_double)
    assert signed.status_code == 200, signed.get_json()
    assert len(signed.get_json()["documents"]) == 2
    problem(try_sign(client, yamada, double["id"], sad_double), 409, "SAD_USED")
    refused = [code for tag, code in audit_codes(app) if tag == "signature:signing:refused"]
    # (a repeat within the audit's refusal window is counted, not appended again)
    assert list(dict.fromkeys(refused)) == [
        "SAD_INVALID",
        "SAD_MISSING",
        "SESSION_NOT_FOUND",
        "SAD_EXPIRED",
        "SAD_USED",
    ]


def test_a_revocation_between_authorization_and_signing_stops_the_signature(
    client, app, world, documents
):
    a, yamada, mandate = world["a"], world["yamada"], world["mandate"]
    first = opened(client, yamada, a, documents[:1])
    second = opened(client, yamada, a, documents[:1])
    sad_first = authorized(client, yamada, first)
    sad_second = authorized(client, yamada, second)
    revoke_mandate(client, a, mandate["id"])
    problem(try_sign(client, yamada, first["id"], sad_first), 403, "MANDATE_REVOKED")
    revoke_credential(client, yamada)
    problem(try_sign(client, yamada, second["id"], sad_second), 409, "CREDENTIAL_NOT_ACTIVE")
    # Refused is spent: the SAD is single use whatever came of it.
    problem(try_sign(client, yamada, first["id"], sad_first), 409, "SAD_USED")
    assert "signature:pades:created" not in [tag for tag, _ in audit_codes(app)]


def test_a_grantee_sub_delegates_through_a_cms_session(client, app, hsm, pki, world):
    a, yamada, suzuki, mandate = world["a"], world["yamada"], world["suzuki"], world["mandate"]
    data = instruction(
        a,
        suzuki.employee,
        scope(max_depth=0),
        parent=mandate["id"],
        grantor_name=yamada.employee.name,
        grantor_title=None,
    )
    sub = {"purpose": purpose(a, action="sub-delegation"), "format": "cms"}
    # The format goes with the purpose; the instruction must be a sub-delegation of the
    # mandate named.
    problem(
        try_open(client, yamada, a, [data], purpose=sub["purpose"]), 422, "SESSION_FORMAT_INVALID"
    )
    problem(try_open(client, yamada, a, [data], format="cms"), 422, "SESSION_FORMAT_INVALID")
    problem(try_open(client, yamada, a, [b"{}"], **sub), 422, "INSTRUCTION_MALFORMED")
    session = opened(client, yamada, a, [data], **sub)
    assert session["mandate_id"] == mandate["id"]
    sad = authorized(client, yamada, session)
    signed = try_sign(client, yamada, session["id"], sad)
    assert signed.status_code == 200, signed.get_json()
    [result] = signed.get_json()["documents"]
    fetched = client.get(result["href"], headers=bearer(yamada.token))
    assert fetched.status_code == 200 and fetched.mimetype == "application/pkcs7-signature"
    cms = fetched.get_data()
    # The grant posted with that CMS is a sub-delegation signed by 山田's HSM key.
    granted = post_grant(client, yamada.token, data, cms, suzuki.employee)
    assert granted.status_code == 201, granted.get_json()
    child = granted.get_json()
    assert child["parent_id"] == mandate["id"] and child["depth"] == 1
    assert ("signature:cms:created", "") in audit_codes(app)
    # The child allows no further sub-delegation: 鈴木 cannot open one under it.
    again = instruction(
        a,
        yamada.employee,
        scope(max_depth=0),
        parent=child["id"],
        grantor_name=suzuki.employee.name,
        grantor_title=None,
    )
    problem(try_open(client, suzuki, a, [again], **sub), 403, "SUBDELEGATION_NOT_ALLOWED")


def test_a_b_lta_bid_with_a_visible_stamp(client, world, documents, tmp_path):
    a, yamada = world["a"], world["yamada"]
    session = opened(client, yamada, a, documents[:1], level="B-LTA", stamp=True)
    signed = try_sign(client, yamada, session["id"], authorized(client, yamada, session))
    assert signed.status_code == 200, signed.get_json()
    [result] = signed.get_json()["documents"]
    pdf = client.get(result["href"], headers=bearer(yamada.token)).get_data()
    shown = pdfsig(pdf, tmp_path)
    # The signature, valid; then the archive timestamp (B-LTA), which pdfsig lists only.
    first, _, second = shown.partition("Signature #2:")
    assert "Signature Validation: Signature is Valid." in first, shown
    assert "Total document signed" in second, shown
    path = tmp_path / "stamped.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    assert "山田" in text and "株式会社大理建設" in text, text[-800:]


def test_a_one_document_session_answers_its_signed_pdf_when_asked(client, app, world, documents):
    a, yamada = world["a"], world["yamada"]
    session = opened(client, yamada, a, documents[:1])
    sad = authorized(client, yamada, session)
    signed = sign_asking_for(client, yamada, session["id"], sad, "application/pdf")
    assert signed.status_code == 200 and signed.mimetype == "application/pdf"
    pdf = signed.get_data()
    # An incremental update of the upload, signed (a PAdES signature appends to it).
    assert pdf.startswith(documents[0]) and b"/ByteRange" in pdf[len(documents[0]) :]
    digest = base64.b64encode(hashlib.sha256(pdf).digest()).decode()
    assert signed.headers["Repr-Digest"] == f"sha-256=:{digest}:"
    assert signed.headers["Content-Disposition"] == (
        "attachment; filename*=UTF-8''%E5%85%A5%E6%9C%AD%E6%9B%B8-0.pdf"
    )
    # Handed out once: the document's href is gone, as after a fetch.
    state = client.get(f"/api/v1/signing-sessions/{session['id']}", headers=bearer(yamada.token))
    (document,) = state.get_json()["documents"]
    assert document["fetched"] and document["signed_sha256"] == hashlib.sha256(pdf).hexdigest()
    problem(
        client.get(
            f"/api/v1/signing-sessions/{session['id']}/documents/0", headers=bearer(yamada.token)
        ),
        410,
        "DOCUMENT_ALREADY_FETCHED",
    )
    events = [tag for tag, _ in audit_codes(app)]
    assert events.count("signature:pades:created") == 1
    assert events.count("signature:document:fetched") == 1
    assert signed.headers["Dairi-Signature-Id"] in json.dumps(signatures_of(app))
    # The OpenAPI document names both answers.
    spec = client.get("/openapi.json").get_json()
    answer = spec["paths"]["/api/v1/signing-sessions/{session_id}/signatures"]["post"]
    assert {"application/json", "application/pdf"} <= set(answer["responses"]["200"]["content"])


def test_several_documents_refuse_the_pdf_answer_before_the_sad_is_spent(
    client, app, world, documents
):
    a, yamada = world["a"], world["yamada"]
    session = opened(client, yamada, a, documents)
    sad = authorized(client, yamada, session)
    problem(
        sign_asking_for(client, yamada, session["id"], sad, "application/pdf"),
        406,
        "NOT_ACCEPTABLE",
    )
    assert ("signature:signing:refused", "NOT_ACCEPTABLE") in audit_codes(app)
    # The SAD still signs, answering the hrefs.
    signed = try_sign(client, yamada, session["id"], sad)
    assert signed.status_code == 200 and len(signed.get_json()["documents"]) == 2


def sign_asking_for(client, signer, session_id: str, sad: str, accept: str):
    return client.post(
        f"/api/v1/signing-sessions/{session_id}/signatures",
        headers={**bearer(signer.token), "Accept": accept},
        json={"sad": sad},
    )


def signatures_of(app) -> list[str]:
    """The ids of the signature records (from the database)."""
    from sqlalchemy import select

    from app.signatures.models import SignatureRecord

    with app.extensions["dairi"].session_factory() as session:
        return list(session.scalars(select(SignatureRecord.id)))
