"""dairi reaches into pyhanko-certvalidator and pyHanko only through their public seams
(issue 10 item 6): the fetcher interfaces and ``RequestsFetcherBackend`` instead of
overriding the requests fetchers' ``_get``/``_post``; a ``SignedAttributeProviderSpec``
on ``Signer.signed_attr_prov_spec`` instead of overriding the internal
``Signer._signed_attr_providers``; the validation context's OCSP responses and CRLs
instead of walking a traceback's module names to tell OCSP from CRL. The behaviour each
seam carries is tested where it lives (test_revocation_fetch, test_pki_server,
test_identity_validation, test_pades); this keeps the pins from coming back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hsm", "identity", "delegation", "signing", "audit", "devpki", "app")
PINS = {"_get", "_post", "_signed_attr_providers", "_signed_attr_provider_spec"}


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_override_of_library_internals(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert not defined & PINS, f"{path} overrides {sorted(defined & PINS)}"
    frames = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in {"tb_frame", "tb_next"}
    ]
    assert not frames, f"{path} walks a traceback (line {frames[0].lineno})"
