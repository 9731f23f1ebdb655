"""What the signing layer needs to know about a credential."""

from __future__ import annotations

from dataclasses import dataclass

from hsm import KeyAlgorithm, KeyRef, SignatureScheme


@dataclass(frozen=True)
class SigningCredential:
    """An HSM key with its certificate and the chain up to (excluding) the root, as DER."""

    key_ref: KeyRef
    algorithm: KeyAlgorithm
    certificate_der: bytes
    chain_der: tuple[bytes, ...]

    @property
    def scheme(self) -> SignatureScheme:
        return SignatureScheme.RSA_PKCS1V15 if self.algorithm.is_rsa else SignatureScheme.ECDSA
