"""What the API and the command line share: the trust a verification uses and the
purpose it is asked about, read the same way, so both give the same report.

Reading a document writes nothing (no audit event: verifying is not a state change)
and logs nothing about the signer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import pem

from app.context import load_crls
from app.pdf_text import PageLayout, draw_pages, wrap
from dairi import DairiError
from delegation.scope import Purpose
from identity.trust import TrustPurpose, TrustStore
from signing.report import render_text
from signing.verification import VerificationReport, VerificationTrust, verify_pdf
from signing.verification_xml import verify_xml

# The AA certificate a trust directory holds (written by ``DevPki.export_trust``).
AA_FILE = "aa.pem"
PURPOSE_FIELDS = ("principal", "action", "procuring_entity", "case", "amount")


class PurposeInvalid(DairiError):
    """The purpose to check is not a JSON object of the documented fields."""

    code = "VERIFICATION_PURPOSE_INVALID"


def trust_from_directory(
    directory: Path,
    *,
    aa_certificates: tuple[bytes, ...] = (),
    representative_titles: tuple[str, ...] | None = None,
) -> VerificationTrust:
    """Anchors from ``<dir>/service.pem`` and ``tsa.pem`` (signers and TSAs),
    ``registrar.pem`` (representatives), ``aa.pem`` (the attribute authority, unless
    given) and the CRLs in ``*.crl``. Raises ``TrustStoreError`` for an unreadable file."""
    store = TrustStore.from_directory(directory)
    roots = store.anchors_for(TrustPurpose.SERVICE) + store.anchors_for(TrustPurpose.TSA)
    aa = aa_certificates
    aa_file = directory / AA_FILE
    if not aa and aa_file.is_file():
        aa = tuple(der for _, _, der in pem.unarmor(aa_file.read_bytes(), multiple=True))[:1]
    trust = VerificationTrust(
        roots=tuple(dict.fromkeys(roots)),
        aa_certificates=aa,
        registration_roots=store.anchors_for(TrustPurpose.REGISTRAR),
        crls=tuple(load_crls(directory)),
    )
    if representative_titles:
        trust = replace(trust, representative_titles=representative_titles)
    return trust


def purpose_from(fields: Mapping[str, object]) -> tuple[Purpose, str | None]:
    """The purpose and principal (法人番号) named by ``fields``; raises
    :class:`PurposeInvalid` or ``ScopeError`` (its own codes)."""
    unknown = set(fields) - set(PURPOSE_FIELDS)
    if unknown:
        raise PurposeInvalid(f"unknown purpose fields: {', '.join(sorted(unknown))}")
    action = fields.get("action")
    if not isinstance(action, str) or not action:
        raise PurposeInvalid("a purpose names its action (e.g. bid)")
    texts: dict[str, str | None] = {}
    for name in ("principal", "procuring_entity", "case"):
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise PurposeInvalid(f"{name} must be a string")
        texts[name] = value
    amount = fields.get("amount")
    if amount is not None and (type(amount) is not int or amount < 0):
        raise PurposeInvalid("amount must be a non-negative integer (yen)")
    purpose = Purpose(
        action=action,
        procuring_entity=texts["procuring_entity"],
        case=texts["case"],
        amount_jpy=amount,
        at=datetime.now(UTC),  # replaced by each signature's time
    )
    return purpose, texts["principal"]


def purpose_from_json(text: str) -> tuple[Purpose, str | None]:
    """:func:`purpose_from` over a JSON object."""
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise PurposeInvalid("the purpose is not JSON") from exc
    if not isinstance(fields, dict):
        raise PurposeInvalid("the purpose is a JSON object")
    return purpose_from(fields)


def verify_document(
    document: bytes,
    trust: VerificationTrust,
    purpose: tuple[Purpose, str | None] | None,
    *,
    max_bytes: int,
    detached: Mapping[str, bytes] | None = None,
) -> VerificationReport:
    """The report on ``document``, a signed PDF or an XML document with XAdES
    signatures (enveloped, or detached: ``detached`` maps the URI each names its
    document by to that document's bytes); raises the ``DOCUMENT_*`` (and ``XML_*``)
    errors for bad input."""
    asked, principal = purpose if purpose is not None else (None, None)
    if b"%PDF-" not in document[:1024] and _looks_like_xml(document):
        # A XAdES signature (e-applications): the same report, from verify_xml.
        return verify_xml(
            document, trust, asked, principal=principal, detached=detached, max_bytes=max_bytes
        )
    return verify_pdf(document, trust, asked, principal=principal, max_bytes=max_bytes)


def _looks_like_xml(document: bytes) -> bool:
    return document[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


REPORT_LAYOUT = PageLayout(font_size=10, leading=16)


def report_pdf(report: VerificationReport, lang: str = "ja") -> bytes:
    """The text rendering (検証結果) as an A4 PDF in IPA Gothic, wrapped and paged, for
    the officer who files it."""
    wrapped: list[str] = []
    for line in render_text(report, lang).splitlines():
        wrapped += (
            wrap(
                line, REPORT_LAYOUT.line_width_em, indent="　　", font_file=REPORT_LAYOUT.font_file
            )
            if line
            else [""]
        )
    per_page = REPORT_LAYOUT.lines_per_page
    pages = [wrapped[i : i + per_page] for i in range(0, len(wrapped), per_page)] or [[]]
    return draw_pages(pages, REPORT_LAYOUT)
