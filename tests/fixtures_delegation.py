"""Fixtures for mandate attribute certificates: the HSM-backed AA and its endpoints."""

from __future__ import annotations

import pytest
from helpers_delegation_ac import DER, AcEndpoints, hsm_aa, other_name_aa

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
