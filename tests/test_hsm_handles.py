"""hsm: a key handle kept between signHash batches never signs with another key.

``Hsm.sign_digests`` keeps the private key it found (a PKCS#11 object handle) for the
next batches in the same session. A handle names an object only while it exists: once
the key is destroyed (here, in another worker, or by the operator's command line), a
token may give the same number to a new object. SoftHSM 2.6 does not reuse numbers, so
besides destroying and creating keys for real, these tests plant another object's
handle where the kept key was, as a token that reuses handles would leave it.
Signatures are checked by hand with ``cryptography`` against each key's public key.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, ObjectClass

from app.settings import Settings
from hsm import Hsm, HsmConfig, KeyAlgorithm, KeyNotFound, KeyRef, SignatureScheme

DIGESTS = [bytes([n]) * 32 for n in range(3)]  # SHA-256 sized, as signHash hands them over


def _verifies(public_der: bytes, signature: bytes, digest: bytes, scheme: SignatureScheme) -> bool:
    public = serialization.load_der_public_key(public_der)
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if scheme is SignatureScheme.ECDSA:
            if not isinstance(public, ec.EllipticCurvePublicKey):
                return False
            public.verify(signature, digest, ec.ECDSA(prehashed))
        else:
            if not isinstance(public, rsa.RSAPublicKey):
                return False
            pad = (
                padding.PKCS1v15()
                if scheme is SignatureScheme.RSA_PKCS1V15
                else padding.PSS(padding.MGF1(hashes.SHA256()), 32)
            )
            public.verify(signature, digest, pad, prehashed)
    except InvalidSignature:
        return False
    return True


def _all_verify(public_der: bytes, signatures: list[bytes], scheme: SignatureScheme) -> bool:
    assert len(signatures) == len(DIGESTS)
    return all(
        _verifies(public_der, s, d, scheme) for s, d in zip(signatures, DIGESTS, strict=True)
    )


def _kept(hsm: Hsm, ref: KeyRef) -> Any:
    """The object sign_digests keeps for ``ref`` (a first batch puts it there)."""
    return hsm._signing_keys[ref]


def _found(hsm: Hsm, ref: KeyRef, object_class: ObjectClass) -> Any:
    """The object of that class on the token for ``ref``, found with python-pkcs11
    directly in the Hsm's session (so its handle is valid there)."""
    with hsm._session() as session:
        return session.get_key(object_class=object_class, id=ref.cka_id, label=ref.cka_label)


def _plant(hsm: Hsm, ref: KeyRef, handle_of: Any) -> None:
    """Leave, under ``ref``, the kept Python object with another object's handle: what a
    token that gave the kept key's handle number to ``handle_of`` would leave behind
    (class, capabilities and the cached key type stay the old key's)."""
    planted = copy.copy(_kept(hsm, ref))
    planted.wrapper = handle_of.wrapper
    assert planted.handle == handle_of.handle != _kept(hsm, ref).handle
    hsm._signing_keys[ref] = planted


@pytest.fixture(scope="module")
def keys(hsm: Hsm) -> dict[str, KeyRef]:
    refs = {
        "ec": hsm.generate_key(KeyAlgorithm.EC_P256),
        "ec-other": hsm.generate_key(KeyAlgorithm.EC_P256),
        "rsa": hsm.generate_key(KeyAlgorithm.RSA_2048),
        "rsa-other": hsm.generate_key(KeyAlgorithm.RSA_2048),
    }
    hsm.store_certificate(refs["ec"], _self_signed(hsm.public_key_info(refs["ec"])))
    return refs


