"""Certificate path validation per trust purpose, revocation always required (DESIGN §4).

Checked in order: DER X.509, the purpose's policy OID, a path to an anchor of
that purpose with validity and revocation (OCSP and/or CRL, hard fail; pyhanko-
certvalidator), key usage, the purpose's profile data. Every refusal is a
:class:`CertificateRefused` with a stable ``code`` and a message free of personal data.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as crypto_x509
from pyhanko_certvalidator import CertificateValidator as _PathValidator
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator import errors as pv
from pyhanko_certvalidator import validate as _pkix
from pyhanko_certvalidator._state import ValProcState
from pyhanko_certvalidator.authority import CertTrustAnchor
from pyhanko_certvalidator.fetchers.api import FetcherBackend
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.util import ConsList

from dairi import DairiError
from identity import profiles
from identity.trust import TrustPurpose, TrustStore

# --- The one deliberate widening of pyhanko-certvalidator (DESIGN §4) -----------
# pyhanko-certvalidator 0.33 refuses every critical extension outside the
# module-level frozenset ``pyhanko_certvalidator.validate.SUPPORTED_EXTENSIONS``
# (read as a module global at validation time, RFC 5280 step 6.1.4 o / 6.1.5 f)
# and has no option to extend it. A commercial-registration certificate marks
# its three private extensions critical; dairi does understand them (this module
# checks certificatePoliciesJP and parses registeredCorporationInfo through
# identity.profiles), so exactly those OIDs are added, once, here. Any other
# unknown critical extension is still refused. This is process-wide.
_pkix.SUPPORTED_EXTENSIONS = _pkix.SUPPORTED_EXTENSIONS | profiles.REGISTRATION_EXTENSIONS

CLOCK_TOLERANCE = timedelta(seconds=30)  # skew allowed against CAs and OCSP responders
MAX_CACHE_ENTRIES = 10_000
T = TypeVar("T")

MALFORMED = "CERTIFICATE_MALFORMED"
ISSUER_UNKNOWN = "CERTIFICATE_ISSUER_UNKNOWN"
EXPIRED = "CERTIFICATE_EXPIRED"
NOT_YET_VALID = "CERTIFICATE_NOT_YET_VALID"
REVOKED = "CERTIFICATE_REVOKED"
REENROLL_REQUIRED = "REENROLL_REQUIRED"
POLICY_MISMATCH = "CERTIFICATE_POLICY_MISMATCH"
KEY_USAGE_MISMATCH = "CERTIFICATE_KEY_USAGE_MISMATCH"
REVOCATION_UNAVAILABLE = "REVOCATION_STATUS_UNAVAILABLE"
INVALID = "CERTIFICATE_INVALID"


class CertificateRefused(DairiError):
    """A certificate is not acceptable for a purpose; ``code`` says why.

    ``reason`` (e.g. ``"key_compromise"``), ``revocation_source`` (``"ocsp"``
    or ``"crl"``) and ``revoked_at`` (the time the CRL or OCSP answer gives) are set
    for revocations when known; ``detail`` is the path
    validator's own text with the subject's values removed. The validator's
    exception is not chained (its text names the subject, hence places).
    """

    code = INVALID

    def __init__(
        self,
        message: str,
        code: str | None = None,
        *,
        reason: str | None = None,
        revocation_source: str | None = None,
        detail: str | None = None,
        revoked_at: datetime | None = None,
    ) -> None:
        super().__init__(message, code)
        self.reason = reason
        self.revocation_source = revocation_source
        self.detail = detail
        self.revoked_at = revoked_at


@dataclass(frozen=True)
class ValidatedCertificate:
    """A certificate that validated for ``purpose`` at ``validated_at``.

    ``repr`` leaves out the DER, the path and the subject (a JPKI signing
    certificate's subject names the holder's prefecture and city).
    """

    der: bytes = field(repr=False)
    sha256: str
    purpose: TrustPurpose
    kind: profiles.CertificateKind
    subject: str = field(repr=False)
    issuer: str
    serial_number: int
    not_before: datetime
    not_after: datetime
    path: tuple[bytes, ...] = field(repr=False)  # DER, leaf first, anchor last
    personal_data: profiles.JpkiPersonalData | None
    corporation: profiles.RegisteredCorporation | None
    validated_at: datetime
    test_card: bool = False  # accepted under the JPKI test-card policy

    def status_reference(self) -> bytes:
        """What :meth:`CertificateValidator.check_status` needs to tell later whether
        this certificate still stands, without the certificate's personal data.

        DER ``SEQUENCE OF Certificate``: first this certificate redacted — serial,
        issuer, validity and public key kept; subject emptied; of the extensions
        only those that say where its status is published and which issuer key
        signed it (authorityKeyIdentifier, authorityInfoAccess,
        cRLDistributionPoints, freshestCRL); no signature — then the CA
        certificates between it and the anchor, issuer first.
        """
        leaf = _redacted(asn1_x509.Certificate.load(self.der))
        cas = [asn1_x509.Certificate.load(der) for der in self.path[1:-1]]
        return _Certificates([leaf, *cas]).dump()


@dataclass(frozen=True)
class CertificateStatus:
    """A status reference found good (within validity, not revoked) at ``checked_at``."""

    serial_number: int
    issuer: str
    checked_at: datetime


class _Certificates(core.SequenceOf):
    _child_spec = asn1_x509.Certificate


# What a redacted certificate keeps: where its status is published and which issuer
# key signed it. Nothing that names or describes the holder.
_STATUS_EXTENSIONS = frozenset(
    {
        "authority_key_identifier",
        "authority_information_access",
        "crl_distribution_points",
        "freshest_crl",
    }
)


def _redacted(cert: asn1_x509.Certificate) -> asn1_x509.Certificate:
    tbs = cert["tbs_certificate"]
    kept = [ext for ext in tbs["extensions"] if ext["extn_id"].native in _STATUS_EXTENSIONS]
    return asn1_x509.Certificate(
        {
            "tbs_certificate": {
                "version": tbs["version"].native,
                "serial_number": tbs["serial_number"].native,
                "signature": tbs["signature"].copy(),
                "issuer": tbs["issuer"].copy(),
                "validity": tbs["validity"].copy(),
                "subject": asn1_x509.Name.build({}),
                "subject_public_key_info": tbs["subject_public_key_info"].copy(),
                "extensions": [ext.copy() for ext in kept],
            },
            "signature_algorithm": cert["signature_algorithm"].copy(),
            "signature_value": b"",
        }
    )


def load_status_reference(reference: bytes) -> list[asn1_x509.Certificate]:
    """The certificates of a status reference (redacted leaf first); raises
    ``CERTIFICATE_MALFORMED`` when it is not one."""
    try:
        certs = list(_Certificates.load(bytes(reference), strict=True))
        for cert in certs:
            _ = (
                cert.issuer.human_friendly,
                cert.serial_number,
                cert.not_valid_after,
                cert.authority_key_identifier,
                cert.ocsp_urls,
                cert.crl_distribution_points,
            )
    except (ValueError, TypeError) as exc:
        raise CertificateRefused("the status reference is not DER", MALFORMED) from exc
    if not certs:
        raise CertificateRefused("the status reference is empty", MALFORMED)
    return certs


@dataclass(frozen=True)
class _Profile:
    kind: profiles.CertificateKind
    policies: frozenset[str] | None  # None: no policy requirement
    key_usage: frozenset[str]
    extended_key_usage: frozenset[str] = frozenset()
    test_cards: bool = False  # the JPKI test policy may stand in for ``policies``


_Kind, _DS, _NR = profiles.CertificateKind, "digital_signature", "non_repudiation"


def _profiles(policies: profiles.PolicyOids) -> dict[TrustPurpose, _Profile]:
    """The profile of each purpose, with the configured policy OIDs."""
    return {
        TrustPurpose.JPKI_AUTH: _Profile(
            _Kind.JPKI_AUTH, policies.jpki_auth, frozenset({_DS}), test_cards=True
        ),
        TrustPurpose.JPKI_SIGN: _Profile(
            _Kind.JPKI_SIGN, policies.jpki_sign, frozenset({_DS, _NR}), test_cards=True
        ),
        TrustPurpose.REGISTRAR: _Profile(
            _Kind.CORPORATE_REGISTRATION, policies.registration, frozenset({_DS, _NR})
        ),
        TrustPurpose.TSA: _Profile(
            _Kind.OTHER, None, frozenset({_DS}), frozenset({"time_stamping"})
        ),
        TrustPurpose.SERVICE: _Profile(_Kind.OTHER, None, frozenset({_DS})),
    }


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _load(der: bytes, what: str = "the certificate") -> asn1_x509.Certificate:
    """Parse DER X.509 strictly; raises ``CERTIFICATE_MALFORMED``."""
    try:
        crypto_x509.load_der_x509_certificate(bytes(der))
        cert = asn1_x509.Certificate.load(bytes(der), strict=True)
        _ = (
            cert.subject.human_friendly,
            cert.issuer.human_friendly,
            cert.serial_number,
            cert.critical_extensions,
            cert.key_usage_value,
            cert.certificate_policies_value,
        )
    except (ValueError, TypeError) as exc:
        raise CertificateRefused(f"{what} is not a DER X.509 certificate", MALFORMED) from exc
    return cert


def _extension(cert: asn1_x509.Certificate, oid: str) -> bytes | None:
    for ext in cert["tbs_certificate"]["extensions"]:
        if ext["extn_id"].dotted == oid:
            return ext["extn_value"].contents
    return None


def _policies(cert: asn1_x509.Certificate, purpose: TrustPurpose) -> set[str]:
    """The policy OIDs that count for ``purpose`` (certificatePoliciesJP for REGISTRAR)."""
    if purpose is not TrustPurpose.REGISTRAR:
        return set(profiles.policy_oids(cert))
    if _extension(cert, profiles.REGISTERED_CORPORATION_INFO) is None:
        raise CertificateRefused(
            "not a commercial-registration certificate (no registeredCorporationInfo)",
            POLICY_MISMATCH,
        )
    raw = _extension(cert, profiles.CERTIFICATE_POLICIES_JP)
    if raw is None:
        return set()
    try:
        return {p["policy_identifier"].dotted for p in asn1_x509.CertificatePolicies.load(raw)}
    except (ValueError, TypeError) as exc:
        raise CertificateRefused("certificatePoliciesJP is not DER", MALFORMED) from exc


def _scrub(text: str, cert: asn1_x509.Certificate) -> str:
    """Drop the subject's values (a JPKI subject names places) from a library message."""
    values: list[str] = [cert.subject.human_friendly]
    for value in cert.subject.native.values():
        values.extend(value if isinstance(value, list) else [value])
    for value in sorted((v for v in values if isinstance(v, str) and v), key=len, reverse=True):
        text = text.replace(value, "…")
    return text


