"""Certificate signing requests signed by a token key."""

from __future__ import annotations

from asn1crypto import csr, keys, x509

from hsm.device import Hsm
from hsm.keys import KeyRef, SignatureScheme

_SIGNATURE_ALGORITHMS = {
    "rsa": ("sha256_rsa", SignatureScheme.RSA_PKCS1V15),
    "ec": ("sha256_ecdsa", SignatureScheme.ECDSA),
}


def signature_algorithm_for(public_key_info: keys.PublicKeyInfo) -> tuple[str, SignatureScheme]:
    """The (X.509 signature algorithm, HSM scheme) dairi uses for a key."""
    return _SIGNATURE_ALGORITHMS[public_key_info.algorithm]


def build_csr(hsm: Hsm, ref: KeyRef, subject: x509.Name) -> bytes:
    """A PKCS#10 request for ``ref``'s public key, signed on the token (DER)."""
    spki = keys.PublicKeyInfo.load(hsm.public_key_info(ref))
    algorithm, scheme = signature_algorithm_for(spki)
    info = csr.CertificationRequestInfo(
        {"version": "v1", "subject": subject, "subject_pk_info": spki, "attributes": []}
    )
    signature = hsm.sign(ref, info.dump(), scheme=scheme)
    return csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": algorithm},
            "signature": signature,
        }
    ).dump()
