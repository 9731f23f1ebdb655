"""The development PKI: every certificate dairi's embedded defaults and tests need, offline.

Hierarchies (DESIGN §4, §5), each a separate root as in reality:

- ``jpki-auth``, ``jpki-sign``: JPKI-like user-authentication and signing CAs;
- ``registrar``: a Ministry-of-Justice-like registrar (商業登記電子証明書);
- ``service-root`` → ``employee-signing`` (the service's CA for employee
  signing certificates), plus end entities ``tsa`` (software key) and ``aa``
  (the attribute authority; its key is generated in the HSM).

CRLs, OCSP and the TSA answer in process (:meth:`DevPki.serve`), and the running
service exposes the same answers under ``/pki/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dairi import DairiError
from devpki.ca import CaUrls, DevCA, end_entity_key_usage, new_rsa_key, utcnow, write_private
from devpki.tsa import DevTsa
from hsm import Hsm, KeyAlgorithm, KeyRef

MANIFEST = "manifest.json"
JPKI_AGENCY = "Japan Agency for Local Authority Information Systems"


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


# Subject names of the CAs; the JPKI ones are the issuer names real cards carry.
CA_SUBJECTS: dict[str, x509.Name] = {
    "jpki-auth": _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, "JPKI"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for user authentication"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, JPKI_AGENCY),
    ),
    "jpki-sign": _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, "JPKI"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "JPKI for digital signature"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, JPKI_AGENCY),
    ),
    "registrar": _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, "Japanese Government"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Ministry of Justice"),
        (NameOID.COMMON_NAME, "Registrar of Tokyo Legal Affairs Bureau"),
    ),
    "service-root": _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, "dairi development"),
        (NameOID.COMMON_NAME, "dairi Development Root CA"),
    ),
    "employee-signing": _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.ORGANIZATION_NAME, "dairi development"),
        (NameOID.COMMON_NAME, "dairi Development Employee Signing CA"),
    ),
}
ROOTS = ("jpki-auth", "jpki-sign", "registrar", "service-root")


@dataclass(frozen=True)
class EndEntity:
    """A development end-entity certificate and, where it is software-held, its key."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # issuer first, up to (not including) the root


class PkiError(DairiError):
    code = "DEV_PKI_ERROR"