def _revocation_source(exc: pv.RevokedError, context: ValidationContext | None) -> str | None:
    """Which revocation data declared the revocation: ``"ocsp"`` or ``"crl"``.

    Read from what the validation context holds (its public ``ocsps`` and ``crls``,
    fetched or given): an OCSP response saying "revoked" at the error's revocation
    time, else a CRL listing a revocation at that time. pyhanko-certvalidator asks
    OCSP first and decides on a definite OCSP answer, so OCSP wins when both say so.
    Falls back on the message prefix its ``RevokedError.format`` writes; None if
    neither says.
    """
    when = exc.revocation_dt
    if context is not None:
        for response in context.ocsps:
            try:
                basic = response["response_bytes"]["response"].parsed
                singles = basic["tbs_response_data"]["responses"]
            except (KeyError, ValueError, TypeError):
                continue
            for single in singles:
                status = single["cert_status"]
                if status.name == "revoked" and status.chosen["revocation_time"].native == when:
                    return "ocsp"
        for crl in context.crls:
            for entry in crl["tbs_cert_list"]["revoked_certificates"] or ():
                if entry["revocation_date"].native == when:
                    return "crl"
    message = str(exc)
    return (
        "ocsp"
        if message.startswith("OCSP response indicates")
        else "crl"
        if message.startswith("CRL indicates")
        else None
    )


