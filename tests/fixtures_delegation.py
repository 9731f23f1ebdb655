"""Fixtures for mandate attribute certificates: the HSM-backed AA and its endpoints."""

from __future__ import annotations

import pytest
from helpers_auth import new_corporation
from helpers_delegation_ac import DER, AcEndpoints, hsm_aa, other_name_aa
from helpers_mandates import new_employee

from delegation.certificates import AttributeAuthority


@pytest.fixture(scope="module")
def aa(hsm, pki) -> AttributeAuthority:
    return hsm_aa(hsm, pki, pki.aa_certificate.public_bytes(DER))


@pytest.fixture
def endpoints(pki, aa) -> AcEndpoints:
    return AcEndpoints(pki, aa)


@pytest.fixture(scope="module")
def other_aa(hsm, pki) -> AttributeAuthority:
    return other_name_aa(hsm, pki)


@pytest.fixture
def world(client, hsm, pki) -> dict:
    """Two corporations: A with employees 山田 and 鈴木, B with 田中 (each with a credential)."""
    a = new_corporation(pki, name="株式会社大理建設")
    b = new_corporation(pki, name="株式会社ビー")
    return {
        "a": a,
        "b": b,
        "yamada": new_employee(client, hsm, pki, a, "山田\u3000太郎"),
        "suzuki": new_employee(client, hsm, pki, a, "鈴木\u3000花子"),
        "tanaka": new_employee(client, hsm, pki, b, "田中\u3000三郎"),
    }
