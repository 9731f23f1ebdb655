"""Hostile PDFs given to the verifier (issue 13): objects nested a hundred thousand
deep, a stream claiming a terabyte, an object stream that inflates to 200 MiB. Each is
refused as DOCUMENT_MALFORMED (problem+json 422 through the API, exit 2 with one line
on the command line) within a bounded time and memory, never a 500.

The updates are appended by hand after a valid signature, as an attacker's tool would
write them (pyHanko's writer would refuse to nest that deep)."""

from __future__ import annotations

import base64
import io
import re
import time
import tracemalloc
import zlib
from io import BytesIO

import pytest
from click.testing import CliRunner
from helpers_auth import audit_codes, problem
from pyhanko.pdf_utils.reader import PdfFileReader

from app.cli.main import main
from app.people.sign_in import AuthService
from signing import PadesLevel, PadesSpec
from signing.errors import DocumentMalformed
from signing.verification import VerificationTrust, verify_pdf

SECONDS = 5.0
MIB = 1024 * 1024


def _tail(pdf: bytes) -> tuple[int, int, int, bytes]:
    """(the last xref offset, the catalogue's number, /Size, the catalogue as written)."""
    prev = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    reader = PdfFileReader(BytesIO(pdf), strict=False)
    out = BytesIO()
    reader.root.write_to_stream(out)
    return prev, reader.trailer.raw_get("/Root").idnum, int(reader.trailer["/Size"]), out.getvalue()


def _with_key(catalogue: bytes, key: bytes, number: int) -> bytes:
    return catalogue.rstrip()[:-2] + b" /%s %d 0 R >>" % (key, number)


def _append(pdf: bytes, objects: dict[int, bytes], root: int, size: int, prev: int) -> bytes:
    body = bytearray(pdf)
    offsets = {}
    for number, data in objects.items():
        offsets[number] = len(body)
        body += b"%d 0 obj\n%s\nendobj\n" % (number, data)
    xref = len(body)
    body += b"xref\n0 1\n0000000000 65535 f \n"
    for number in sorted(offsets):
        body += b"%d 1\n%010d 00000 n \n" % (number, offsets[number])
    body += b"trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\n" % (size, root, prev)
    return bytes(body + b"startxref\n%d\n%%%%EOF\n" % xref)


def deeply_nested(pdf: bytes, depth: int = 100_000) -> bytes:
    """The catalogue pointing at an array nested ``depth`` deep."""
    prev, root, size, catalogue = _tail(pdf)
    nest = b"[" * depth + b"]" * depth
    objects = {root: _with_key(catalogue, b"Nest", size), size: nest}
    return _append(pdf, objects, root, size + 1, prev)


def huge_length(pdf: bytes) -> bytes:
    """The catalogue pointing at a stream whose /Length claims about a terabyte."""
    prev, root, size, catalogue = _tail(pdf)
    stream = b"<< /Length 999999999999 >>\nstream\n" + b"x" * 100 + b"\nendstream"
    objects = {root: _with_key(catalogue, b"Huge", size), size: stream}
    return _append(pdf, objects, root, size + 1, prev)


def object_stream_bomb(pdf: bytes, inflated_mib: int = 200) -> bytes:
    """The catalogue moved into an object stream that inflates to ``inflated_mib`` MiB
    (about 200 KiB compressed), listed by a cross-reference stream."""
    prev, root, size, catalogue = _tail(pdf)
    header = b"%d 0 " % root
    deflate = zlib.compressobj(9)
    data = deflate.compress(header + catalogue + b" ")
    blank = b" " * MIB
    data += b"".join(deflate.compress(blank) for _ in range(inflated_mib)) + deflate.flush()
    objstm, xref_number = size, size + 1
    body = bytearray(pdf)
    objstm_at = len(body)
    body += b"%d 0 obj\n<< /Type /ObjStm /N 1 /First %d /Filter /FlateDecode /Length %d >>\n" % (
        objstm,
        len(header),
        len(data),
    )
    body += b"stream\n" + data + b"\nendstream\nendobj\n"
    xref_at = len(body)
    rows = b"\x02" + objstm.to_bytes(4, "big") + b"\x00\x00"  # the catalogue: in objstm, #0
    rows += b"\x01" + objstm_at.to_bytes(4, "big") + b"\x00\x00"
    rows += b"\x01" + xref_at.to_bytes(4, "big") + b"\x00\x00"
    body += (
        b"%d 0 obj\n<< /Type /XRef /Size %d /Root %d 0 R /Prev %d /W [1 4 2] "
        b"/Index [%d 1 %d 2] /Length %d >>\nstream\n"
        % (xref_number, size + 2, root, prev, root, objstm, len(rows))
    )
    body += rows + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(body)


BOMBS = {"nested": deeply_nested, "huge-length": huge_length, "object-stream": object_stream_bomb}


@pytest.fixture(scope="module")
def bombs(pades_signer, employee, bid) -> dict[str, bytes]:
    signed = pades_signer.sign(bid, employee, PadesSpec(level=PadesLevel.B_T)).pdf
    return {name: make(signed) for name, make in BOMBS.items()}


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_pdf_bomb_is_refused_in_bounded_time_and_memory(bombs, trust_roots, name):
    trust = VerificationTrust(roots=tuple(trust_roots))
    tracemalloc.start()
    began = time.perf_counter()
    try:
        with pytest.raises(DocumentMalformed):
            verify_pdf(bombs[name], trust)
        seconds = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < SECONDS
    assert peak < 64 * MIB, f"{peak / MIB:.0f} MiB"


def test_bombs_are_problems_through_the_api_and_one_line_on_the_command_line(
    app, client, bombs, base_settings, tmp_path, cli_env
):
    context = app.extensions["dairi"]
    with context.session_factory() as session, session.begin():
        auth = AuthService(session, context.settings, context.certificate_validator, context.clock)
        issued = auth.create_client(
            "調達システム", ("signatures:verify",), "test", all_corporations=True
        )
        pair = f"{issued.row.client_id}:{issued.client_secret}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    trust = str(base_settings.trust_dir)
    for name, pdf in bombs.items():
        response = client.post(
            "/api/v1/verifications",
            headers=headers,
            data={"document": (io.BytesIO(pdf), "bid.pdf", "application/pdf")},
            content_type="multipart/form-data",
        )
        problem(response, 422, "DOCUMENT_MALFORMED")
        path = tmp_path / f"{name}.pdf"
        path.write_bytes(pdf)
        result = CliRunner().invoke(main, ["verify", str(path), "--trust", trust])
        assert result.exit_code == 2, (name, result.output)
        assert result.output.startswith("error DOCUMENT_MALFORMED: ")
        assert result.output.count("\n") == 1, result.output
    refused = [code for tag, code in audit_codes(app) if tag == "verification:request:refused"]
    # The first refusal is an event; its repeats in the same window are counted.
    assert refused == ["DOCUMENT_MALFORMED"]
