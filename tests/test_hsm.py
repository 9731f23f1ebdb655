"""hsm: key custody on a real SoftHSM token."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pkcs11
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from pkcs11 import Attribute, KeyType, ObjectClass

from hsm import (
    Hsm,
    HsmConfig,
    KeyAlgorithm,
    KeyNotFound,
    KeyRef,
    PinIncorrect,
    SignatureScheme,
    TokenNotFound,
    UnsupportedScheme,
    build_csr,
)


def verify(hsm: Hsm, ref: KeyRef, signature: bytes, data: bytes, scheme: SignatureScheme) -> None:
    public = serialization.load_der_public_key(hsm.public_key_info(ref))
    if scheme is SignatureScheme.RSA_PKCS1V15:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif scheme is SignatureScheme.RSA_PSS:
        public.verify(
            signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
        )
    else:
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))


@pytest.fixture(scope="module")
def keys(hsm: Hsm) -> dict[KeyAlgorithm, KeyRef]:
    return {alg: hsm.generate_key(alg) for alg in KeyAlgorithm}


@pytest.mark.parametrize(
    ("algorithm", "scheme"),
    [
        (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PKCS1V15),
        (KeyAlgorithm.RSA_2048, SignatureScheme.RSA_PSS),
        (KeyAlgorithm.RSA_3072, SignatureScheme.RSA_PKCS1V15),
        (KeyAlgorithm.RSA_3072, SignatureScheme.RSA_PSS),
        (KeyAlgorithm.EC_P256, SignatureScheme.ECDSA),
    ],
)
def test_signatures_verify_with_the_public_key(hsm, keys, algorithm, scheme):
    ref = keys[algorithm]
    assert hsm.key_algorithm(ref) is algorithm
    data = "入札書 第42号".encode()
    signature = hsm.sign(ref, data, scheme=scheme)
    verify(hsm, ref, signature, data, scheme)
    with pytest.raises(InvalidSignature):
        verify(hsm, ref, signature, data + b"x", scheme)


def test_scheme_must_fit_the_key(hsm, keys):
    with pytest.raises(UnsupportedScheme):
        hsm.sign(keys[KeyAlgorithm.EC_P256], b"x", scheme=SignatureScheme.RSA_PKCS1V15)
    with pytest.raises(UnsupportedScheme):
        hsm.sign(keys[KeyAlgorithm.RSA_2048], b"x", scheme=SignatureScheme.ECDSA)
    with pytest.raises(UnsupportedScheme):
        hsm.sign_digest(keys[KeyAlgorithm.RSA_2048], b"short")


def test_private_keys_cannot_leave_the_token(hsm, keys):
    with hsm._session() as session:
        wrapping = session.generate_key(
            KeyType.AES,
            256,
            store=False,
            template={Attribute.WRAP: True, Attribute.EXTRACTABLE: False},
        )
        for ref in keys.values():
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=ref.cka_id)
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.ALWAYS_SENSITIVE] is True
            assert key[Attribute.NEVER_EXTRACTABLE] is True
            assert key[Attribute.TOKEN] is True
            assert key[Attribute.PRIVATE] is True
            secret = Attribute.PRIVATE_EXPONENT if key.key_type == KeyType.RSA else Attribute.VALUE
            with pytest.raises(pkcs11.AttributeSensitive):
                key[secret]
            with pytest.raises(
                (pkcs11.KeyUnextractable, pkcs11.MechanismInvalid, pkcs11.KeyNotWrappable)
            ):
                wrapping.wrap_key(key, mechanism=pkcs11.Mechanism.AES_KEY_WRAP_PAD)
            # Nor can the flags be relaxed afterwards.
            with pytest.raises(pkcs11.PKCS11Error):
                key[Attribute.EXTRACTABLE] = True


def test_many_threads_sign_at_once_and_every_signature_verifies(hsm, keys):
    ref = keys[KeyAlgorithm.RSA_2048]
    results: list[tuple[bytes, bytes]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            for i in range(40):
                data = f"thread {n} document {i}".encode()
                signature = hsm.sign(ref, data)
                with lock:
                    results.append((data, signature))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 320
    for data, signature in results:
        verify(hsm, ref, signature, data, SignatureScheme.RSA_PKCS1V15)


def _sign_in_child(hsm: Hsm, ref: KeyRef, queue: multiprocessing.Queue) -> None:
    queue.put(hsm.sign(ref, b"signed by a forked worker"))


def test_a_forked_child_signs_correctly(hsm, keys):
    ref = keys[KeyAlgorithm.RSA_2048]
    hsm.sign(ref, b"the parent is logged in before the fork")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_sign_in_child, args=(hsm, ref, queue))
    child.start()
    signature = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    verify(hsm, ref, signature, b"signed by a forked worker", SignatureScheme.RSA_PKCS1V15)
    # The parent's session still works after the child used the token.
    verify(hsm, ref, hsm.sign(ref, b"after"), b"after", SignatureScheme.RSA_PKCS1V15)


def test_unknown_key_is_refused(hsm):
    with pytest.raises(KeyNotFound) as info:
        hsm.sign(KeyRef(hsm.config.token_label, "00" * 16), b"x")
    assert info.value.code == "HSM_KEY_NOT_FOUND"


def test_missing_token_is_refused(base_settings):
    config = HsmConfig(
        base_settings.hsm_module, "no-such-token", pin_file=str(base_settings.hsm_pin_file)
    )
    with pytest.raises(TokenNotFound) as info:
        Hsm(config).check()
    # Not mounted, gone or mislabelled look alike through PKCS#11: the one outage code.
    assert info.value.code == "HSM_UNAVAILABLE"
    assert "no-such-token" in info.value.message


def test_missing_pin_is_refused(base_settings, monkeypatch):
    monkeypatch.delenv("DAIRI_HSM_PIN", raising=False)
    config = HsmConfig(
        base_settings.hsm_module, base_settings.hsm_token_label, pin_file="/nonexistent/pin"
    )
    with pytest.raises(PinIncorrect):
        Hsm(config).check()


def test_wrong_pin_is_refused_and_not_echoed(base_settings, softhsm_dir: Path):
    # A fresh process: PKCS#11 login state is per process, and this one is logged in.
    script = (
        "from hsm import Hsm, HsmConfig, PinIncorrect\n"
        f"c = HsmConfig({base_settings.hsm_module!r}, {base_settings.hsm_token_label!r})\n"
        "try:\n"
        "    Hsm(c).check()\n"
        "except PinIncorrect as e:\n"
        "    print(e.code, e.message)\n"
    )
    env = dict(
        os.environ,
        DAIRI_HSM_PIN="987654321-wrong",
        SOFTHSM2_CONF=str(softhsm_dir / "softhsm2.conf"),
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.stdout.startswith("HSM_PIN_INCORRECT"), done.stderr
    assert "987654321" not in done.stdout + done.stderr


def test_csr_is_signed_by_the_token_key(hsm, keys):
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509

    for algorithm in (KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256):
        ref = keys[algorithm]
        der = build_csr(
            hsm, ref, asn1_x509.Name.build({"common_name": "山田 太郎", "country_name": "JP"})
        )
        request = x509.load_der_x509_csr(der)
        assert request.is_signature_valid
        assert request.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == hsm.public_key_info(ref)


def test_keys_are_listed_and_destroyed(hsm):
    ref = hsm.generate_key(KeyAlgorithm.EC_P256, version=2)
    assert ref in hsm.list_keys()
    hsm.destroy_key(ref)
    assert ref not in hsm.list_keys()
    with pytest.raises(KeyNotFound):
        hsm.sign(ref, b"x", scheme=SignatureScheme.ECDSA)


def test_a_kept_batch_key_destroyed_elsewhere_is_not_found_rather_than_an_outage(
    hsm, base_settings
):
    """sign_digests keeps the key it found for the next batches; destroyed by another
    keeper (another worker's view of the token) or by this one, the key is then not
    found, and the token stays in service."""
    digest = [bytes(range(32))]
    gone_elsewhere, gone_here = (hsm.generate_key(KeyAlgorithm.EC_P256) for _ in range(2))
    for ref in (gone_elsewhere, gone_here):
        hsm.sign_digests(ref, digest, scheme=SignatureScheme.ECDSA)
    other = Hsm(base_settings.hsm)
    other.destroy_key(gone_elsewhere)
    other.close()
    hsm.destroy_key(gone_here)
    for ref in (gone_elsewhere, gone_here):
        with pytest.raises(KeyNotFound):
            hsm.sign_digests(ref, digest, scheme=SignatureScheme.ECDSA)
    hsm.check()


def test_softhsm_token_setup_is_idempotent(tmp_path):
    from hsm.softhsm import ensure_softhsm_token, write_softhsm_conf

    conf = tmp_path / "softhsm2.conf"
    write_softhsm_conf(conf, tmp_path / "tokens")
    pin_file = tmp_path / "pin"
    assert ensure_softhsm_token(conf, "idempotent", pin_file) is True
    pin = pin_file.read_text()
    assert oct(pin_file.stat().st_mode & 0o777) == "0o600"
    assert ensure_softhsm_token(conf, "idempotent", pin_file) is False
    assert pin_file.read_text() == pin
    assert len(list((tmp_path / "tokens").iterdir())) == 1