def _next_updates(context: ValidationContext) -> list[datetime]:
    """The nextUpdate of every OCSP response and CRL the context holds (used or not)."""
    found = [crl["tbs_cert_list"]["next_update"].native for crl in context.crls]
    for response in context.ocsps:
        basic = response["response_bytes"]["response"].parsed
        found.extend(r["next_update"].native for r in basic["tbs_response_data"]["responses"])
    return [t for t in found if t is not None]


class CertificateValidator:
    """Validates certificates per :class:`TrustPurpose`; successful verdicts are cached.

    Online (default) revocation data is fetched through ``fetcher_backend``
    (pyhanko-certvalidator's default when None); ``offline=True`` uses only
    ``offline_crls`` (bytes, or a callable returning them at each validation).
    ``policy_oids`` are the policies each purpose accepts (settings).
    """

    def __init__(
        self,
        trust: TrustStore,
        *,
        fetcher_backend: FetcherBackend | None = None,
        offline_crls: Callable[[], Iterable[bytes]] | Iterable[bytes] = (),
        offline: bool = False,
        allow_test_cards: bool = False,
        policy_oids: profiles.PolicyOids = profiles.DEFAULT_POLICY_OIDS,
        clock: Callable[[], datetime] = _utcnow,
        cache_max_age: timedelta = timedelta(minutes=5),
    ) -> None:
        self._trust = trust
        self._policy_oids = policy_oids
        self._profiles = _profiles(policy_oids)
        self._backend = fetcher_backend
        self._crls = offline_crls if callable(offline_crls) else tuple(offline_crls)
        self._offline = offline
        self._allow_test_cards = allow_test_cards
        self._clock = clock
        self._max_age = cache_max_age
        self._lock = threading.Lock()
        # (sha256 of the DER, or b"status:" + sha256 of a status reference; purpose)
        self._cache: dict[
            tuple[bytes, TrustPurpose], tuple[datetime, ValidatedCertificate | CertificateStatus]
        ] = {}

    def validate_now(
        self,
        certificate_der: bytes,
        purpose: TrustPurpose,
        *,
        intermediates: Iterable[bytes] = (),
        at: datetime | None = None,
        fresh: bool = False,
    ) -> ValidatedCertificate:
        """:meth:`validate` from synchronous code (no running event loop).

        A cached verdict is returned without starting an event loop: this is what
        every request with an access token pays.
        """
        if at is None and not fresh:
            hit = self._cached((hashlib.sha256(certificate_der).digest(), TrustPurpose(purpose)))
            if hit is not None:
                return hit
        return asyncio.run(
            self.validate(certificate_der, purpose, intermediates=intermediates, at=at, fresh=fresh)
        )

    async def validate(
        self,
        certificate_der: bytes,
        purpose: TrustPurpose,
        *,
        intermediates: Iterable[bytes] = (),
        at: datetime | None = None,
        fresh: bool = False,
    ) -> ValidatedCertificate:
        """Validate ``certificate_der`` for ``purpose`` now (or at ``at``, never cached).

        A good verdict is cached until the earliest of ``cache_max_age``, the
        certificate's notAfter and the nextUpdate of the revocation data seen.
        ``fresh=True`` asks the revocation sources again whatever the cache holds
        (grants and signatures use it) and caches the new verdict. A refusal is
        never cached and drops the certificate's cached good verdict (an unreachable
        revocation source tells nothing new, so it drops nothing).

        Raises :class:`CertificateRefused` (or the profile's coded error's code).
        """
        purpose = TrustPurpose(purpose)
        cert = _load(certificate_der)
        key = (hashlib.sha256(certificate_der).digest(), purpose)
        if at is None and not fresh and (hit := self._cached(key)) is not None:
            return hit
        try:
            return await self._validate(
                cert, certificate_der, key, purpose, intermediates=intermediates, at=at
            )
        except CertificateRefused as exc:
            if at is None and exc.code != REVOCATION_UNAVAILABLE:
                self._forget(key)  # known bad now: no earlier good answer may be served
            raise

    async def _validate(
        self,
        cert: asn1_x509.Certificate,
        certificate_der: bytes,
        key: tuple[bytes, TrustPurpose],
        purpose: TrustPurpose,
        *,
        intermediates: Iterable[bytes],
        at: datetime | None,
    ) -> ValidatedCertificate:
        profile = self._profiles[purpose]
        test_card = self._check_policy(cert, purpose, profile)
        anchors = self._trust.anchors_for(purpose)
        if not anchors:
            raise CertificateRefused(f"no trust anchor is configured for {purpose}", ISSUER_UNKNOWN)
        others = [_load(d, "an intermediate certificate") for d in intermediates]
        moment = at or self._clock()
        context = self._context([asn1_x509.Certificate.load(a) for a in anchors], others, moment)
        try:
            path = await _PathValidator(cert, others, context).async_validate_path()
        except pv.ValidationError as exc:
            refusal = self._refusal(exc, cert, purpose, context)
            refusal.detail = _scrub(str(exc), cert)
            raise refusal from None
        except pv.PathBuildingError as exc:
            raise CertificateRefused(
                f"no path to a {purpose} trust anchor",
                ISSUER_UNKNOWN,
                detail=_scrub(str(exc), cert),
            ) from None
        finally:
            await context.aclose()
        _check_key_usage(cert, profile)
        result = ValidatedCertificate(
            der=bytes(certificate_der),
            sha256=key[0].hex(),
            purpose=purpose,
            kind=profile.kind
            if profile.policies
            else profiles.certificate_kind(cert, self._policy_oids),
            subject=cert.subject.human_friendly,
            issuer=cert.issuer.human_friendly,
            serial_number=cert.serial_number,
            not_before=cert.not_valid_before,
            not_after=cert.not_valid_after,
            path=tuple(c.dump() for c in reversed(list(path.iter_certs(include_root=True)))),
            personal_data=_coded(profiles.jpki_personal_data, cert)
            if purpose is TrustPurpose.JPKI_SIGN
            else None,
            corporation=_coded(profiles.registered_corporation, cert)
            if purpose is TrustPurpose.REGISTRAR
            else None,
            validated_at=moment,
            test_card=test_card,
        )
        if at is None:
            self._store(
                key,
                result,
                min([moment + self._max_age, result.not_after, *_next_updates(context)]),
            )
        return result

    def _context(
        self,
        anchors: list[asn1_x509.Certificate],
        others: list[asn1_x509.Certificate],
        moment: datetime,
    ) -> ValidationContext:
        """A validation context: revocation required, fetched online or offline CRLs."""
        return ValidationContext(
            trust_roots=anchors,
            other_certs=others,
            moment=moment,
            time_tolerance=CLOCK_TOLERANCE,
            allow_fetching=not self._offline,
            fetcher_backend=self._backend,
            crls=list(self._crls() if callable(self._crls) else self._crls),
            revocation_mode="require",
        )

    # -- status by reference (no certificate kept) ---------------------------------

    def check_status_now(
        self, reference: bytes, purpose: TrustPurpose, *, fresh: bool = False
    ) -> CertificateStatus:
        """:meth:`check_status` from synchronous code (no running event loop)."""
        if not fresh:
            hit = self._cached(self._status_key(reference, TrustPurpose(purpose)))
            if hit is not None:
                return hit
        return asyncio.run(self.check_status(reference, purpose, fresh=fresh))

    async def check_status(
        self, reference: bytes, purpose: TrustPurpose, *, fresh: bool = False
    ) -> CertificateStatus:
        """Whether a certificate validated earlier for ``purpose`` still stands, from
        its :meth:`ValidatedCertificate.status_reference` alone: its issuer is still
        an anchor of the purpose, it (and each CA certificate between) is within its
        validity now, and the issuer's OCSP responder or CRL — the same sources and
        rules as :meth:`validate`, revocation required — does not list it revoked.
        Signatures, policy and key usage were checked when it was validated and
        cannot change. Cached like :meth:`validate` (``fresh`` likewise).

        The revocation check is pyhanko-certvalidator's own (``_check_revocation``,
        pinned with 0.33): OCSP and CRL answers are about (issuer, serial), so a
        redacted certificate asks exactly what the whole one would.

        Raises :class:`CertificateRefused`: ``CERTIFICATE_MALFORMED``,
        ``CERTIFICATE_ISSUER_UNKNOWN``, ``CERTIFICATE_EXPIRED``,
        ``CERTIFICATE_NOT_YET_VALID``, ``CERTIFICATE_REVOKED`` (``REENROLL_REQUIRED``
        for a JPKI signing certificate revoked for affiliationChanged) or
        ``REVOCATION_STATUS_UNAVAILABLE``.
        """
        purpose = TrustPurpose(purpose)
        key = self._status_key(reference, purpose)
        if not fresh and (hit := self._cached(key)) is not None:
            return hit
        try:
            return await self._check_status(reference, purpose, key)
        except CertificateRefused as exc:
            if exc.code != REVOCATION_UNAVAILABLE:
                self._forget(key)
            raise

    async def _check_status(
        self, reference: bytes, purpose: TrustPurpose, key: tuple[bytes, TrustPurpose]
    ) -> CertificateStatus:
        leaf, *cas = load_status_reference(reference)
        top = cas[-1] if cas else leaf
        anchor = next(
            (
                a
                for a in map(asn1_x509.Certificate.load, self._trust.anchors_for(purpose))
                if a.subject == top.issuer
                and top.authority_key_identifier in (None, a.key_identifier)
            ),
            None,
        )
        if anchor is None:
            raise CertificateRefused(f"the issuer is not a {purpose} trust anchor", ISSUER_UNKNOWN)
        moment = self._clock()
        chain = [*reversed(cas), leaf]  # from the anchor down, as RFC 5280 walks a path
        for cert in chain:
            which = "the certificate" if cert is leaf else "a CA certificate"
            if moment > cert.not_valid_after + CLOCK_TOLERANCE:
                raise CertificateRefused(
                    f"{which} expired {cert.not_valid_after:%Y-%m-%d %H:%M:%SZ}", EXPIRED
                )
            if moment < cert.not_valid_before - CLOCK_TOLERANCE:
                raise CertificateRefused(
                    f"{which} is not valid until {cert.not_valid_before:%Y-%m-%d %H:%M:%SZ}",
                    NOT_YET_VALID,
                )
        context = self._context([anchor], list(cas), moment)
        path = ValidationPath(CertTrustAnchor(anchor), interm=list(reversed(cas)), leaf=leaf)
        try:
            for index, cert in enumerate(chain, start=1):
                state = ValProcState(cert_path_stack=ConsList.sing(path), init_index=index)
                await _pkix._check_revocation(cert, context, path, state)
        except pv.ValidationError as exc:
            refusal = self._refusal(exc, leaf, purpose, context)
            refusal.detail = _scrub(str(exc), leaf)
            raise refusal from None
        finally:
            await context.aclose()
        result = CertificateStatus(leaf.serial_number, leaf.issuer.human_friendly, moment)
        self._store(
            key,
            result,
            min([moment + self._max_age, leaf.not_valid_after, *_next_updates(context)]),
        )
        return result

    @staticmethod
    def _status_key(reference: bytes, purpose: TrustPurpose) -> tuple[bytes, TrustPurpose]:
        return (b"status:" + hashlib.sha256(reference).digest(), purpose)

    def _check_policy(
        self, cert: asn1_x509.Certificate, purpose: TrustPurpose, profile: _Profile
    ) -> bool:
        """Whether accepted as a test card; raises ``CERTIFICATE_POLICY_MISMATCH``."""
        if profile.policies is None:
            return False
        found = _policies(cert, purpose)
        if found & profile.policies:
            return False
        if profile.test_cards and found & self._policy_oids.jpki_test:
            if self._allow_test_cards:
                return True
            raise CertificateRefused(
                "JPKI test-card certificates are not accepted", POLICY_MISMATCH
            )
        raise CertificateRefused(
            f"certificate policy is not the {purpose} policy "
            f"(found: {', '.join(sorted(found)) or 'none'})",
            POLICY_MISMATCH,
        )

    def _refusal(
        self,
        exc: pv.ValidationError,
        cert: asn1_x509.Certificate,
        purpose: TrustPurpose,
        context: ValidationContext | None = None,
    ) -> CertificateRefused:
        """Map a pyhanko-certvalidator failure to a coded refusal."""
        which = "the certificate" if getattr(exc, "is_ee_cert", True) else "a CA certificate"
        if isinstance(exc, pv.RevokedError):
            reason = exc.reason.native or "unspecified"
            source = _revocation_source(exc, context)
            when = exc.revocation_dt.strftime("%Y-%m-%d %H:%M:%SZ")
            if (
                purpose is TrustPurpose.JPKI_SIGN
                and exc.is_ee_cert
                and reason == "affiliation_changed"
            ):
                return CertificateRefused(
                    f"the JPKI signing certificate was revoked at {when} because the holder's "
                    "registered details changed: re-enrol with the new signing certificate",
                    REENROLL_REQUIRED,
                    reason=reason,
                    revocation_source=source,
                    revoked_at=exc.revocation_dt,
                )
            return CertificateRefused(
                f"{which} was revoked at {when} ({reason})",
                REVOKED,
                reason=reason,
                revocation_source=source,
                revoked_at=exc.revocation_dt,
            )
        if isinstance(exc, pv.InsufficientRevinfoError):
            mode = "offline CRLs" if self._offline else "OCSP or CRL"
            return CertificateRefused(
                f"no usable revocation status for {which} ({mode})", REVOCATION_UNAVAILABLE
            )
        if isinstance(exc, pv.ExpiredError):
            return CertificateRefused(
                f"{which} expired {exc.expired_dt:%Y-%m-%d %H:%M:%SZ}", EXPIRED
            )
        if isinstance(exc, pv.NotYetValidError):
            return CertificateRefused(
                f"{which} is not valid until {exc.valid_from:%Y-%m-%d %H:%M:%SZ}", NOT_YET_VALID
            )
        if isinstance(exc, pv.InvalidCertificateError):  # self-signed, not an anchor
            return CertificateRefused(f"no path to a {purpose} trust anchor", ISSUER_UNKNOWN)
        return CertificateRefused(f"path validation failed: {_scrub(str(exc), cert)}", INVALID)

    def _cached(self, key: tuple[bytes, TrustPurpose]) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        return hit[1] if hit is not None and self._clock() < hit[0] else None

    def _forget(self, key: tuple[bytes, TrustPurpose]) -> None:
        with self._lock:
            self._cache.pop(key, None)

    def _store(
        self,
        key: tuple[bytes, TrustPurpose],
        result: ValidatedCertificate | CertificateStatus,
        expires_at: datetime,
    ) -> None:
        if self._max_age <= timedelta(0):
            return
        now = self._clock()
        with self._lock:
            if len(self._cache) >= MAX_CACHE_ENTRIES:  # drop the stale, else start afresh
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= MAX_CACHE_ENTRIES:
                    self._cache.clear()
            self._cache[key] = (expires_at, result)


def _check_key_usage(cert: asn1_x509.Certificate, profile: _Profile) -> None:
    """Raises ``CERTIFICATE_KEY_USAGE_MISMATCH`` when a required usage is absent."""
    usage = cert.key_usage_value
    missing = set(profile.key_usage - (set(usage.native) if usage else set()))
    if profile.extended_key_usage:
        eku = cert.extended_key_usage_value
        missing |= profile.extended_key_usage - (set(eku.native) if eku else set())
    if missing:
        raise CertificateRefused(
            f"key usage lacks {', '.join(sorted(missing))}", KEY_USAGE_MISMATCH
        )


def _coded(parse: Callable[[asn1_x509.Certificate], T], cert: asn1_x509.Certificate) -> T:
    """Run a profile parser; its coded error (e.g. CORPORATE_NUMBER_INVALID) keeps its code."""
    try:
        return parse(cert)
    except DairiError as exc:
        raise CertificateRefused(exc.message, exc.code) from exc
