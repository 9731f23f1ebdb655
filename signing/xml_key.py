"""The HSM key as the private-key object signxml signs with."""

from __future__ import annotations

from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from hsm import Hsm
from signing.credential import SigningCredential
from signing.errors import SigningError


class HsmXmlKey:
    """What signxml calls on a cryptography private key (``RSAPrivateKey.sign(data,
    padding, algorithm)``, ``EllipticCurvePrivateKey.sign(data, signature_algorithm)``,
    ``public_key()``, ``key_size``), done by the HSM: signxml needs no patch.

    Only what dairi's signatures use is accepted (PKCS#1 v1.5 or ECDSA, SHA-256):
    anything else is refused rather than signed under another scheme. ECDSA
    signatures come back DER-encoded, as cryptography's do; signxml turns them into
    the raw r||s XML-DSig wants.
    """

    def __init__(self, hsm: Hsm, credential: SigningCredential) -> None:
        self._hsm = hsm
        self._credential = credential
        self._public_key = x509.load_der_x509_certificate(credential.certificate_der).public_key()
        self.key_size: int = cast(Any, self._public_key).key_size

    def public_key(self) -> Any:
        return self._public_key

    def sign(
        self,
        data: bytes,
        padding: Any = None,
        algorithm: Any = None,
        *,
        signature_algorithm: Any = None,
    ) -> bytes:
        if self._credential.algorithm.is_rsa:
            if not isinstance(padding, PKCS1v15):
                raise SigningError("dairi's RSA XML signatures use PKCS#1 v1.5")
        else:
            ecdsa = signature_algorithm or padding  # positional or by keyword
            if not isinstance(ecdsa, ec.ECDSA):
                raise SigningError("an EC key signs ECDSA only")
            algorithm = ecdsa.algorithm
        if not isinstance(algorithm, hashes.SHA256):
            raise SigningError("dairi's XML signatures use SHA-256")
        return self._hsm.sign(
            self._credential.key_ref,
            data,
            hash_algorithm="sha256",
            scheme=self._credential.scheme,
        )
