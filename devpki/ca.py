"""A development certification authority: issuance, revocation, CRLs and OCSP."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
)
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

CRL_VALIDITY = timedelta(days=1)  # JPKI publishes daily
OCSP_VALIDITY = timedelta(hours=1)

REVOCATION_REASONS = {flag.value: flag for flag in x509.ReasonFlags}


class UnknownCertificate(LookupError):
    """The serial number was not issued by this CA."""


@dataclass(frozen=True)
class CaUrls:
    """Where relying parties fetch this CA's certificate, CRL and OCSP answers."""

    ca_issuers: str
    crl: str
    ocsp: str


def new_rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class DevCA:
    """One development CA whose state (issued and revoked serials) lives in a directory.

    The state file is re-read when another process (the CLI) changed it, so a
    running service answers OCSP and CRL requests with the current status.
    """

    def __init__(self, slug: str, directory: Path, urls: CaUrls) -> None:
        self.slug = slug
        self.directory = directory
        self.urls = urls
        self._lock = threading.Lock()
        self._state_mtime = 0
        self._state: dict[str, dict[str, dict[str, str]]] = {"issued": {}, "revoked": {}}
        self.certificate = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
        self._key = serialization.load_pem_private_key(
            (directory / "key.pem").read_bytes(), password=None
        )
        self._load_state()

    # -- creation -----------------------------------------------------------

    @classmethod
    def create(
        cls,
        slug: str,
        directory: Path,
        subject: x509.Name,
        urls: CaUrls,
        *,
        now: datetime,
        issuer: DevCA | None = None,
        path_length: int | None = None,
        lifetime: timedelta = timedelta(days=3650),
    ) -> DevCA:
        """Create a CA (self-signed root when ``issuer`` is None) in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = new_rsa_key()
        public = key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )
        if issuer is None:
            cert = builder.issuer_name(subject).sign(key, hashes.SHA256())
        else:
            cert = issuer.sign_builder(builder.issuer_name(issuer.certificate.subject), now=now)
        write_private(
            directory / "key.pem",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _atomic_write(directory / "state.json", json.dumps({"issued": {}, "revoked": {}}))
        return cls(slug, directory, urls)

    # -- issuance -----------------------------------------------------------

    def sign_builder(self, builder: x509.CertificateBuilder, *, now: datetime) -> x509.Certificate:
        """Add the issuer-side extensions, sign, and record the serial as issued."""
        issuer_ski = self.certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = (
            builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
                critical=False,
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(self.urls.crl)], None, None, None
                        )
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self.urls.ocsp),
                        ),
                        x509.AccessDescription(
                            x509.AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(self.urls.ca_issuers),
                        ),
                    ]
                ),
                critical=False,
            )
        )
        cert = builder.sign(self._key, hashes.SHA256())  # type: ignore[arg-type]
        self._update_state(
            lambda s: s["issued"].__setitem__(
                format(cert.serial_number, "x"),
                {
                    "subject": cert.subject.rfc4514_string(),
                    "not_after": cert.not_valid_after_utc.isoformat(),
                    "issued_at": now.isoformat(),
                },
            )
        )
        return cert

    def issue(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        *,
        now: datetime,
        key_usage: x509.KeyUsage,
        extended_key_usage: list[x509.ObjectIdentifier] | None = None,
        lifetime: timedelta = timedelta(days=730),
        extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    ) -> x509.Certificate:
        """Issue an end-entity certificate for ``public_key``."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(min(now + lifetime, self.certificate.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        if extended_key_usage:
            critical = ExtendedKeyUsageOID.TIME_STAMPING in extended_key_usage
            builder = builder.add_extension(
                x509.ExtendedKeyUsage(extended_key_usage), critical=critical
            )
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        return self.sign_builder(builder, now=now)

    # -- revocation ---------------------------------------------------------

    def revoke(self, serial: int, reason: x509.ReasonFlags, *, now: datetime) -> None:
        """Revoke a certificate this CA issued; raises :class:`UnknownCertificate` otherwise."""
        key = format(serial, "x")

        def apply(state: dict) -> None:
            if key not in state["issued"]:
                raise UnknownCertificate(f"serial {key} was not issued by {self.slug}")
            state["revoked"].setdefault(key, {"time": now.isoformat(), "reason": reason.value})

        self._update_state(apply)

    def status(self, serial: int) -> tuple[str, datetime | None, x509.ReasonFlags | None]:
        """('good' | 'revoked' | 'unknown', revocation time, reason)."""
        self._load_state()
        key = format(serial, "x")
        if key in self._state["revoked"]:
            entry = self._state["revoked"][key]
            return (
                "revoked",
                datetime.fromisoformat(entry["time"]),
                REVOCATION_REASONS[entry["reason"]],
            )
        if key in self._state["issued"]:
            return ("good", None, None)
        return ("unknown", None, None)

    def crl(self, *, now: datetime) -> bytes:
        """A fresh DER CRL listing every revoked serial, valid for a day."""
        self._load_state()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now)
            .next_update(now + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.certificate.public_key()  # type: ignore[arg-type]
                ),
                critical=False,
            )
        )
        for serial_hex, entry in sorted(self._state["revoked"].items()):
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial_hex, 16))
                .revocation_date(datetime.fromisoformat(entry["time"]))
            )
            reason = REVOCATION_REASONS[entry["reason"]]
            if reason is not x509.ReasonFlags.unspecified:
                revoked = revoked.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        return builder.sign(self._key, hashes.SHA256()).public_bytes(  # type: ignore[arg-type]
            serialization.Encoding.DER
        )

    def ocsp_response(self, request_der: bytes, *, now: datetime) -> bytes:
        """Answer a DER OCSP request (RFC 6960); malformed requests get an error status."""
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            hash_algorithm = request.hash_algorithm
            issuer_key_hash = request.issuer_key_hash
            issuer_name_hash = request.issuer_name_hash
            serial = request.serial_number
        except (ValueError, TypeError, NotImplementedError):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        if not isinstance(hash_algorithm, hashes.SHA1 | hashes.SHA256):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        if (issuer_key_hash, issuer_name_hash) != self._issuer_hashes(hash_algorithm):
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        state, when, reason = self.status(serial)
        cert_status = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }[state]
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=issuer_name_hash,
                issuer_key_hash=issuer_key_hash,
                serial_number=serial,
                algorithm=hash_algorithm,
                cert_status=cert_status,
                this_update=now,
                next_update=now + OCSP_VALIDITY,
                revocation_time=when,
                revocation_reason=reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.certificate)
        )
        for ext in request.extensions:
            if isinstance(ext.value, x509.OCSPNonce):
                builder = builder.add_extension(ext.value, critical=False)
        return builder.sign(self._key, hashes.SHA256()).public_bytes(  # type: ignore[arg-type]
            serialization.Encoding.DER
        )

    # -- internals ----------------------------------------------------------

    def _issuer_hashes(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        spki = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_bits = asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]
        key_hash = hashes.Hash(algorithm)
        key_hash.update(key_bits)
        name_hash = hashes.Hash(algorithm)
        name_hash.update(self.certificate.subject.public_bytes())
        return key_hash.finalize(), name_hash.finalize()

    def _load_state(self) -> None:
        path = self.directory / "state.json"
        with self._lock:
            mtime = path.stat().st_mtime_ns
            if mtime != self._state_mtime:
                self._state = json.loads(path.read_text(encoding="utf-8"))
                self._state_mtime = mtime

    def _update_state(self, change) -> None:  # type: ignore[no-untyped-def]
        path = self.directory / "state.json"
        with self._lock:
            state = json.loads(path.read_text(encoding="utf-8"))
            change(state)
            _atomic_write(path, json.dumps(state, indent=1, sort_keys=True))
            self._state = state
            self._state_mtime = path.stat().st_mtime_ns


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def end_entity_key_usage(*, non_repudiation: bool, crl_sign: bool = False) -> x509.KeyUsage:
    """digitalSignature, plus nonRepudiation (contentCommitment) for signing certificates
    and cRLSign for an end entity that signs CRLs (the attribute authority)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
