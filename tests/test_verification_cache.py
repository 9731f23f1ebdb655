"""signing.verification_cache and the verifier's fast reader: cached results are keyed by
the exact bytes they depend on (a changed CRL is a new answer, never a stale one), are
bounded in number and age, and the reader reads signatures exactly as pyHanko's does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from signing import PadesLevel, PadesSpec
from signing.verification import SignedPdfReader
from signing.verification_cache import BoundedCache, digest_of
from signing.verification_mandate import _AC_STATUS, ac_status

DER = serialization.Encoding.DER


def test_digest_of_tells_apart_what_concatenation_would_not():
    assert digest_of(b"ab", b"c") != digest_of(b"a", b"bc")
    assert digest_of((b"a",), b"b") != digest_of(b"a", (b"b",))
    assert digest_of(b"1") != digest_of(1)
    assert digest_of([b"x", None]) == digest_of((b"x", None))


def test_a_bounded_cache_forgets_the_least_recent_and_the_old():
    now = [0.0]
    made = BoundedCache[str]("test", max_entries=2, max_age_seconds=10, clock=lambda: now[0])
    assert made.get_or_compute("a", lambda: "A") == "A"
    assert made.get_or_compute("b", lambda: "B") == "B"
    assert made.get_or_compute("a", lambda: "stale?") == "A"  # a hit, now most recent
    made.get_or_compute("c", lambda: "C")  # evicts b, the least recently used
    assert len(made) == 2
    assert made.get_or_compute("b", lambda: "B2") == "B2"
    now[0] = 11.0  # every entry is now older than its bound
    assert made.get_or_compute("b", lambda: "B3") == "B3"

    def fails() -> str:
        raise ValueError("not cached")

    with pytest.raises(ValueError):
        made.get_or_compute("d", fails)
    assert made.get_or_compute("d", lambda: "D") == "D"


@pytest.fixture(scope="module")
def aa():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test AA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _crl(aa, revoked: dict[int, datetime], *, number: int) -> bytes:
    key, cert = aa
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(now)
        .next_update(now + timedelta(hours=1))
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial, when in revoked.items():
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(DER)


def test_a_new_crl_revoking_a_mandate_is_never_answered_from_the_cache(aa):
    aa_der = aa[1].public_bytes(DER)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    clean = _crl(aa, {}, number=1)
    revoking = _crl(aa, {4242: when}, number=2)
    hits = _AC_STATUS.hits

    first = ac_status(aa_der, [clean], [])
    assert (first.proven, first.status_of(4242)) == (True, None)
    assert ac_status(aa_der, [clean], []) is first  # the same bytes: a hit
    assert _AC_STATUS.hits == hits + 1

    later = ac_status(aa_der, [clean, revoking], [])
    assert later.status_of(4242) == when
    # One byte of its signature changed: a different key, and a CRL that proves nothing.
    tampered = revoking[:-1] + bytes([revoking[-1] ^ 1])
    assert not ac_status(aa_der, [tampered], []).proven
    assert ac_status(aa_der, [revoking], []).status_of(4242) == when


@pytest.fixture(scope="module")
def lta_pdf(pades_signer, employee, bid) -> bytes:
    return pades_signer.sign(bid, employee, PadesSpec(level=PadesLevel.B_LTA)).pdf


def _contents(reader: PdfFileReader) -> list[bytes]:
    return [s.pkcs7_content for s in reader.embedded_signatures]


def test_the_reader_reads_each_signature_as_pyhanko_does(lta_pdf, monkeypatch):
    expected = _contents(PdfFileReader(BytesIO(lta_pdf)))
    slow_reads: list[int] = []
    pyhankos = generic.read_hex_string_from_stream

    def counted(stream):  # type: ignore[no-untyped-def]
        read = pyhankos(stream)
        slow_reads.append(len(read.original_bytes))
        return read

    monkeypatch.setattr(generic, "read_hex_string_from_stream", counted)
    fast = SignedPdfReader(lta_pdf)
    assert len(fast._gaps) == 2  # the signature and the document time-stamp
    assert _contents(fast) == expected
    assert not [n for n in slow_reads if n > 1000]  # no /Contents went through pyHanko's
    for sig in fast.embedded_signatures:
        assert sig.evaluate_signature_coverage().name in {"ENTIRE_FILE", "ENTIRE_REVISION"}


def test_a_byte_range_gap_that_is_not_the_contents_is_left_to_pyhanko(bid):
    # An object whose /ByteRange gap is another key's hex string: the placeholder would
    # land in /Foo, so the reader must fall back to pyHanko's parser.
    writer = IncrementalPdfFileWriter(BytesIO(bid))
    wide = generic.NumberObject(1_000_000_000)
    decoy = generic.DictionaryObject(
        {
            generic.NameObject("/Foo"): generic.ByteStringObject(b"\x01\x02\x03\x04" * 8),
            generic.NameObject("/ByteRange"): generic.ArrayObject([wide] * 4),
            generic.NameObject("/Contents"): generic.ByteStringObject(b"\xab\xcd"),
        }
    )
    ref = writer.add_object(decoy)
    writer.root["/Decoy"] = ref
    writer.update_root()
    out = BytesIO()
    writer.write(out)
    pdf = out.getvalue()
    start = pdf.index(b"<" + (b"01020304" * 8) + b">")
    end = start + 2 + 64
    fields = b"[ %010d %010d %010d %010d ]" % (0, start, end, len(pdf) - end)
    pdf = pdf.replace(b"[ 1000000000 1000000000 1000000000 1000000000 ]", fields)
    fast = SignedPdfReader(pdf)
    assert fast._gaps == [(start, end)]
    read = fast.get_object(ref.reference)
    plain = PdfFileReader(BytesIO(pdf)).get_object(ref.reference)
    assert read["/Foo"].original_bytes == plain["/Foo"].original_bytes == b"\x01\x02\x03\x04" * 8
    assert read["/Contents"].original_bytes == b"\xab\xcd"
