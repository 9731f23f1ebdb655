"""pyHanko's ``Signer`` with the private-key operation done in dairi's HSM."""

from __future__ import annotations

from asn1crypto import algos, x509
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hsm import Hsm, KeyRef, SignatureScheme
from signing.credential import SigningCredential

_MECHANISMS = {
    SignatureScheme.RSA_PKCS1V15: "sha256_rsa",
    SignatureScheme.ECDSA: "sha256_ecdsa",
}


class HsmSigner(Signer):
    """Signs through :class:`hsm.Hsm`; built per request from DER (asn1crypto objects
    are not shared between threads)."""

    def __init__(self, hsm: Hsm, credential: SigningCredential) -> None:
        scheme = credential.scheme
        super().__init__(
            signing_cert=x509.Certificate.load(credential.certificate_der),
            cert_registry=SimpleCertificateStore.from_certs(
                [x509.Certificate.load(der) for der in credential.chain_der]
            ),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": _MECHANISMS[scheme]}),
        )
        self._hsm = hsm
        self._key_ref: KeyRef = credential.key_ref
        self._scheme = scheme
        self._size = credential.algorithm.signature_size

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False
                             ) -> bytes:
        if dry_run:
            return bytes(self._size)
        return self._hsm.sign(self._key_ref, data, hash_algorithm=digest_algorithm,
                              scheme=self._scheme)


