"""Audit test helpers: an audit key in the test token certified by the development
service root, the development TSA as a time-stamp callable, and a chain of events
built and checkpointed by the domain code."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from audit import AuditEvent, Checkpoint, CheckpointSigner, take_checkpoint
from audit.chain import GENESIS_HASH
from devpki import DevPki, InProcessTimeStamper
from devpki.ca import end_entity_key_usage
from hsm import Hsm, KeyAlgorithm, SignatureScheme

DER = serialization.Encoding.DER
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def audit_signer(
    hsm: Hsm,
    pki: DevPki,
    algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048,
    common_name: str = "dairi Test Audit",
) -> CheckpointSigner:
    """An audit key generated in the token, certified by the service root."""
    ref = hsm.generate_key(algorithm)
    public_key = serialization.load_der_public_key(hsm.public_key_info(ref))
    root = pki.cas["service-root"]
    cert = root.issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dairi development"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        ),
        public_key,
        now=datetime.now(UTC) - timedelta(days=400),  # type: ignore[arg-type]
        key_usage=end_entity_key_usage(non_repudiation=True),
        lifetime=timedelta(days=1825),
    )
    scheme = (
        SignatureScheme.ECDSA if algorithm is KeyAlgorithm.EC_P256 else SignatureScheme.RSA_PKCS1V15
    )
    return CheckpointSigner(
        cert.public_bytes(DER), (), lambda data: hsm.sign(ref, data, scheme=scheme)
    )


def dev_timestamp(pki: DevPki):  # type: ignore[no-untyped-def]
    """SHA-256 digest → DER time-stamp token from the development TSA."""
    stamper = InProcessTimeStamper(pki.tsa)

    def stamp(digest: bytes) -> bytes:
        return asyncio.run(stamper.async_timestamp(digest, "sha256")).dump()

    return stamp


def build_chain(
    count: int, *, start: int = 1, previous: str = GENESIS_HASH
) -> list[tuple[AuditEvent, str]]:
    """``count`` events (a grant, a signature, a refusal … in turn), hash-chained."""
    tags = [
        "mandate:grant:issued",
        "signature:pades:created",
        "auth:login:refused",
        "mandate:grant:revoked",
    ]
    chain = []
    for i in range(start, start + count):
        event = AuditEvent(
            i,
            T0 + timedelta(seconds=i),
            f"person:{i % 7}",
            tags[i % 4],
            f"mandate-{i}",
            "7010001008844",
            {"name": "山田 太郎", "n": i},
            previous,
        )
        previous = event.digest()
        chain.append((event, previous))
    return chain


def checkpoints_at(
    chain: list[tuple[AuditEvent, str]], sequences: list[int], signer: CheckpointSigner, stamp
) -> list[Checkpoint]:  # type: ignore[no-untyped-def]
    by_sequence = {e.sequence: h for e, h in chain}
    return [
        take_checkpoint(
            s, by_sequence[s], T0 + timedelta(seconds=s, milliseconds=500), signer, stamp
        )
        for s in sequences
    ]


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()
