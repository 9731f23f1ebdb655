"""Process-wide objects built once from the settings: HSM, database, PKI, signers.

The Flask app and the command line share this, so both sign the same way.
Nothing here touches PKCS#11 or the network until first used (gunicorn forks
workers after the app is built).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from asn1crypto import pem
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko_certvalidator.fetchers.api import FetcherBackend
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

from app.database import WalCheckpointer, database_works, make_engine, make_session_factory
from app.outages import DEPENDENCY_BY_CODE, OUTAGES
from app.settings import Settings
from dairi import DairiError
from delegation.certificates import AttributeAuthority
from hsm import Hsm, HsmError, KeyAlgorithm, KeyRef
from identity.revocation_fetch import ResponderBreaker, RevocationFetcherBackend
from identity.trust import TrustStore
from identity.validation import CertificateValidator
from signing import (
    PadesSigner,
    SigningCredential,
    TimestampAuthority,
    ValidationDataSource,
    XadesSigner,
)

if TYPE_CHECKING:
    from app.pdf_text import PageLayout
    from devpki import DevPki  # development mode only: imported when used (app.dev.wiring)


def load_pem_certificates(directory: Path) -> list[bytes]:
    """DER of every certificate in the ``*.pem`` files of ``directory`` (sorted by name)."""
    found: list[bytes] = []
    for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
        data = path.read_bytes()
        for _, _, der in pem.unarmor(data, multiple=True):
            found.append(der)
    return found


def load_crls(directory: Path) -> list[bytes]:
    """DER of every CRL (``*.crl``, DER or PEM) in ``directory``, for offline checks."""
    found: list[bytes] = []
    for path in sorted(directory.glob("*.crl")) if directory.is_dir() else []:
        data = path.read_bytes()
        if pem.detect(data):
            found.extend(der for _, _, der in pem.unarmor(data, multiple=True))
        else:
            found.append(data)
    return found


logger = logging.getLogger(__name__)

# How long a readiness answer about the HSM is reused (per process).
HSM_READINESS_SECONDS = 1.5


def database_timeouts(settings: Settings) -> dict[str, float]:
    """The waiting bounds :func:`app.database.make_engine` takes, from the settings."""
    return {
        "connect_timeout": settings.database_connect_timeout_seconds,
        "statement_timeout": settings.database_statement_timeout_seconds,
        "sqlite_busy_timeout": settings.sqlite_busy_timeout_seconds,
    }


class ReportingTimeStamper(HTTPTimeStamper):
    """pyHanko's HTTP time-stamp client, telling the outage log when the TSA answers
    again (a failure is logged where the request fails: app.http.problems)."""

    async def async_request_tsa_response(self, req):  # type: ignore[no-untyped-def]
        response = await super().async_request_tsa_response(req)
        OUTAGES.recovered(DEPENDENCY_BY_CODE["TIMESTAMP_FAILED"])
        return response


class AttributeAuthorityUnavailable(DairiError):
    """The service has no attribute authority to issue or answer for mandates."""


class ServiceContext:
    """What one process shares across requests and commands."""

    def __init__(self, settings: Settings, *, hsm: Hsm | None = None) -> None:
        if settings.uses_softhsm and "SOFTHSM2_CONF" not in os.environ:
            # SoftHSM reads its configuration once, when the library is first loaded.
            os.environ["SOFTHSM2_CONF"] = str(settings.softhsm2_conf)
        self.settings = settings
        self.hsm = hsm if hsm is not None else Hsm(settings.hsm)
        timeouts = database_timeouts(settings)
        self.engine: Engine = make_engine(settings.database_url, **timeouts)
        # The readiness probe opens a fresh connection each time: a pooled one may
        # predate the fault it should see (a SQLite file opened before it became
        # read-only still writes). An in-memory database has only its one connection.
        self.probe_engine: Engine = (
            self.engine
            if isinstance(self.engine.pool, StaticPool)
            else make_engine(settings.database_url, poolclass=NullPool, **timeouts)
        )
        # Truncates the SQLite WAL now and then (None on PostgreSQL).
        self.checkpointer = WalCheckpointer.for_engine(
            self.engine,
            settings.sqlite_checkpoint_seconds,
            restore_busy_ms=settings.sqlite_busy_timeout_seconds * 1000,
        )
        # The one clock of the service; tests replace it to move time.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.session_factory: sessionmaker[Session] = make_session_factory(
            self.engine, lambda: self.clock()
        )
        # A commit that went through ends a database outage this process logged.
        event.listen(self.session_factory, "after_commit", database_works)
        self._lock = threading.Lock()
        self._hsm_readiness: float | None = None  # monotonic time of the last passed check
        self._hsm_readiness_lock = threading.Lock()

    def hsm_readiness(self) -> str:
        """``"ok"``, or the code of the HSM's failure (``HSM_UNAVAILABLE``,
        ``HSM_PIN_INCORRECT``, ``HSM_KEY_NOT_FOUND`` …), from a real PKCS#11 round trip:
        the slots enumerated afresh and the attribute authority's key found in the
        logged-in session (:meth:`hsm.Hsm.check`). Reused for
        ``HSM_READINESS_SECONDS`` when it passed, so that frequent probes cost the HSM
        (serialised per process) almost nothing. A failure is not reused: the next probe
        sees a fixed PIN or a returned token at once, and a failing check is cheap (a
        refused PIN is reported without logging in again; during an outage the session
        keeper answers from its back-off without touching the token)."""
        with self._hsm_readiness_lock:
            now = time.monotonic()
            passed = self._hsm_readiness
            if passed is not None and now - passed < HSM_READINESS_SECONDS:
                return "ok"
            try:
                self.hsm.check(self.aa_key)
                result = "ok"
            except HsmError as exc:
                if not exc.logged:  # an outage or a refused PIN is logged once at its source
                    logger.warning("readiness: HSM check failed: %s (%s)", exc.code, exc.message)
                result = exc.code
            except Exception:  # a probe reports "not ready" rather than failing itself
                logger.exception("readiness: unexpected error from the HSM check")
                result = "HSM_ERROR"
            self._hsm_readiness = time.monotonic() if result == "ok" else None
            return result

    @cached_property
    def dev_pki(self) -> DevPki | None:
        """The development PKI in development mode (None otherwise or if not created).
        ``devpki`` is imported here, in development mode only (app.dev.wiring)."""
        if not self.settings.dev_mode:
            return None
        from app.dev.wiring import development_pki

        return development_pki(self.settings.pki_dir)

    @cached_property
    def aa_key(self) -> KeyRef | None:
        """The attribute authority's key in the HSM: ``aa_key_label`` when set, else in
        development mode the development PKI's (None: no AA configured)."""
        configured = self.settings.aa_key
        if configured is not None:
            return configured
        pki = self.dev_pki
        return pki.aa_key if pki is not None else None

    @cached_property
    def aa_certificates(self) -> tuple[bytes, ...]:
        """DER of the AA certificate, then its issuers: ``aa_certificate_file`` when set,
        else in development mode the development PKI's AA certificate."""
        if self.settings.aa_key is not None:
            path = Path(self.settings.aa_certificate_file)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise AttributeAuthorityUnavailable(
                    f"aa_certificate_file {path} cannot be read", "AA_NOT_CONFIGURED"
                ) from exc
            found = (
                [der for _, _, der in pem.unarmor(data, multiple=True)]
                if pem.detect(data)
                else [data]
            )
            if not found:
                raise AttributeAuthorityUnavailable(
                    f"no certificate in aa_certificate_file {path}", "AA_NOT_CONFIGURED"
                )
            return tuple(found)
        pki = self.dev_pki
        if pki is None:
            raise AttributeAuthorityUnavailable(
                "no attribute authority is configured: set aa_key_label and "
                "aa_certificate_file (or, in development mode, run `dairi dev pki`)",
                "AA_NOT_CONFIGURED",
            )
        return (pki.aa_certificate.public_bytes(serialization.Encoding.DER),)

    @cached_property
    def mandate_layout(self) -> PageLayout:
        """How the 電子委任状 is drawn: the configured font and page size."""
        from app.mandates.document import layout_for

        return layout_for(self.settings.pdf_font, self.settings.pdf_page)

    @cached_property
    def tsa(self) -> TimestampAuthority | None:
        url = self.settings.tsa_url
        if url:
            timeout = self.settings.tsa_timeout_seconds
            return TimestampAuthority(url, lambda: ReportingTimeStamper(url, timeout=timeout))
        pki = self.dev_pki
        if pki is not None:
            from app.dev.wiring import in_process_timestamper

            return TimestampAuthority("dev-tsa", lambda: in_process_timestamper(pki))
        return None

    @cached_property
    def revocation_breaker(self) -> ResponderBreaker:
        """The circuit breaker of this process's OCSP/CRL responders (each gunicorn
        worker keeps its own: a dead responder costs each worker one time-out per
        interval)."""
        return ResponderBreaker(
            failures_to_open=self.settings.revocation_breaker_failures,
            open_seconds=self.settings.revocation_breaker_seconds,
        )

    @cached_property
    def fetcher_backend(self) -> FetcherBackend:
        """How OCSP responses, CRLs and certificates are fetched: over HTTP, or in
        development mode straight from the development PKI in this process. Either
        way a certificate check's fetching ends within ``revocation_budget_seconds``
        and a failed responder is skipped by :attr:`revocation_breaker`."""
        budget, breaker = self.settings.revocation_budget_seconds, self.revocation_breaker
        pki = self.dev_pki
        if pki is not None:
            from app.dev.wiring import in_process_fetchers

            return in_process_fetchers(pki, budget_seconds=budget, breaker=breaker)
        return RevocationFetcherBackend(budget_seconds=budget, breaker=breaker)

    @cached_property
    def validation_data(self) -> ValidationDataSource:
        return ValidationDataSource(
            load_pem_certificates(self.settings.trust_dir), self.fetcher_backend
        )

    @cached_property
    def certificate_validator(self) -> CertificateValidator:
        """Path, policy and revocation checks of JPKI and registration certificates."""
        settings = self.settings
        offline = settings.revocation_mode == "offline"
        return CertificateValidator(
            TrustStore.from_directory(settings.trust_dir),
            fetcher_backend=None if offline else self.fetcher_backend,
            offline=offline,
            offline_crls=lambda: load_crls(settings.crl_dir),
            allow_test_cards=settings.allow_test_cards,
            policy_oids=settings.policy_oids,
            clock=lambda: self.clock(),
            cache_max_age=timedelta(seconds=settings.revocation_cache_seconds),
        )

    @cached_property
    def attribute_authority(self) -> AttributeAuthority:
        """The AA that issues mandate ACs and signs their CRL and OCSP answers (key in
        the HSM). Its status endpoints are served by this service under ``/ac/``."""
        certificate = self.aa_certificates[0]
        key = self.aa_key
        assert key is not None  # aa_certificates raised otherwise
        if self.settings.aa_key is not None:
            self._check_aa_key(key, certificate)
        base = self.settings.public_base_url
        return AttributeAuthority(
            certificate,
            lambda data: self.hsm.sign(key, data),
            ocsp_url=f"{base}/ac/ocsp",
            crl_url=f"{base}/ac/crl",
        )

    def _check_aa_key(self, key: KeyRef, certificate_der: bytes) -> None:
        """The configured AA certificate must certify the configured HSM key."""
        from asn1crypto import x509 as asn1_x509

        try:
            public_key = asn1_x509.Certificate.load(certificate_der).public_key.dump()
        except ValueError as exc:
            raise AttributeAuthorityUnavailable(
                "aa_certificate_file does not hold an X.509 certificate", "AA_NOT_CONFIGURED"
            ) from exc
        if self.hsm.public_key_info(key) != public_key:
            raise AttributeAuthorityUnavailable(
                f"aa_certificate_file does not certify the HSM key {self.settings.aa_key_label}",
                "AA_NOT_CONFIGURED",
            )

    @cached_property
    def aa_credential(self) -> SigningCredential:
        """The AA's key as a signing credential: the service signs documents with it."""
        key = self.aa_key
        assert key is not None  # attribute_authority was obtained first
        return SigningCredential(
            key,
            KeyAlgorithm.RSA_2048,
            self.attribute_authority.certificate_der,
            self.aa_certificates[1:],
        )

    @cached_property
    def pades_signer(self) -> PadesSigner:
        return PadesSigner(
            self.hsm,
            tsa=self.tsa,
            validation_data=self.validation_data,
            max_document_bytes=self.settings.max_document_bytes,
            stamp_font_file=self.settings.pdf_font,
        )

    @cached_property
    def xades_signer(self) -> XadesSigner:
        return XadesSigner(
            self.hsm,
            tsa=self.tsa,
            validation_data=self.validation_data,
            max_document_bytes=self.settings.max_document_bytes,
        )

    def close(self) -> None:
        self.hsm.close()
        self.engine.dispose()
        self.probe_engine.dispose()
