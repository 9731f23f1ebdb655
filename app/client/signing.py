"""Signing PDFs (PAdES) or XML documents (XAdES) through a signing session (DESIGN §6,
signature activation) from the client's side: upload, check what the card is about to
sign, authorize with the card, spend the SAD, fetch each signed document and write it
beside its input."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.client.api import Answer, ApiClient, ClientError, proof, refusal, unb64
from app.client.cards import Card


@dataclass(frozen=True)
class SigningRequest:
    """What to sign, for what purpose, with which credential (and mandate)."""

    credential_id: str
    principal: str
    action: str
    procuring_entity: str | None = None
    case: str | None = None
    amount: int | None = None
    level: str = "B-T"
    mandate_id: str | None = None
    format: str = "pades"  # "xades": XML; "cms": a sub-delegation instruction, detached
    stamp: bool = False  # a visible stamp in Japanese (受任者, 委任者, 委任事項, 案件, 日時)
    packaging: str | None = None  # xades: "enveloped" (the default) or "detached"

    @property
    def xades_packaging(self) -> str | None:
        """The packaging an ``xades`` request asks for (and to_sign must bind)."""
        return (self.packaging or "enveloped") if self.format == "xades" else None

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "credential_id": self.credential_id,
            "purpose": {
                "principal": self.principal,
                "action": self.action,
                "procuring_entity": self.procuring_entity,
                "case": self.case,
                "amount": self.amount,
            },
            "format": self.format,
            "level": self.level,
        }
        if self.mandate_id:
            body["mandate_id"] = self.mandate_id
        if self.stamp:
            body["stamp"] = True
        if self.xades_packaging:
            body["packaging"] = self.xades_packaging
        return body


@dataclass(frozen=True)
class SignedFile:
    source: Path
    target: Path
    sha256: str
    signed_sha256: str
    signature_id: str


def signed_path(source: Path, request: SigningRequest | None = None) -> Path:
    """Where the signed copy of ``source`` goes, beside it: ``NAME-signed.pdf``, for
    XAdES ``NAME-signed.xml``, or for a detached XAdES signature ``NAME.xades.xml``
    (it names ``source`` by its file name, so it stays beside it)."""
    packaging = request.xades_packaging if request else None
    if packaging == "detached":
        return source.with_name(f"{source.stem}.xades.xml")
    if packaging:
        return source.with_name(f"{source.stem}-signed.xml")
    return source.with_name(f"{source.stem}-signed.pdf")


def check_uploaded(names: Sequence[str], digests: Sequence[str], session: dict[str, Any]) -> None:
    """Refuse to authorize unless the service reports exactly the files sent, in order,
    each with the SHA-256 computed here (``CLIENT_DIGEST_MISMATCH``): the card's
    signature activates whatever the session names, so a client must not take the
    service's word for it."""
    documents = session.get("documents")
    if not isinstance(documents, list) or len(documents) != len(names):
        raise ClientError(
            f"the service reports {len(documents) if isinstance(documents, list) else 'no'} "
            f"documents for {len(names)} sent",
            "CLIENT_DIGEST_MISMATCH",
        )
    for position, (name, digest, reported) in enumerate(
        zip(names, digests, documents, strict=True)
    ):
        if not isinstance(reported, dict) or reported.get("index", position) != position:
            raise ClientError(f"document {position} is out of order", "CLIENT_DIGEST_MISMATCH")
        if str(reported.get("sha256", "")).lower() != digest:
            raise ClientError(
                f"{name}: the service reports SHA-256 {reported.get('sha256')}, "
                f"the file has {digest}",
                "CLIENT_DIGEST_MISMATCH",
            )


ACTIVATION_PURPOSE = "signature-activation"


