"""The development PKI over HTTP (development mode only): CA certificates, CRLs,
OCSP (RFC 6960) and the TSA (RFC 3161), exactly as the in-process fetchers see them."""

from __future__ import annotations

from flask import Response, request
from flask_smorest import Blueprint

from app.http.edge import body_limit
from app.http.problems import ProblemError
from app.http.request_scope import current_context
from app.http.schemas import BINARY, binary_request

blp = Blueprint(
    "pki",
    __name__,
    url_prefix="/pki",
    description="Development PKI: CA certificates, CRLs, OCSP and TSA",
)

# An OCSP or time-stamp request is a few hundred bytes; anything larger is refused
# (413) after reading at most one byte past this, whatever the transfer encoding.
MAX_PROTOCOL_REQUEST_BYTES = 64 * 1024


def _answer(method: str) -> Response:
    pki = current_context().dev_pki
    if pki is None:
        raise ProblemError(
            "DEV_PKI_UNAVAILABLE", detail="the development PKI is not set up: run `dairi dev pki`"
        )
    body = request.get_data(cache=False) if method == "POST" else None
    status, content_type, payload = pki.serve(method, request.path, body)
    if status == 404:
        raise ProblemError("NOT_FOUND")
    return Response(payload, status=status, content_type=content_type)


@blp.route("/ca/<string:name>.cer")
@blp.doc(summary="A development CA's certificate (DER)")
@blp.response(
    200, BINARY, description="The CA certificate (DER)", content_type="application/pkix-cert"
)
def ca_certificate(name: str) -> Response:
    return _answer("GET")


@blp.route("/crl/<string:name>.crl")
@blp.doc(summary="A development CA's current CRL (DER)")
@blp.response(200, BINARY, description="The CA's CRL (DER)", content_type="application/pkix-crl")
def crl(name: str) -> Response:
    return _answer("GET")


@blp.route("/ocsp/<string:name>", methods=["POST"])
@blp.doc(
    summary="OCSP responder of a development CA (application/ocsp-request)",
    requestBody=binary_request("application/ocsp-request"),
)
@blp.response(
    200,
    BINARY,
    description="A DER OCSP response (malformedRequest for a bad request)",
    content_type="application/ocsp-response",
)
@body_limit(MAX_PROTOCOL_REQUEST_BYTES)
def ocsp(name: str) -> Response:
    return _answer("POST")


@blp.route("/tsa", methods=["POST"])
@blp.doc(
    summary="The development time-stamping authority (application/timestamp-query)",
    requestBody=binary_request("application/timestamp-query"),
)
@blp.response(
    200,
    BINARY,
    description="A DER TimeStampResp (status rejection for a bad request)",
    content_type="application/timestamp-reply",
)
@body_limit(MAX_PROTOCOL_REQUEST_BYTES)
def tsa() -> Response:
    return _answer("POST")
