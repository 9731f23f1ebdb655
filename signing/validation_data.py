"""Validation data (certificates, OCSP responses, CRLs) for a certificate, cached within
its validity.

Collecting it means validating the certificate now, path and revocation, with
pyhanko-certvalidator. The result is kept as DER until the earliest
``nextUpdate`` among the responses (capped by ``max_age``), so a signer who signs
many documents pays for one OCSP round trip per validity window, and nobody
signs with a certificate that was revoked longer ago than that window.

The data also carries the CRL of the trust anchor at the top of the path. A trust
anchor needs no revocation data of its own, but when it answers OCSP for the
certificates it issued, pyhanko-certvalidator's past validation (the time-slide of
ETSI EN 319 102-1 §5.6.2.1, run by ``ades_lta_validation``) walks the responder's
path, anchor → anchor-as-responder, and asks for the anchor certificate's
revocation status: without the anchor's CRL in the DSS a B-LTA signature came out
INDETERMINATE / NO_POE offline ("No revocation info … for certificate dairi
Development Root CA"). The anchor's CRL lists what it revoked and answers for it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from asn1crypto import crl, ocsp, x509
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    InvalidCertificateError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)
from pyhanko_certvalidator.fetchers.api import FetcherBackend
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from signing.errors import (
    SignerCertificateInvalid,
    SignerCertificateRevoked,
    TimestampFailed,
    ValidationDataUnavailable,
)


@dataclass(frozen=True)
class ValidationData:
    """DER blobs that let a verifier check a certificate offline, and when they go stale."""

    certs: tuple[bytes, ...]
    ocsps: tuple[bytes, ...]
    crls: tuple[bytes, ...]
    expires_at: datetime

    def merged(self, other: ValidationData) -> ValidationData:
        def union(a: tuple[bytes, ...], b: tuple[bytes, ...]) -> tuple[bytes, ...]:
            return tuple(dict.fromkeys(a + b))

        return ValidationData(
            union(self.certs, other.certs),
            union(self.ocsps, other.ocsps),
            union(self.crls, other.crls),
            min(self.expires_at, other.expires_at),
        )

    def as_asn1(self) -> DssMaterial:
        """Fresh asn1crypto objects (never shared between requests) for pyHanko's DSS."""
        return {
            "certs": [x509.Certificate.load(c) for c in self.certs],
            "ocsps": [ocsp.OCSPResponse.load(o) for o in self.ocsps],
            "crls": [crl.CertificateList.load(c) for c in self.crls],
        }


class DssMaterial(TypedDict):
    """The keyword arguments pyHanko's DocumentSecurityStore takes for what it embeds."""

    certs: list[x509.Certificate]
    ocsps: list[ocsp.OCSPResponse]
    crls: list[crl.CertificateList]


@dataclass(frozen=True)
class TimestampAuthority:
    """A TSA dairi uses: a stable name (for caching) and a factory of pyHanko clients."""

    name: str
    make_timestamper: Callable[[], TimeStamper]


def _ocsp_next_update(der: bytes) -> datetime | None:
    response = ocsp.OCSPResponse.load(der)
    basic = response["response_bytes"]["response"].parsed
    times = [r["next_update"].native for r in basic["tbs_response_data"]["responses"]]
    return min((t for t in times if t is not None), default=None)


def _crl_next_update(der: bytes) -> datetime | None:
    return crl.CertificateList.load(der)["tbs_cert_list"]["next_update"].native