def check_to_sign(
    to_sign: bytes, request: SigningRequest, digests: Sequence[str], session_id: str
) -> dict[str, Any]:
    """What the card is about to sign, read before it signs: it must be a
    signature-activation for this session, the credential, purpose, format and level
    asked for, and exactly the documents sent, in order (``CLIENT_DIGEST_MISMATCH`` for
    the documents, ``CLIENT_ACTIVATION_MISMATCH`` for the rest). Returns it parsed."""
    try:
        bound = json.loads(to_sign)
    except ValueError as exc:
        raise ClientError("to_sign is not JSON", "CLIENT_ACTIVATION_MISMATCH") from exc
    if not isinstance(bound, dict):
        raise ClientError("to_sign is not a JSON object", "CLIENT_ACTIVATION_MISMATCH")
    if bound.get("documents") != list(digests) or bound.get("document_count") != len(digests):
        raise ClientError("to_sign names other documents than those sent", "CLIENT_DIGEST_MISMATCH")
    asked = request.json()
    expected = {
        "purpose": ACTIVATION_PURPOSE,
        "session": session_id,
        "signing_purpose": asked["purpose"],
        "format": asked["format"],
        "level": asked["level"],
    }
    if request.xades_packaging:
        expected["packaging"] = request.xades_packaging
    for key, value in expected.items():
        if bound.get(key) != value:
            raise ClientError(
                f"to_sign's {key} is {bound.get(key)!r}, not {value!r}",
                "CLIENT_ACTIVATION_MISMATCH",
            )
    credential = bound.get("credential")
    if not isinstance(credential, dict) or credential.get("id") != request.credential_id:
        raise ClientError("to_sign names another credential", "CLIENT_ACTIVATION_MISMATCH")
    if request.mandate_id and bound.get("mandate") != request.mandate_id:
        raise ClientError("to_sign names another mandate", "CLIENT_ACTIVATION_MISMATCH")
    return bound


@dataclass(frozen=True)
class Upload:
    """One document for a signing session: its name, bytes and media type."""

    name: str
    content: bytes
    media_type: str = "application/pdf"


def run_session(
    client: ApiClient, card: Card, request: SigningRequest, uploads: Sequence[Upload]
) -> Iterator[tuple[str, Any]]:
    """One signing session: open it with ``uploads``, check what the card is about to
    sign (:func:`check_uploaded`, :func:`check_to_sign`; nothing is authorized
    otherwise), authorize with ``card`` (JPKI authentication) over ``to_sign``, spend
    the SAD and fetch each signed document once; the one document of a session of one
    comes back with the signatures' answer instead (``Accept`` its media type).

    Yields (event, value): ``("session", answer)``, ``("authorized", answer)``, then
    ``("fetched", (document as the service lists it, signed bytes))`` per upload, in
    order."""
    digests = [hashlib.sha256(u.content).hexdigest() for u in uploads]
    parts: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
        ("request", (None, json.dumps(request.json()), "application/json"))
    ]
    parts.extend(("document", (u.name, u.content, u.media_type)) for u in uploads)
    session = client.call("POST", "/api/v1/signing-sessions", files=parts)
    check_uploaded([u.name for u in uploads], digests, session)
    to_sign = unb64(session["to_sign"], "to_sign")
    check_to_sign(to_sign, request, digests, str(session["id"]))
    yield "session", session
    authorized = client.call(
        "POST", f"/api/v1/signing-sessions/{session['id']}/authorization", json=proof(card, to_sign)
    )
    yield "authorized", authorized
    path = f"/api/v1/signing-sessions/{session['id']}/signatures"
    media_type = MEDIA_TYPES[request.format] if len(uploads) == 1 else None
    # One document can come back in the answer itself: no fetch, one request fewer (a
    # service that cannot do that answers the hrefs).
    headers = {"Accept": f"{media_type}, application/json;q=0.5"} if media_type else {}
    response = client.send("POST", path, json={"sad": authorized["sad"]}, headers=headers)
    if response.status_code != 200:
        raise refusal(response, "POST", path)
    answered = response.headers.get("Content-Type", "").partition(";")[0].strip()
    if media_type and answered == media_type:
        yield "fetched", _signed_in_answer(response, uploads[0])
        return
    try:
        signed = response.json()
    except ValueError as exc:
        raise ClientError(f"POST {path}: the answer is not JSON") from exc
    by_index = {d["index"]: d for d in signed["documents"]}
    for index, upload in enumerate(uploads):
        document = by_index.get(index)
        if document is None:
            raise ClientError(f"the service returned no signature for {upload.name}")
        response = client.send("GET", document["href"])
        if response.status_code != 200:
            raise refusal(response, "GET", document["href"])
        if document.get("signed_sha256") and (
            document["signed_sha256"] != hashlib.sha256(response.content).hexdigest()
        ):
            raise ClientError(
                f"{upload.name}: the signed document fetched is not the one the service reported",
                "CLIENT_DIGEST_MISMATCH",
            )
        yield "fetched", (document, response.content)


