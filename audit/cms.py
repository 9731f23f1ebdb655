"""Just enough CMS (RFC 5652) and RFC 3161 for audit checkpoints, made and checked
without a service: a detached SignedData over a checkpoint statement, the time-stamp
token over its signature value, and a certificate path to a trusted root.

Signing takes a callable that signs bytes with SHA-256 (PKCS#1 v1.5 for RSA, DER
ECDSA-Sig-Value for EC), so the key can stay in the HSM (:meth:`hsm.Hsm.sign`).
Checking uses asn1crypto to read and ``cryptography`` to verify, nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, cms, core, tsp, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from dairi import DairiError

_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
_DER = Encoding.DER
_CRYPTO_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class CmsInvalid(DairiError):
    """A signature, time-stamp token or certificate path that does not hold.

    ``reason`` says which: ``malformed``, ``content`` (the signed content is not
    this one), ``signature`` (the signer's key did not make this signature),
    ``untrusted`` (no path from the signer to a trusted root), ``imprint`` (a
    time-stamp over other data).
    """

    code = "AUDIT_SIGNATURE_INVALID"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def digest(algorithm: str, data: bytes) -> bytes:
    try:
        return _HASHES[algorithm](data).digest()
    except KeyError:
        raise CmsInvalid(f"unsupported digest algorithm {algorithm}", "malformed") from None


def sign_detached(
    data: bytes,
    certificate_der: bytes,
    chain_der: Sequence[bytes],
    sign: Callable[[bytes], bytes],
    *,
    signing_time: datetime,
) -> bytes:
    """DER ContentInfo: a detached CMS SignedData over ``data`` (SHA-256, with
    content-type, signing-time, message-digest and signingCertificateV2 signed
    attributes), the signer certificate and ``chain_der`` included."""
    cert = x509.Certificate.load(certificate_der)
    algorithm = cert.public_key.algorithm
    if algorithm not in ("rsa", "ec"):
        raise CmsInvalid(f"unsupported key algorithm {algorithm}", "malformed")
    signed_attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute(
                {"type": "signing_time", "values": [cms.Time(name="utc_time", value=signing_time)]}
            ),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(data).digest()]}),
            cms.CMSAttribute(
                {
                    "type": "signing_certificate_v2",
                    "values": [
                        {"certs": [{"cert_hash": hashlib.sha256(certificate_der).digest()}]}
                    ],
                }
            ),
        ]
    )
    signature = sign(signed_attrs.dump())
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": {
                "issuer_and_serial_number": {
                    "issuer": cert.issuer,
                    "serial_number": cert.serial_number,
                }
            },
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": signed_attrs,
            "signature_algorithm": {
                "algorithm": "sha256_rsa" if algorithm == "rsa" else "sha256_ecdsa"
            },
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cert, *(x509.Certificate.load(der) for der in chain_der)],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


@dataclass(frozen=True)
class SignedDataCheck:
    """What a SignedData whose signature holds says about itself."""

    signer_der: bytes  # the signer's certificate
    certificates_der: tuple[bytes, ...]  # every certificate the SignedData carries
    signature: bytes  # the SignerInfo's signature value (what a time-stamp covers)
    content: bytes  # the signed content (the detached data, or the encapsulated one)
    signing_time: datetime | None


def _load_signed_data(der: bytes) -> cms.SignedData:
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signed = info["content"]
        signed["signer_infos"][0]["signed_attrs"]  # fails here if malformed
        return signed
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise CmsInvalid(f"not a CMS SignedData ({exc})", "malformed") from exc


def _verify_raw(
    cert: x509.Certificate,
    signature_algorithm: algos.SignedDigestAlgorithm,
    signature: bytes,
    data: bytes,
) -> None:
    public = cx509.load_der_x509_certificate(cert.dump()).public_key()
    name = signature_algorithm.signature_algo
    hash_name = signature_algorithm.hash_algo
    if hash_name not in _CRYPTO_HASHES:
        raise CmsInvalid(f"unsupported hash {hash_name}", "malformed")
    hash_algorithm = _CRYPTO_HASHES[hash_name]()
    try:
        if name == "rsassa_pkcs1v15" and isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
        elif name == "rsassa_pss" and isinstance(public, rsa.RSAPublicKey):
            public.verify(
                signature,
                data,
                padding.PSS(padding.MGF1(hash_algorithm), padding.PSS.AUTO),
                hash_algorithm,
            )
        elif name == "ecdsa" and isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hash_algorithm))
        else:
            raise CmsInvalid(
                f"signature algorithm {name} does not fit the signer's key", "signature"
            )
    except InvalidSignature as exc:
        raise CmsInvalid(
            "the signature does not verify with the signer's key", "signature"
        ) from exc


def verify_signed_data(
    der: bytes, detached: bytes | None = None, extra_certificates: Iterable[bytes] = ()
) -> SignedDataCheck:
    """Check the one signature of a SignedData over its content (``detached`` when
    the content is not encapsulated); raises :class:`CmsInvalid`. The signer's
    certificate is found among the SignedData's and ``extra_certificates``; whether
    it is trusted is :func:`verify_path`'s business."""
    signed = _load_signed_data(der)
    infos = signed["signer_infos"]
    if len(infos) != 1:
        raise CmsInvalid(f"{len(infos)} signers, expected one", "malformed")
    info = infos[0]
    encapsulated = signed["encap_content_info"]["content"]
    if detached is not None:
        if encapsulated.native is not None:
            raise CmsInvalid("expected a detached signature", "malformed")
        content = detached
    else:
        if encapsulated.native is None:
            raise CmsInvalid("no content to check", "malformed")
        if not isinstance(encapsulated, core.OctetString | core.ParsableOctetString):
            raise CmsInvalid("unexpected encapsulated content", "malformed")
        content = bytes(encapsulated.contents)
    certificates = [c.chosen for c in signed["certificates"] or [] if c.name == "certificate"]
    certificates += [x509.Certificate.load(d) for d in extra_certificates]
    sid = info["sid"]
    if sid.name != "issuer_and_serial_number":
        raise CmsInvalid("signer identified by key identifier, not issuer and serial", "malformed")
    issuer, serial = sid.chosen["issuer"].dump(), sid.chosen["serial_number"].native
    # Names compared as DER (asn1crypto's Name equality prepares strings: slow).
    signer = next(
        (c for c in certificates if c.serial_number == serial and c.issuer.dump() == issuer), None
    )
    if signer is None:
        raise CmsInvalid("the signer's certificate is not included", "untrusted")
    attrs = info["signed_attrs"]
    if not attrs:
        raise CmsInvalid("no signed attributes", "malformed")
    values = {a["type"].native: a["values"][0] for a in attrs}
    hash_name = info["digest_algorithm"]["algorithm"].native
    if values.get("message_digest") is None or values["message_digest"].native != digest(
        hash_name, content
    ):
        raise CmsInvalid("the signed content is not this content", "content")
    _verify_raw(signer, info["signature_algorithm"], info["signature"].native, attrs.untag().dump())
    signing_time = values["signing_time"].native if "signing_time" in values else None
    return SignedDataCheck(
        signer.dump(),
        tuple(c.dump() for c in certificates),
        info["signature"].native,
        content,
        signing_time,
    )


def verify_path(
    leaf_der: bytes,
    pool_der: Iterable[bytes],
    roots_der: Iterable[bytes],
    *,
    at: datetime,
    purpose: str | None = None,
) -> tuple[bytes, ...]:
    """The path leaf → … → a root of ``roots_der``, each certificate signed by the
    next and valid ``at``; issuers must be CAs. ``purpose="timeStamping"`` also
    requires that extended key usage in the leaf. Returns the path (leaf first);
    raises :class:`CmsInvalid` (``untrusted``)."""
    roots = {der for der in roots_der}
    pool = [cx509.load_der_x509_certificate(d) for d in {*pool_der, *roots}]
    cert = cx509.load_der_x509_certificate(leaf_der)
    if purpose == "timeStamping":
        usages: Iterable[cx509.ObjectIdentifier]
        try:
            usages = cert.extensions.get_extension_for_class(cx509.ExtendedKeyUsage).value
        except cx509.ExtensionNotFound:
            usages = []
        if ExtendedKeyUsageOID.TIME_STAMPING not in usages:
            raise CmsInvalid("the time-stamp signer is not a TSA certificate", "untrusted")
    path: list[cx509.Certificate] = []
    while True:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise CmsInvalid(
                f"certificate {cert.subject.rfc4514_string()} is not valid at {at.isoformat()}",
                "untrusted",
            )
        path.append(cert)
        if cert.public_bytes(_DER) in roots:
            return tuple(c.public_bytes(_DER) for c in path)
        if len(path) > 8:
            break
        issuer = None
        for candidate in pool:
            if candidate.subject != cert.issuer or candidate in path:
                continue
            try:
                constraints = candidate.extensions.get_extension_for_class(
                    cx509.BasicConstraints
                ).value
            except cx509.ExtensionNotFound:
                continue
            if not constraints.ca:
                continue
            try:
                cert.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            issuer = candidate
            break
        if issuer is None:
            break
        cert = issuer
    raise CmsInvalid(
        f"no path from {path[0].subject.rfc4514_string()} to a trusted root", "untrusted"
    )


@dataclass(frozen=True)
class TimestampCheck:
    gen_time: datetime
    tsa_der: bytes
    hash_algorithm: str


def verify_timestamp(
    token_der: bytes,
    data: bytes,
    roots_der: Iterable[bytes],
    extra_certificates: Iterable[bytes] = (),
) -> TimestampCheck:
    """Check an RFC 3161 time-stamp token over ``data``: the TSA's signature, its
    path to a root (the TSA certificate with the timeStamping usage) and the
    message imprint. Raises :class:`CmsInvalid` (``imprint`` when it covers other data)."""
    signed = verify_signed_data(token_der, extra_certificates=extra_certificates)
    info = _load_signed_data(token_der)["encap_content_info"]
    if info["content_type"].native != "tst_info":
        raise CmsInvalid("not a time-stamp token", "malformed")
    try:
        tst = tsp.TSTInfo.load(signed.content)
        imprint = tst["message_imprint"]
        hash_name = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
        gen_time = tst["gen_time"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise CmsInvalid(f"malformed TSTInfo ({exc})", "malformed") from exc
    if hashed != digest(hash_name, data):
        raise CmsInvalid("the time-stamp token covers other data", "imprint")
    verify_path(
        signed.signer_der, signed.certificates_der, roots_der, at=gen_time, purpose="timeStamping"
    )
    return TimestampCheck(gen_time, signed.signer_der, hash_name)
