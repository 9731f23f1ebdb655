"""pyHanko's ``Signer`` with the private-key operation done in dairi's HSM."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence

from asn1crypto import algos, tsp, x509
from pyhanko.sign.attributes import (
    CMSAlgorithmProtectionProvider,
    CMSAttributeProvider,
    SignedAttributeProviderSpec,
    SigningCertificateV2Provider,
)
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


class _SignedAttributes(SignedAttributeProviderSpec):
    """The signed attributes dairi's signatures carry, through pyHanko's public
    ``SignedAttributeProviderSpec`` seam (``Signer.signed_attr_prov_spec``; issue 10
    item 6 — until then the internal ``Signer._signed_attr_providers`` was overridden).

    A PAdES signature gets signingCertificateV2 (its DER cached per certificate) —
    what pyHanko's CAdES spec gives a PDF signature without CAdES attributes, since
    PAdES forbids signingTime; a detached CMS signature (a grant instruction) gets it
    and cmsAlgorithmProtection, as pyHanko's generic CMS spec does. The spec replaces
    pyHanko's own choice, so CAdES attributes named in ``PdfSignatureMetadata``
    (signature policy, content time-stamp, signer attributes) would not be added: a
    caller that needs them adds their providers here: ``extra`` (a signature made
    under a mandate adds signer-attributes-v2 with the mandate AC and the
    signature-policy-identifier; :mod:`signing.pades`).
    """

    def __init__(
        self,
        signing_cert: x509.Certificate,
        mechanism: Callable[[str], algos.SignedDigestAlgorithm] | None,
        extra: Sequence[CMSAttributeProvider] = (),
    ) -> None:
        self.signing_cert = signing_cert
        self.mechanism = mechanism
        self.extra = tuple(extra)

    def signed_attr_providers(
        self, data_digest: bytes, digest_algorithm: str
    ) -> Iterator[CMSAttributeProvider]:
        yield _CachedSigningCertificateV2(self.signing_cert)
        if self.mechanism is not None:
            yield CMSAlgorithmProtectionProvider(
                digest_algo=digest_algorithm, signature_algo=self.mechanism(digest_algorithm)
            )
        yield from self.extra


class HsmSigner(Signer):
    """Signs through :class:`hsm.Hsm`; built per request from DER (asn1crypto objects
    are not shared between threads)."""

    def __init__(
        self,
        hsm: Hsm,
        credential: SigningCredential,
        *,
        pdf: bool = True,
        extra_signed_attributes: Sequence[CMSAttributeProvider] = (),
        extra_certificates_der: Sequence[bytes] = (),
    ) -> None:
        """``pdf``: the signer makes PAdES signatures (else detached CMS ones).
        ``extra_signed_attributes``: providers of further signed attributes;
        ``extra_certificates_der``: further certificates for the CMS ``certificates``
        (a signature under a mandate: the AA certificate and its issuers)."""
        scheme = credential.scheme
        super().__init__(
            signing_cert=x509.Certificate.load(credential.certificate_der),
            cert_registry=SimpleCertificateStore.from_certs(
                [
                    x509.Certificate.load(der)
                    for der in (*credential.chain_der, *extra_certificates_der)
                ]
            ),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": _MECHANISMS[scheme]}),
        )
        self._hsm = hsm
        self._key_ref: KeyRef = credential.key_ref
        self._scheme = scheme
        self._size = credential.algorithm.signature_size
        self.signed_attr_prov_spec = _SignedAttributes(
            self.signing_cert,
            None if pdf else self.get_signature_mechanism_for_digest,
            extra_signed_attributes,
        )

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run:
            return bytes(self._size)
        return self._hsm.sign(
            self._key_ref, data, hash_algorithm=digest_algorithm, scheme=self._scheme
        )


def sign_detached(hsm: Hsm, credential: SigningCredential, data: bytes) -> bytes:
    """DER CMS SignedData (detached, SHA-256, signingCertificateV2) over ``data``,
    made with the credential's HSM key: how an employee signs a grant instruction
    (a sub-delegation) with the key the parent mandate names."""
    signer = HsmSigner(hsm, credential, pdf=False)
    signed = asyncio.run(signer.async_sign_general_data(data, "sha256", detached=True))
    return bytes(signed.dump())