# What a session's one signed document is answered as, per format (Accept).
MEDIA_TYPES = {
    "pades": "application/pdf",
    "xades": "application/xml",
    "cms": "application/pkcs7-signature",
}


def _signed_in_answer(response: Answer, upload: Upload) -> tuple[dict[str, Any], bytes]:
    """The session's one signed document, answered by ``POST …/signatures``: (the
    document as the service describes it, its bytes). The bytes must match the
    answer's ``Repr-Digest`` (``CLIENT_DIGEST_MISMATCH``)."""
    content = response.content
    digest = base64.b64encode(hashlib.sha256(content).digest()).decode("ascii")
    if response.headers.get("Repr-Digest") != f"sha-256=:{digest}:":
        raise ClientError(
            f"{upload.name}: the signed document received is not the one the service reported",
            "CLIENT_DIGEST_MISMATCH",
        )
    signature_id = response.headers.get("Dairi-Signature-Id")
    if not signature_id:
        raise ClientError(f"{upload.name}: the answer names no signature")
    return (
        {
            "index": 0,
            "name": upload.name,
            "signed_sha256": hashlib.sha256(content).hexdigest(),
            "signature_id": signature_id,
        },
        content,
    )


def write_whole(target: Path, content: bytes) -> None:
    """Write ``content`` to ``target`` through a new file beside it, then put it in
    ``target``'s place: an earlier ``target`` is never seen half rewritten (or left so
    by an interruption), and it is not truncated in place, which ext4 flushes to disk
    at once (milliseconds). Raises ``OSError`` as writing would (the new file removed)."""
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    # Created as write_bytes would (0666 less the umask), and never over an existing file.
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def sign_files(
    client: ApiClient,
    card: Card,
    request: SigningRequest,
    files: Sequence[Path],
    *,
    force: bool = False,
) -> Iterator[tuple[str, Any]]:
    """Sign PDFs (or XML documents, ``format`` xades) through one signing session
    (:func:`run_session`) and write each signed one beside its input (:func:`signed_path`).

    Yields ``("session", answer)``, ``("authorized", answer)``, then ``("signed",
    SignedFile)`` per file, once written whole (:func:`write_whole`). Raises
    ``CLIENT_OUTPUT_EXISTS`` before anything is sent when a target exists and not
    ``force``.
    """
    targets = [signed_path(f, request) for f in files]
    media_type = "application/xml" if request.format == "xades" else "application/pdf"
    if not force:
        for target in targets:
            if target.exists():
                raise ClientError(f"{target} exists (--force to overwrite)", "CLIENT_OUTPUT_EXISTS")
    uploads = []
    for path in files:
        try:
            uploads.append(Upload(path.name, path.read_bytes(), media_type))
        except OSError as exc:
            raise ClientError(f"cannot read {path}", "INPUT_INVALID") from exc
    position = 0
    for event, value in run_session(client, card, request, uploads):
        if event != "fetched":
            yield event, value
            continue
        document, content = value
        target = targets[position]
        write_whole(target, content)
        yield (
            "signed",
            SignedFile(
                files[position],
                target,
                hashlib.sha256(uploads[position].content).hexdigest(),
                hashlib.sha256(content).hexdigest(),
                str(document["signature_id"]),
            ),
        )
        position += 1