class DevPki:
    """The development PKI stored under one directory."""

    def __init__(self, directory: Path, clock: Callable[[], datetime] = utcnow) -> None:
        self.directory = directory
        self.clock = clock
        try:
            manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PkiError(f"no development PKI in {directory} (run `dairi dev pki`)") from exc
        self.base_url: str = manifest["base_url"]
        self.cas = {
            slug: DevCA(slug, directory / slug, urls_for(self.base_url, slug))
            for slug in CA_SUBJECTS
        }
        aa = manifest["aa"]
        self.aa_key = KeyRef(aa["token_label"], aa["key_id"], aa["version"])
        self.aa_certificate = _load_cert(directory / "aa" / "cert.pem")
        self.tsa_certificate = _load_cert(directory / "tsa" / "cert.pem")
        tsa_key = serialization.load_pem_private_key(
            (directory / "tsa" / "key.pem").read_bytes(), password=None
        )
        self.tsa = DevTsa(
            self.tsa_certificate.public_bytes(serialization.Encoding.DER),
            tsa_key,  # type: ignore[arg-type]
            [],
            clock,
        )

    # -- creation -----------------------------------------------------------

    @classmethod
    def exists(cls, directory: Path) -> bool:
        return (directory / MANIFEST).is_file()

    @classmethod
    def create(
        cls,
        directory: Path,
        hsm: Hsm,
        *,
        base_url: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> DevPki:
        """Create every CA, the TSA and the attribute authority (key in ``hsm``)."""
        now = clock()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        cas: dict[str, DevCA] = {}
        for slug in ROOTS:
            cas[slug] = DevCA.create(
                slug, directory / slug, CA_SUBJECTS[slug], urls_for(base_url, slug), now=now
            )
        cas["employee-signing"] = DevCA.create(
            "employee-signing",
            directory / "employee-signing",
            CA_SUBJECTS["employee-signing"],
            urls_for(base_url, "employee-signing"),
            now=now,
            issuer=cas["service-root"],
            path_length=0,
            lifetime=timedelta(days=1825),
        )
        root = cas["service-root"]
        service_org = (NameOID.ORGANIZATION_NAME, "dairi development")

        tsa_key = new_rsa_key()
        tsa_cert = root.issue(
            _name(
                (NameOID.COUNTRY_NAME, "JP"),
                service_org,
                (NameOID.COMMON_NAME, "dairi Development TSA"),
            ),
            tsa_key.public_key(),
            now=now,
            key_usage=end_entity_key_usage(non_repudiation=True),
            extended_key_usage=[ExtendedKeyUsageOID.TIME_STAMPING],
            lifetime=timedelta(days=1825),
        )
        (directory / "tsa").mkdir(exist_ok=True, mode=0o700)
        _write_cert(directory / "tsa" / "cert.pem", tsa_cert)
        write_private(
            directory / "tsa" / "key.pem",
            tsa_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

        aa_key = hsm.generate_key(KeyAlgorithm.RSA_2048)
        aa_cert = root.issue(
            _name(
                (NameOID.COUNTRY_NAME, "JP"),
                service_org,
                (NameOID.COMMON_NAME, "dairi Development Attribute Authority"),
            ),
            _public_key(hsm, aa_key),
            now=now,
            # cRLSign: the AA signs the CRL of its attribute certificates (RFC 5755 §6),
            # and validators refuse a CRL whose issuer's keyUsage lacks it.
            key_usage=end_entity_key_usage(non_repudiation=True, crl_sign=True),
            lifetime=timedelta(days=1825),
        )
        (directory / "aa").mkdir(exist_ok=True, mode=0o700)
        _write_cert(directory / "aa" / "cert.pem", aa_cert)
        hsm.store_certificate(aa_key, aa_cert.public_bytes(serialization.Encoding.DER))

        manifest = {
            "version": 1,
            "base_url": base_url,
            "created_at": now.isoformat(),
            "aa": {
                "token_label": aa_key.token_label,
                "key_id": aa_key.key_id,
                "version": aa_key.version,
            },
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return cls(directory, clock)

    # -- use ----------------------------------------------------------------

    def roots(self) -> dict[str, x509.Certificate]:
        return {slug: self.cas[slug].certificate for slug in ROOTS}

    def export_trust(self, directory: Path) -> list[Path]:
        """Write the roots a verifier needs (and the AA certificate) as PEM files.

        One file per root slug, plus ``tsa.pem`` and ``service.pem`` (the
        service root again) so that every ``identity.trust.TrustPurpose`` has
        its ``<purpose>.pem``.
        """
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for slug, cert in self.roots().items():
            written.append(_write_cert(directory / f"{slug}.pem", cert))
        written.append(_write_cert(directory / "aa.pem", self.aa_certificate))
        for purpose in ("tsa", "service"):
            written.append(
                _write_cert(directory / f"{purpose}.pem", self.cas["service-root"].certificate)
            )
        return written

    def issue_employee_certificate(
        self,
        subject_name: str,
        public_key: CertificatePublicKeyTypes,
        *,
        corporate_name: str | None = None,
        corporate_number: str | None = None,
    ) -> EndEntity:
        """Certify an employee signing key (digitalSignature + nonRepudiation).

        With the employer given, the subject names it as a bid-signing certificate must
        (DESIGN §5): ``O`` = 商号 and ``organizationIdentifier`` ``NTRJP-<法人番号>``.
        """
        ca = self.cas["employee-signing"]
        employer = [(NameOID.ORGANIZATION_NAME, corporate_name or "dairi development")]
        if corporate_number is not None:
            employer.append((NameOID.ORGANIZATION_IDENTIFIER, f"NTRJP-{corporate_number}"))
        cert = ca.issue(
            _name((NameOID.COUNTRY_NAME, "JP"), *employer, (NameOID.COMMON_NAME, subject_name)),
            public_key,
            now=self.clock(),
            key_usage=end_entity_key_usage(non_repudiation=True),
        )
        return EndEntity(cert, (ca.certificate,))

    def certify_csr(self, csr_der: bytes) -> EndEntity:
        """Act as the 'real CA' of the external path: certify a PKCS#10 request."""
        try:
            request = x509.load_der_x509_csr(csr_der)
        except ValueError as exc:
            raise PkiError("not a DER PKCS#10 certificate request") from exc
        if not request.is_signature_valid:
            raise PkiError("the certificate request's signature does not verify")

        def first(oid: x509.ObjectIdentifier) -> str | None:
            found = request.subject.get_attributes_for_oid(oid)
            return str(found[0].value) if found else None

        # The employer as the request names it (dairi's CSRs do: 商号, NTRJP-法人番号).
        identifier = first(NameOID.ORGANIZATION_IDENTIFIER) or ""
        return self.issue_employee_certificate(
            first(NameOID.COMMON_NAME) or "employee",
            request.public_key(),
            corporate_name=first(NameOID.ORGANIZATION_NAME),
            corporate_number=identifier[6:] if identifier.startswith("NTRJP-") else None,
        )

    def certify_attribute_authority(
        self, csr_der: bytes, *, common_name: str | None = None
    ) -> EndEntity:
        """Act as the CA of a production attribute authority: certify the PKCS#10 request
        of an AA key made in an HSM (``dairi aa create-key``) under the service root, with
        the key usages an AA needs (digitalSignature and nonRepudiation for its ACs and
        documents, cRLSign for the CRL of its ACs). An end-entity certificate, not a CA."""
        try:
            request = x509.load_der_x509_csr(csr_der)
        except ValueError as exc:
            raise PkiError("not a DER PKCS#10 certificate request") from exc
        if not request.is_signature_valid:
            raise PkiError("the certificate request's signature does not verify")
        cns = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        orgs = request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        name = common_name or (str(cns[0].value) if cns else "dairi Attribute Authority")
        organization = str(orgs[0].value) if orgs else "dairi development"
        root = self.cas["service-root"]
        cert = root.issue(
            _name(
                (NameOID.COUNTRY_NAME, "JP"),
                (NameOID.ORGANIZATION_NAME, organization),
                (NameOID.COMMON_NAME, name),
            ),
            request.public_key(),
            now=self.clock(),
            key_usage=end_entity_key_usage(non_repudiation=True, crl_sign=True),
            lifetime=timedelta(days=825),
        )
        return EndEntity(cert, ())

    def ca_for_slug(self, slug: str) -> DevCA:
        try:
            return self.cas[slug]
        except KeyError as exc:
            raise PkiError(f"no development CA {slug!r}") from exc

    def serve(self, method: str, path: str, body: bytes | None) -> tuple[int, str, bytes]:
        """Answer a request for ``/pki/...``: (HTTP status, content type, body).

        ``/pki/ca/<slug>.cer``, ``/pki/crl/<slug>.crl``, ``POST /pki/ocsp/<slug>``,
        ``POST /pki/tsa``. The same function backs the Flask views and the
        in-process fetchers, so tests exercise exactly what clients get.
        """
        now = self.clock()
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "pki":
            kind, leaf = parts[1], parts[2]
            if kind == "ca" and leaf.endswith(".cer") and method == "GET":
                ca = self.cas.get(leaf[:-4])
                if ca:
                    return (
                        200,
                        "application/pkix-cert",
                        ca.certificate.public_bytes(serialization.Encoding.DER),
                    )
            elif kind == "crl" and leaf.endswith(".crl") and method == "GET":
                ca = self.cas.get(leaf[:-4])
                if ca:
                    return 200, "application/pkix-crl", ca.crl(now=now)
            elif kind == "ocsp" and method == "POST":
                ca = self.cas.get(leaf)
                if ca:
                    return 200, "application/ocsp-response", ca.ocsp_response(body or b"", now=now)
        elif parts == ["pki", "tsa"] and method == "POST":
            return 200, "application/timestamp-reply", self.tsa.respond(body or b"")
        return 404, "text/plain", b"not found"

    def serve_url(self, method: str, url: str, body: bytes | None) -> tuple[int, str, bytes]:
        """:meth:`serve` for an absolute URL under this PKI's base URL."""
        if not url.startswith(self.base_url + "/"):
            return 404, "text/plain", b"not a development PKI URL"
        return self.serve(method, urlsplit(url).path, body)


def urls_for(base_url: str, slug: str) -> CaUrls:
    return CaUrls(
        ca_issuers=f"{base_url}/pki/ca/{slug}.cer",
        crl=f"{base_url}/pki/crl/{slug}.crl",
        ocsp=f"{base_url}/pki/ocsp/{slug}",
    )


def _public_key(hsm: Hsm, ref: KeyRef) -> CertificatePublicKeyTypes:
    return serialization.load_der_public_key(hsm.public_key_info(ref))  # type: ignore[return-value]


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path
