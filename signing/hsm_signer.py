"""pyHanko's ``Signer`` with the private-key operation done in dairi's HSM."""

from __future__ import annotations

import asyncio
import hashlib
import threading

from asn1crypto import algos, tsp, x509
from pyhanko.sign.attributes import SigningCertificateV2Provider
from pyhanko.sign.general import as_signing_certificate_v2
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from hsm import Hsm, KeyRef, SignatureScheme
from signing.credential import SigningCredential

_MECHANISMS = {
    SignatureScheme.RSA_PKCS1V15: "sha256_rsa",
    SignatureScheme.ECDSA: "sha256_ecdsa",
}

# DER of the signing-certificate-v2 value per certificate. asn1crypto takes
# ~1.5 ms to build and encode it (the issuer name is re-encoded under an
# explicit tag), a tenth of a B-B signature; loading cached DER costs
# microseconds. Only bytes are shared between threads.
_ESS_CACHE: dict[bytes, bytes] = {}
_ESS_LOCK = threading.Lock()


def _signing_certificate_v2(cert: x509.Certificate) -> tsp.SigningCertificateV2:
    key = hashlib.sha256(cert.dump()).digest()
    with _ESS_LOCK:
        der = _ESS_CACHE.get(key)
    if der is None:
        der = as_signing_certificate_v2(cert).dump()
        with _ESS_LOCK:
            _ESS_CACHE[key] = der
    return tsp.SigningCertificateV2.load(der)


class _CachedSigningCertificateV2(SigningCertificateV2Provider):
    async def build_attr_value(self, dry_run: bool = False) -> tsp.SigningCertificateV2:
        return _signing_certificate_v2(self.signing_cert)


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

    def _signed_attr_providers(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        # pyHanko internal API (pinned <0.39): same providers, cached ESS value.
        for provider in super()._signed_attr_providers(*args, **kwargs):
            if type(provider) is SigningCertificateV2Provider:
                yield _CachedSigningCertificateV2(provider.signing_cert)
            else:
                yield provider

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False
                             ) -> bytes:
        if dry_run:
            return bytes(self._size)
        return self._hsm.sign(self._key_ref, data, hash_algorithm=digest_algorithm,
                              scheme=self._scheme)


def sign_detached(hsm: Hsm, credential: SigningCredential, data: bytes) -> bytes:
    """DER CMS SignedData (detached, SHA-256, signingCertificateV2) over ``data``,
    made with the credential's HSM key: how an employee signs a grant instruction
    (a sub-delegation) with the key the parent mandate names."""
    signer = HsmSigner(hsm, credential)
    signed = asyncio.run(signer.async_sign_general_data(data, "sha256", detached=True))
    return bytes(signed.dump())
