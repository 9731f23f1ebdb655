"""Helpers for the mandate-AC tests: terms, an in-process AA OCSP/CRL endpoint, validation."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from datetime import UTC, datetime, timedelta

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)
from pyhanko_certvalidator.validate import async_validate_ac

from delegation.certificates import (
    AttributeAuthority,
    MandateParty,
    MandateTerms,
    parse_mandate_certificate,
)
from delegation.scope import Scope
from devpki import TransportFetcherBackend
from devpki.ca import end_entity_key_usage
from identity.corporate_number import corporate_number

DER = serialization.Encoding.DER
SERIALS = itertools.count(0x1000)
CRL_ONLY = CertRevTrustPolicy(
    RevocationCheckingPolicy(
        RevocationCheckingRule.CRL_REQUIRED, RevocationCheckingRule.CRL_REQUIRED
    )
)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def make_terms(grantee_der: bytes, **changes: object) -> MandateTerms:
    fields: dict[str, object] = {
        "principal_corporate_number": corporate_number("010401012345"),
        "principal_name": "株式会社大理建設",
        "grantor": MandateParty("大理 一郎", "代表取締役", sha256(b"representative cert")),
        "grantee": MandateParty("山田\u3000太郎", None, sha256(grantee_der)),
        "actions": ("bid", "quote", "e-application:建設業許可申請"),
        "procuring_entities": ("国土交通省関東地方整備局",),
        "cases": None,
        "amount_limit_jpy": 100_000_000,
        "max_depth": 1,
        "instruction_digest": sha256(b"instruction"),
        "not_before": now() - timedelta(minutes=5),
        "not_after": now() + timedelta(days=30),
    }
    fields.update(changes)
    scope = {key: fields.pop(key) for key in _SCOPE_FIELDS}
    return MandateTerms(
        **fields,
        scope=Scope(  # type: ignore[arg-type]
            actions=_set(scope["actions"]),
            procuring_entities=_set(scope["procuring_entities"]),
            cases=_set(scope["cases"]),
            amount_limit_jpy=scope["amount_limit_jpy"],
            max_depth=scope["max_depth"],
            not_before=scope["not_before"],
            not_after=scope["not_after"],
        ),
    )


_SCOPE_FIELDS = (
    "actions",
    "procuring_entities",
    "cases",
    "amount_limit_jpy",
    "max_depth",
    "not_before",
    "not_after",
)


def _set(names: object) -> object:
    """A sequence of names as the scope's set; anything else as given (to be refused)."""
    return frozenset(names) if isinstance(names, list | tuple | set) else names


class AcEndpoints:
    """The AA's OCSP responder and CRL answered in process; other URLs go to devpki."""

    def __init__(self, pki, aa: AttributeAuthority) -> None:
        self.pki, self.aa = pki, aa
        self.issued: set[int] = set()
        self.revoked: dict[int, tuple[datetime, str]] = {}
        self.hits = {"ocsp": 0, "crl": 0}

    def issue(self, terms: MandateTerms, holder_der: bytes, **kwargs: object) -> bytes:
        serial = next(SERIALS)
        self.issued.add(serial)
        return self.aa.issue(terms, holder_der, serial_number=serial, **kwargs)  # type: ignore[arg-type]

    def revoke(self, ac_der: bytes, reason: str = "privilege_withdrawn") -> None:
        self.revoked[parse_mandate_certificate(ac_der).serial_number] = (
            now() - timedelta(minutes=1),
            reason,
        )

    def status_of(self, serial: int) -> tuple[str, datetime | None, str | None]:
        if serial in self.revoked:
            return ("revoked", *self.revoked[serial])
        return ("good", None, None) if serial in self.issued else ("unknown", None, None)

    def crl(self) -> bytes:
        return self.aa.crl(
            [(s, t, r) for s, (t, r) in self.revoked.items()],
            this_update=now() - timedelta(minutes=1),
            next_update=now() + timedelta(hours=1),
            number=len(self.revoked),
        )

    def transport(self, method: str, url: str, body: bytes | None) -> tuple[int, str, bytes]:
        if url == self.aa.ocsp_url and method == "POST":
            self.hits["ocsp"] += 1
            return (
                200,
                "application/ocsp-response",
                self.aa.ocsp_response(body or b"", self.status_of, now=now()),
            )
        if url == self.aa.crl_url and method == "GET":
            self.hits["crl"] += 1
            return 200, "application/pkix-crl", self.crl()
        return self.pki.serve_url(method, url, body)

    def context(self, **kwargs: object) -> ValidationContext:
        options: dict[str, object] = {
            "trust_roots": [
                asn1_x509.Certificate.load(
                    self.pki.cas["service-root"].certificate.public_bytes(DER)
                )
            ],
            "other_certs": [asn1_x509.Certificate.load(self.aa.certificate_der)],
            "allow_fetching": True,
            "fetcher_backend": TransportFetcherBackend(self.transport),
            "revocation_mode": "require",
        }
        options.update(kwargs)
        return ValidationContext(**options)  # type: ignore[arg-type]


def validate(ac_der: bytes, holder_der: bytes, context: ValidationContext):
    async def run():
        try:
            return await async_validate_ac(
                cms.AttributeCertificateV2.load(ac_der),
                context,
                holder_cert=asn1_x509.Certificate.load(holder_der),
            )
        finally:
            await context.aclose()

    return asyncio.run(run())


def hsm_aa(hsm, pki, certificate_der: bytes, slug: str = "aa") -> AttributeAuthority:
    return AttributeAuthority(
        certificate_der,
        lambda data: hsm.sign(pki.aa_key, data),
        ocsp_url=f"{pki.base_url}/ac/ocsp/{slug}",
        crl_url=f"{pki.base_url}/ac/crl/{slug}.crl",
    )


def other_name_aa(hsm, pki) -> AttributeAuthority:
    """The AA key certified once more, under another name: an AA that is not dairi's."""
    public_key = serialization.load_der_public_key(hsm.public_key_info(pki.aa_key))
    cert = pki.cas["service-root"].issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dairi development"),
                x509.NameAttribute(NameOID.COMMON_NAME, "dairi Test AA under another name"),
            ]
        ),
        public_key,
        now=datetime.now(UTC),
        key_usage=end_entity_key_usage(non_repudiation=True, crl_sign=True),
    )  # type: ignore[arg-type]
    return hsm_aa(hsm, pki, cert.public_bytes(DER), slug="aa-other")