class ValidationDataSource:
    """Validates certificates now and hands out the data that proves it, cached."""

    def __init__(
        self,
        trust_roots: Iterable[bytes],
        fetcher_backend: FetcherBackend | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_age: timedelta = timedelta(hours=1),
        refresh_margin: timedelta = timedelta(minutes=1),
    ) -> None:
        self._roots = tuple(trust_roots)
        self._backend = fetcher_backend
        self._clock = clock
        self._max_age = max_age
        self._margin = refresh_margin
        self._lock = threading.Lock()
        self._cache: dict[bytes, ValidationData] = {}
        self._tsa_certs: dict[str, tuple[bytes, tuple[bytes, ...]]] = {}

    def _cached(self, key: bytes) -> ValidationData | None:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit.expires_at - self._margin > self._clock():
            return hit
        return None

    async def collect(
        self,
        certificate_der: bytes,
        other_certs_der: Iterable[bytes] = (),
        *,
        key_usage: frozenset[str] = frozenset({"non_repudiation"}),
        extended_key_usage: frozenset[str] | None = None,
    ) -> ValidationData:
        """Validate ``certificate_der`` now (path, usage, revocation) and return its data.

        Raises :class:`SignerCertificateRevoked`, :class:`SignerCertificateInvalid`
        or :class:`ValidationDataUnavailable`.
        """
        others = tuple(other_certs_der)
        key = hashlib.sha256(
            certificate_der
            + b"|"
            + ",".join(sorted(key_usage)).encode()
            + b"|"
            + ",".join(sorted(extended_key_usage or ())).encode()
        ).digest()
        hit = self._cached(key)
        if hit is not None:
            return hit
        now = self._clock()
        context = ValidationContext(
            trust_roots=[x509.Certificate.load(r) for r in self._roots],
            other_certs=[x509.Certificate.load(c) for c in others],
            allow_fetching=self._backend is not None,
            fetcher_backend=self._backend,
            revocation_mode="require",
            moment=now,
        )
        validator = CertificateValidator(
            x509.Certificate.load(certificate_der),
            intermediate_certs=[x509.Certificate.load(c) for c in others],
            validation_context=context,
        )
        try:
            path = await validator.async_validate_usage(
                set(key_usage), set(extended_key_usage) if extended_key_usage else None
            )
        except RevokedError as exc:
            raise SignerCertificateRevoked(f"certificate revoked: {exc}") from exc
        except InvalidCertificateError as exc:
            raise SignerCertificateInvalid(f"certificate not usable: {exc}") from exc
        except (PathBuildingError, PathValidationError) as exc:
            if "revocation" in str(exc).lower() or "fetch" in str(exc).lower():
                raise ValidationDataUnavailable(f"no revocation data: {exc}") from exc
            raise SignerCertificateInvalid(f"certificate does not validate: {exc}") from exc
        ocsps = tuple(o.dump() for o in context.ocsps)
        crls = tuple(
            dict.fromkeys([c.dump() for c in context.crls] + await self._anchor_crls(path))
        )
        updates = [t for t in map(_ocsp_next_update, ocsps) if t] + [
            t for t in map(_crl_next_update, crls) if t
        ]
        data = ValidationData(
            certs=tuple(c.dump() for c in path.iter_certs(include_root=True)),
            ocsps=ocsps,
            crls=crls,
            expires_at=min([now + self._max_age, *updates]),
        )
        with self._lock:
            self._cache[key] = data
        return data

    async def _anchor_crls(self, path: ValidationPath) -> list[bytes]:
        """The CRLs of the path's trust anchor (see the module docstring), fetched
        and checked by validating the certificate it issued with CRLs required."""
        below_anchor = next(iter(path.iter_certs(include_root=False)), None)
        if below_anchor is None or self._backend is None:
            return []
        crl_only = RevocationCheckingPolicy(
            RevocationCheckingRule.CRL_REQUIRED, RevocationCheckingRule.CRL_REQUIRED
        )
        context = ValidationContext(
            trust_roots=[x509.Certificate.load(r) for r in self._roots],
            allow_fetching=True,
            fetcher_backend=self._backend,
            revinfo_policy=CertRevTrustPolicy(crl_only),
            moment=self._clock(),
        )
        try:
            await CertificateValidator(
                below_anchor, validation_context=context
            ).async_validate_path()
        except (InvalidCertificateError, PathBuildingError, PathValidationError) as exc:
            raise ValidationDataUnavailable(f"no CRL from the trust anchor: {exc}") from exc
        return [c.dump() for c in context.crls]

    async def collect_for_tsa(self, tsa: TimestampAuthority) -> ValidationData:
        """Validation data for the TSA's certificate (learned once from a test token)."""
        with self._lock:
            known = self._tsa_certs.get(tsa.name)
        if known is None:
            try:
                token = await tsa.make_timestamper().async_dummy_response("sha256")
            except Exception as exc:  # any client or transport failure of the TSA
                raise TimestampFailed(f"TSA {tsa.name} did not answer") from exc
            known = _tsa_certificates(token)
            with self._lock:
                self._tsa_certs[tsa.name] = known
        cert, others = known
        return await self.collect(
            cert, others, key_usage=frozenset(), extended_key_usage=frozenset({"time_stamping"})
        )


def _tsa_certificates(token) -> tuple[bytes, tuple[bytes, ...]]:  # type: ignore[no-untyped-def]
    signed_data = token["content"]
    sid = signed_data["signer_infos"][0]["sid"].chosen
    certs = [c.chosen for c in signed_data["certificates"]]
    signer = next(
        c
        for c in certs
        if c.issuer == sid["issuer"] and c.serial_number == sid["serial_number"].native
    )
    return signer.dump(), tuple(c.dump() for c in certs if c is not signer)