def _self_signed(public_der: bytes) -> bytes:
    """A certificate for the key (signed by a throw-away key: only its object matters)."""
    issuer = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "handle test")])
    now = datetime.now(UTC)
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(issuer, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def _object(hsm: Hsm, keys: dict[str, KeyRef], which: str) -> Any:
    """An object on the token whose handle a reused number could now name."""
    if which == "hmac":  # a secret key (audit, tokens) beside the signing keys
        label = "dairi-test-handles"
        key_id = bytes.fromhex(hsm.secret_key_id(label))
        with hsm._session() as session:
            return session.get_key(object_class=ObjectClass.SECRET_KEY, id=key_id, label=label)
    name, kind = which.split(" ")
    object_class = {
        "private": ObjectClass.PRIVATE_KEY,
        "public": ObjectClass.PUBLIC_KEY,
        "certificate": ObjectClass.CERTIFICATE,
    }[kind]
    ref = keys[name]
    with hsm._session() as session:
        return next(
            session.get_objects(
                {
                    Attribute.CLASS: object_class,
                    Attribute.ID: ref.cka_id,
                    Attribute.LABEL: ref.cka_label,
                }
            )
        )


@pytest.mark.parametrize(
    ("name", "scheme"),
    [
        ("ec", SignatureScheme.ECDSA),
        ("rsa", SignatureScheme.RSA_PKCS1V15),
        ("rsa", SignatureScheme.RSA_PSS),
    ],
)
def test_the_kept_handle_signs_with_the_credentials_key(
    hsm: Hsm, keys: dict[str, KeyRef], name: str, scheme: SignatureScheme
) -> None:
    ref = keys[name]
    public = hsm.public_key_info(ref)
    first = hsm.sign_digests(ref, DIGESTS, scheme=scheme)
    kept = _kept(hsm, ref)
    second = hsm.sign_digests(ref, DIGESTS, scheme=scheme)
    assert _kept(hsm, ref) is kept  # the second batch used the kept handle
    assert _all_verify(public, first, scheme)
    assert _all_verify(public, second, scheme)
    other = hsm.public_key_info(keys[f"{name}-other"])
    assert not any(_verifies(other, s, d, scheme) for s, d in zip(second, DIGESTS, strict=True))


@pytest.mark.parametrize(
    ("name", "planted", "scheme"),
    [
        # another credential's key of the same type: would sign, with the wrong key
        ("ec", "ec-other private", SignatureScheme.ECDSA),
        ("rsa", "rsa-other private", SignatureScheme.RSA_PKCS1V15),
        # a key of another type: the kept key type says EC, the object is RSA
        ("ec", "rsa-other private", SignatureScheme.ECDSA),
        # the credential's own public key and certificate: same CKA_ID and CKA_LABEL
        ("ec", "ec public", SignatureScheme.ECDSA),
        ("ec", "ec certificate", SignatureScheme.ECDSA),
        # a secret (HMAC) key
        ("rsa", "hmac", SignatureScheme.RSA_PKCS1V15),
    ],
)
def test_a_kept_handle_now_naming_another_object_is_not_used(
    hsm: Hsm, keys: dict[str, KeyRef], name: str, planted: str, scheme: SignatureScheme
) -> None:
    ref = keys[name]
    public = hsm.public_key_info(ref)
    hsm.sign_digests(ref, DIGESTS, scheme=scheme)
    _plant(hsm, ref, _object(hsm, keys, planted))

    signatures = hsm.sign_digests(ref, DIGESTS, scheme=scheme)

    assert _all_verify(public, signatures, scheme)
    if planted.endswith("private"):
        wrong = hsm.public_key_info(keys[planted.split(" ")[0]])
        assert not any(
            _verifies(wrong, s, d, scheme) for s, d in zip(signatures, DIGESTS, strict=True)
        )
    # the key found again is kept, with its own handle, for the next batch
    assert _kept(hsm, ref).handle == _found(hsm, ref, ObjectClass.PRIVATE_KEY).handle
    assert _all_verify(public, hsm.sign_digests(ref, DIGESTS, scheme=scheme), scheme)


def _never_signs_with_a_new_key(
    hsm: Hsm, ref: KeyRef, public: bytes, created: list[tuple[KeyRef, bytes]]
) -> str:
    """Sign a batch with the destroyed ``ref``: refused as not found (the token stays in
    service), or signed with ``ref``'s own key (a token that keeps a destroyed object
    alive for a session that has it), never with a key created since."""
    for new, _ in created:  # this process sees the new objects: they get handles here
        _found(hsm, new, ObjectClass.PRIVATE_KEY)
    try:
        signatures = hsm.sign_digests(ref, DIGESTS, scheme=SignatureScheme.ECDSA)
    except KeyNotFound:
        hsm.check()
        return "not found"
    assert _all_verify(public, signatures, SignatureScheme.ECDSA)
    for _, new_public in created:
        assert not any(
            _verifies(new_public, s, d, SignatureScheme.ECDSA)
            for s, d in zip(signatures, DIGESTS, strict=True)
        )
    return "signed with the destroyed key"


def test_a_kept_key_destroyed_and_replaced_in_another_session_never_signs_with_the_new_key(
    hsm: Hsm, base_settings: Settings
) -> None:
    """Destroyed and new keys created through another session of this process (another
    Hsm: the same handle space)."""
    ref = hsm.generate_key(KeyAlgorithm.EC_P256)
    public = hsm.public_key_info(ref)
    hsm.sign_digests(ref, DIGESTS, scheme=SignatureScheme.ECDSA)
    other = Hsm(base_settings.hsm)
    try:
        other.destroy_key(ref)
        created = [
            (new, other.public_key_info(new))
            for new in [other.generate_key(KeyAlgorithm.EC_P256) for _ in range(4)]
        ]
    finally:
        other.close()
    assert _never_signs_with_a_new_key(hsm, ref, public, created) == "not found"


def _destroy_and_create(config: HsmConfig, conf: str, ref: KeyRef, count: int, out: Any) -> None:
    """In another process, as the operator's command line would: destroy ``ref``,
    generate ``count`` keys, answer their references and public keys."""
    os.environ["SOFTHSM2_CONF"] = conf
    hsm = Hsm(config)
    try:
        hsm.destroy_key(ref)
        created = [hsm.generate_key(KeyAlgorithm.EC_P256) for _ in range(count)]
        out.put([(new, hsm.public_key_info(new)) for new in created])
    finally:
        hsm.close()


def test_a_kept_key_destroyed_and_replaced_by_another_process_never_signs_with_the_new_key(
    hsm: Hsm, base_settings: Settings
) -> None:
    ref = hsm.generate_key(KeyAlgorithm.EC_P256)
    public = hsm.public_key_info(ref)
    hsm.sign_digests(ref, DIGESTS, scheme=SignatureScheme.ECDSA)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(
        target=_destroy_and_create,
        args=(base_settings.hsm, os.environ["SOFTHSM2_CONF"], ref, 4, out),
    )
    child.start()
    created = out.get(timeout=60)
    child.join(timeout=30)
    assert child.exitcode == 0
    _never_signs_with_a_new_key(hsm, ref, public, created)
