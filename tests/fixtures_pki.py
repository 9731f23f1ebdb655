"""Fixtures for the development PKI, employee credentials and the PAdES signer."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from app.dev.sample_documents import bid_pdf
from app.settings import Settings
from devpki import DevPki, InProcessTimeStamper, TransportFetcherBackend
from hsm import Hsm, KeyAlgorithm
from signing import (
    PadesSigner,
    SigningCredential,
    TimestampAuthority,
    ValidationDataSource,
)

DER = serialization.Encoding.DER


@pytest.fixture(scope="session")
def pki(hsm: Hsm, base_settings: Settings) -> DevPki:
    created = DevPki.create(base_settings.pki_dir, hsm, base_url=base_settings.public_base_url)
    created.export_trust(base_settings.trust_dir)
    return created


def make_credential(
    hsm: Hsm, pki: DevPki, name: str, algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048
) -> SigningCredential:
    ref = hsm.generate_key(algorithm)
    public_key = serialization.load_der_public_key(hsm.public_key_info(ref))
    issued = pki.issue_employee_certificate(name, public_key)  # type: ignore[arg-type]
    return SigningCredential(
        ref,
        algorithm,
        issued.certificate.public_bytes(DER),
        tuple(c.public_bytes(DER) for c in issued.chain),
    )


@pytest.fixture(scope="session")
def employee(hsm: Hsm, pki: DevPki) -> SigningCredential:
    return make_credential(hsm, pki, "山田 太郎")


@pytest.fixture(scope="session")
def trust_roots(pki: DevPki) -> list[bytes]:
    return [c.public_bytes(DER) for c in pki.roots().values()]


@pytest.fixture(scope="session")
def dev_tsa(pki: DevPki) -> TimestampAuthority:
    return TimestampAuthority("dev", lambda: InProcessTimeStamper(pki.tsa))


@pytest.fixture(scope="session")
def pades_signer(
    hsm: Hsm, pki: DevPki, trust_roots: list[bytes], dev_tsa: TimestampAuthority
) -> PadesSigner:
    return PadesSigner(
        hsm,
        tsa=dev_tsa,
        validation_data=ValidationDataSource(trust_roots, TransportFetcherBackend(pki.serve_url)),
        max_document_bytes=2_000_000,
    )


@pytest.fixture(scope="session")
def bid() -> bytes:
    return bid_pdf()
