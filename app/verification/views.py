"""``POST /api/v1/verifications``: a relying party's (a procurement system's) or a
signed-in person's report on a signed PDF (DESIGN §7).

Multipart: part ``document`` (the signed PDF, or an XML document with XAdES
signatures, judged by :func:`signing.verify_xml` into the same report); for a detached
XAdES signature, one part ``detached`` per document it signs, its file name being the
URI the signature names it by; optional part ``purpose`` (a JSON object: ``principal``
法人番号, ``action``, ``procuring_entity``, ``case``, ``amount``). The answer is the
JSON report; ``?format=text`` (or just ``?lang=ja``/``en``) the same report as text
(検証結果), ``?format=pdf`` as an A4 PDF to file. Nothing is written but the audit of a
refusal: verifying is not a state change.
"""

from __future__ import annotations

from flask import Response, jsonify, request
from flask_smorest import Blueprint

from app.http.edge import body_limit, lock_free
from app.http.problems import ProblemError
from app.http.request_scope import audit_refusals, current_context
from app.http.security import allow
from app.people.models import Role
from app.verification.service import (
    purpose_from_json,
    report_pdf,
    trust_from_directory,
    verify_document,
)
from dairi import DairiError
from signing.report import LANGUAGES, render_text
from signing.verification import VerificationTrust

blp = Blueprint(
    "verifications",
    __name__,
    url_prefix="/api/v1",
    description="Verification of signed documents for relying parties",
)

# Every refusal (bad input, a PDF bomb, a purpose that does not parse) is audited.
audit_refusals(blp.name, "verification:request:refused")

# The largest upload read: the largest document the service handles, plus the form.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def service_trust() -> VerificationTrust:
    context = current_context()
    try:
        aa = context.aa_certificates[:1]
    except DairiError:  # no AA configured: mandates cannot be judged, the rest can
        aa = ()
    return trust_from_directory(
        context.settings.trust_dir,
        aa_certificates=aa,
        representative_titles=context.settings.representative_titles,
    )


@blp.route("/verifications", methods=["POST"])
@allow(
    Role.EMPLOYEE,
    Role.REPRESENTATIVE,
    Role.AUDITOR,
    Role.ADMINISTRATOR,
    scopes=("signatures:verify",),
)
@lock_free
@body_limit(MAX_UPLOAD_BYTES)
def verify() -> Response:
    """Verify a signed PDF or XML (with ``detached`` parts, a detached XAdES signature's
    documents): per signature, the ETSI indication and sub-indication, level,
    signer, times, coverage and the mandate judged at the signing time for the purpose
    given. Offline: only the document's validation data and the service's trust
    anchors and CRLs are used.

    Bad input: 422 ``DOCUMENT_NOT_PDF``, ``DOCUMENT_MALFORMED``, ``DOCUMENT_TOO_LARGE``,
    ``DOCUMENT_NOT_SIGNED``, ``VERIFICATION_PURPOSE_INVALID``, ``SCOPE_*``; 422
    ``VALIDATION_FAILED`` without a ``document`` part or with an unknown ``lang``.
    """
    lang = request.args.get("lang")
    output = request.args.get("format", "json")
    if output not in ("json", "text", "pdf"):
        raise ProblemError(
            "VALIDATION_FAILED",
            detail="format is json, text or pdf",
            errors={"format": ["unknown format"]},
        )
    if lang is not None and lang not in LANGUAGES:
        raise ProblemError(
            "VALIDATION_FAILED",
            detail=f"lang is one of {', '.join(LANGUAGES)}",
            errors={"lang": ["unknown language"]},
        )
    upload = request.files.get("document")
    if upload is None:
        raise ProblemError(
            "VALIDATION_FAILED",
            detail="send the PDF as the multipart part 'document'",
            errors={"document": ["missing"]},
        )
    document = upload.read()
    detached: dict[str, bytes] = {}
    for part in request.files.getlist("detached"):
        if not part.filename:
            raise ProblemError(
                "VALIDATION_FAILED",
                detail="a detached document is named by the URI its signature gives",
                errors={"detached": ["a file name is required"]},
            )
        detached[part.filename] = part.read()
    raw_purpose = request.form.get("purpose")
    purpose = purpose_from_json(raw_purpose) if raw_purpose else None
    settings = current_context().settings
    report = verify_document(
        document,
        service_trust(),
        purpose,
        max_bytes=settings.max_document_bytes,
        detached=detached,
    )
    if output == "pdf":
        return Response(report_pdf(report, lang or "ja"), mimetype="application/pdf")
    if output == "text" or lang is not None:
        return Response(render_text(report, lang or "ja"), mimetype="text/plain; charset=utf-8")
    return jsonify(report.to_json())
