"""A throw-away signing environment for the benchmarks.

``bench_environment()`` builds, in a temporary directory: a SoftHSM token with a
random PIN, the development PKI (CAs, OCSP, CRLs, TSA, all answered in process),
and an RSA-2048 employee key generated in the token, certified by the dev PKI,
with its certificate stored on the token beside the key (so that pyHanko's
``PKCS11Signer`` finds it by key id). Everything is removed afterwards.

``service_environment()`` builds, in a temporary directory, a whole installation of
the service as ``dairi init`` sets it up (SQLite, a SoftHSM token, the development PKI
answering OCSP, CRLs and the TSA in process) with this process's ``ServiceContext`` on
it, for benchmarks that also serve it (``app.dev.demo_server``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from app.context import ServiceContext
from app.first_run import ensure_environment
from app.settings import Settings, load_settings
from devpki import DevPki, InProcessTimeStamper, TransportFetcherBackend
from hsm import Hsm, HsmConfig, KeyAlgorithm
from hsm.softhsm import ensure_softhsm_token, write_softhsm_conf
from signing import SigningCredential, TimestampAuthority, ValidationDataSource

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "dairi-bench"
# Not DAIRI_HSM_PIN: a PIN exported for a real token must not shadow the bench's PIN file.
PIN_ENV = "DAIRI_BENCH_HSM_PIN"
DER = serialization.Encoding.DER


@dataclass(frozen=True)
class BenchEnv:
    """What a benchmark needs: the token, the PKI and one employee credential."""

    directory: Path
    module_path: str
    pin_file: Path
    hsm: Hsm
    pki: DevPki
    credential: SigningCredential

    @property
    def user_pin(self) -> str:
        return self.hsm.config.read_pin()

    @property
    def trust_roots_der(self) -> list[bytes]:
        return [c.public_bytes(DER) for c in self.pki.roots().values()]

    def fetcher_backend(self) -> TransportFetcherBackend:
        """OCSP, CRL and certificate fetches answered by the dev PKI, no network."""
        return TransportFetcherBackend(self.pki.serve_url)

    def timestamp_authority(self) -> TimestampAuthority:
        return TimestampAuthority("dev", lambda: InProcessTimeStamper(self.pki.tsa))

    def validation_data_source(self) -> ValidationDataSource:
        return ValidationDataSource(self.trust_roots_der, self.fetcher_backend())


def _make_credential(hsm: Hsm, pki: DevPki, name: str) -> SigningCredential:
    ref = hsm.generate_key(KeyAlgorithm.RSA_2048)
    public_key = serialization.load_der_public_key(hsm.public_key_info(ref))
    issued = pki.issue_employee_certificate(name, public_key)  # type: ignore[arg-type]
    certificate_der = issued.certificate.public_bytes(DER)
    hsm.store_certificate(ref, certificate_der)
    return SigningCredential(
        ref,
        KeyAlgorithm.RSA_2048,
        certificate_der,
        tuple(c.public_bytes(DER) for c in issued.chain),
    )


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@contextlib.contextmanager
def _unset(name: str) -> Iterator[None]:
    old = os.environ.pop(name, None)
    try:
        yield
    finally:
        if old is not None:
            os.environ[name] = old


@contextlib.contextmanager
def bench_environment(module_path: str = SOFTHSM_MODULE) -> Iterator[BenchEnv]:
    """Yield a fresh :class:`BenchEnv`; must run before PKCS#11 is loaded in this process
    (SoftHSM reads ``SOFTHSM2_CONF`` once, when the module is initialised)."""
    with tempfile.TemporaryDirectory(prefix="dairi-bench-") as tmp:
        root = Path(tmp)
        conf = root / "softhsm2.conf"
        pin_file = root / "user-pin"
        write_softhsm_conf(conf, root / "tokens")
        with _environ("SOFTHSM2_CONF", str(conf)):
            ensure_softhsm_token(conf, TOKEN_LABEL, pin_file)
            hsm = Hsm(HsmConfig(module_path, TOKEN_LABEL, pin_env=PIN_ENV, pin_file=str(pin_file)))
            try:
                pki = DevPki.create(root / "pki", hsm, base_url="http://127.0.0.1:8080")
                credential = _make_credential(hsm, pki, "山田 太郎")
                yield BenchEnv(root, module_path, pin_file, hsm, pki, credential)
            finally:
                hsm.close()


@contextlib.contextmanager
def service_environment(**overrides: object) -> Iterator[tuple[Settings, ServiceContext]]:
    """Settings on a fresh temporary data directory (nothing read from ``DAIRI_*``
    variables or a PIN exported for a real token; ``overrides`` applied, e.g.
    ``access_token_seconds``), set up as ``dairi init`` does, and
    this process's :class:`ServiceContext` on them; all removed afterwards. Must run
    before PKCS#11 is loaded in this process. A served process started with these
    settings (``app.dev.demo_server.DemoServer``) inherits ``SOFTHSM2_CONF``."""
    with tempfile.TemporaryDirectory(prefix="dairi-bench-service-") as tmp:
        data = Path(tmp) / "data"
        settings = load_settings(
            env={},
            data_dir=str(data),
            hsm_token_label=TOKEN_LABEL,
            hsm_pin_file=str(data / "hsm" / "user-pin"),
            softhsm2_conf=str(data / "hsm" / "softhsm2.conf"),
            pki_dir=str(data / "pki"),
            trust_dir=str(data / "pki" / "trust"),
            crl_dir=str(data / "crls"),
        ).replace(**overrides)
        with _environ("SOFTHSM2_CONF", str(settings.softhsm2_conf)), _unset("DAIRI_HSM_PIN"):
            context = ServiceContext(settings)
            try:
                ensure_environment(settings, context, first_run=True)
                yield settings, context
            finally:
                context.close()
