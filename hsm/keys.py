"""Key algorithms, signature schemes and key references."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class KeyAlgorithm(enum.StrEnum):
    """Key types dairi generates inside the token."""

    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    EC_P256 = "ec-p256"

    @property
    def is_rsa(self) -> bool:
        return self in (KeyAlgorithm.RSA_2048, KeyAlgorithm.RSA_3072)

    @property
    def rsa_bits(self) -> int:
        return {KeyAlgorithm.RSA_2048: 2048, KeyAlgorithm.RSA_3072: 3072}[self]

    @property
    def signature_size(self) -> int:
        """Upper bound of a raw signature's size in bytes (DER for ECDSA)."""
        if self.is_rsa:
            return self.rsa_bits // 8
        return 72


class SignatureScheme(enum.StrEnum):
    """How a digest is turned into a signature.

    Every scheme signs a digest computed in software: SoftHSM lacks
    ``CKM_ECDSA_SHA256``, and the CSC API's signHash hands us digests anyway.
    """

    RSA_PKCS1V15 = "rsa-pkcs1v15"
    RSA_PSS = "rsa-pss"
    ECDSA = "ecdsa"

    def fits(self, algorithm: KeyAlgorithm) -> bool:
        return algorithm.is_rsa != (self is SignatureScheme.ECDSA)


@dataclass(frozen=True, order=True)
class KeyRef:
    """A key on a token: (token label, key id, version). Every signature record stores one."""

    token_label: str
    key_id: str  # hex of CKA_ID
    version: int = 1

    def __str__(self) -> str:
        return f"{self.token_label}/{self.key_id}/v{self.version}"

    @property
    def cka_id(self) -> bytes:
        return bytes.fromhex(self.key_id)

    @property
    def cka_label(self) -> str:
        return f"dairi:{self.key_id}:v{self.version}"
