"""The token: one logged-in PKCS#11 session per process, behind a lock."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator

import pkcs11
from asn1crypto import algos, core, keys, x509
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from hsm.config import HsmConfig
from hsm.errors import (
    HsmError,
    HsmUnavailable,
    KeyNotFound,
    PinIncorrect,
    TokenNotFound,
    UnsupportedScheme,
)
from hsm.keys import KeyAlgorithm, KeyRef, SignatureScheme

_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
_PSS_PARAMS = {
    "sha256": (Mechanism.SHA256, pkcs11.MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, pkcs11.MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, pkcs11.MGF.SHA512, 64),
}

# What every private key dairi generates must say about itself.
PRIVATE_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
PUBLIC_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: False,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
}


def digest_info(digest: bytes, hash_algorithm: str) -> bytes:
    """DER DigestInfo for PKCS#1 v1.5 (what ``CKM_RSA_PKCS`` signs)."""
    return algos.DigestInfo(
        {
            "digest_algorithm": {"algorithm": hash_algorithm, "parameters": core.Null()},
            "digest": digest,
        }
    ).dump()


class Hsm:
    """Key custody on one PKCS#11 token.

    All PKCS#11 calls go through :meth:`_session`, which serialises them with a
    process-wide lock and re-opens the library in a child after ``fork``.
    """

    def __init__(self, config: HsmConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._pid: int | None = None
        self._lib: pkcs11.lib | None = None  # type: ignore[valid-type]
        self._session_obj: pkcs11.Session | None = None

    # -- session management -------------------------------------------------

    def _open(self) -> pkcs11.Session:
        try:
            lib = pkcs11.lib(self.config.module_path)
        except Exception as exc:  # the module could not be loaded at all
            raise HsmUnavailable(f"cannot load PKCS#11 module {self.config.module_path}") from exc
        if self._pid is not None and self._pid != os.getpid():
            # Forked child: the parent's PKCS#11 state is not ours to use. SoftHSM
            # with reset_on_fork has already dropped it, so C_Finalize may fail.
            with contextlib.suppress(pkcs11.PKCS11Error):
                lib.finalize()
            lib.initialize()
        try:
            token = lib.get_token(token_label=self.config.token_label)
        except pkcs11.NoSuchToken as exc:
            raise TokenNotFound(f"no token labelled {self.config.token_label!r}") from exc
        except pkcs11.MultipleTokensReturned as exc:
            raise HsmUnavailable(
                f"several tokens are labelled {self.config.token_label!r}"
            ) from exc
        pin = self.config.read_pin()
        try:
            session = token.open(rw=True, user_pin=pin)
        except pkcs11.UserAlreadyLoggedIn:
            # Login state is per process: another Hsm here is logged in already.
            # (python-pkcs11 0.9 leaves the handle of the refused login open.)
            session = token.open(rw=True)
        except (pkcs11.PinIncorrect, pkcs11.PinLenRange, pkcs11.PinLocked) as exc:
            raise PinIncorrect(f"token {self.config.token_label!r} refused the user PIN") from exc
        except pkcs11.PKCS11Error as exc:
            raise HsmUnavailable(f"cannot open a session on {self.config.token_label!r}") from exc
        finally:
            del pin
        self._lib = lib
        self._pid = os.getpid()
        return session

    @contextlib.contextmanager
    def _session(self) -> Iterator[pkcs11.Session]:
        with self._lock:
            if self._session_obj is None or self._pid != os.getpid():
                self._session_obj = None
                self._session_obj = self._open()
            try:
                yield self._session_obj
            except (pkcs11.SessionClosed, pkcs11.SessionHandleInvalid, pkcs11.DeviceRemoved) as exc:
                self._session_obj = None
                raise HsmUnavailable("the HSM session was lost") from exc
            except pkcs11.PKCS11Error as exc:
                if isinstance(exc, HsmError):
                    raise
                raise HsmError(f"PKCS#11 operation failed: {type(exc).__name__}") from exc

    def check(self) -> None:
        """Log in if needed and touch the token; raises an :class:`HsmError` if it cannot."""
        with self._session() as session:
            session.token.label  # noqa: B018 - a cheap call through the session

    def close(self) -> None:
        with self._lock:
            if self._session_obj is not None and self._pid == os.getpid():
                with contextlib.suppress(pkcs11.PKCS11Error):
                    self._session_obj.close()
            self._session_obj = None

    # -- keys ---------------------------------------------------------------

    def generate_key(self, algorithm: KeyAlgorithm, *, version: int = 1) -> KeyRef:
        """Generate a non-extractable key pair on the token and return its reference."""
        ref = KeyRef(self.config.token_label, secrets.token_hex(16), version)
        attrs = {"id": ref.cka_id, "label": ref.cka_label, "store": True,
                 "public_template": PUBLIC_KEY_TEMPLATE,
                 "private_template": PRIVATE_KEY_TEMPLATE}
        with self._session() as session:
            if algorithm.is_rsa:
                session.generate_keypair(KeyType.RSA, algorithm.rsa_bits, **attrs)
            else:
                params = session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                    local=True,
                )
                params.generate_keypair(**attrs)
        return ref

    def _private_key(self, session: pkcs11.Session, ref: KeyRef) -> pkcs11.PrivateKey:
        try:
            return session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=ref.cka_id,
                                   label=ref.cka_label)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
            raise KeyNotFound(f"no private key {ref} on the token") from exc

    def _public_key(self, session: pkcs11.Session, ref: KeyRef) -> pkcs11.PublicKey:
        try:
            return session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=ref.cka_id,
                                   label=ref.cka_label)
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
            raise KeyNotFound(f"no public key {ref} on the token") from exc

    def key_algorithm(self, ref: KeyRef) -> KeyAlgorithm:
        with self._session() as session:
            key = self._private_key(session, ref)
            if key.key_type == KeyType.EC:
                return KeyAlgorithm.EC_P256
            bits = len(self._public_key(session, ref)[Attribute.MODULUS]) * 8
        return KeyAlgorithm.RSA_3072 if bits == 3072 else KeyAlgorithm.RSA_2048

    def public_key_info(self, ref: KeyRef) -> bytes:
        """DER SubjectPublicKeyInfo of the key pair."""
        with self._session() as session:
            pub = self._public_key(session, ref)
            if pub.key_type == KeyType.RSA:
                return keys.PublicKeyInfo(
                    {
                        "algorithm": {"algorithm": "rsa"},
                        "public_key": keys.RSAPublicKey.load(encode_rsa_public_key(pub)),
                    }
                ).dump()
            point = pub[Attribute.EC_POINT]
        # SoftHSM returns CKA_EC_POINT as a DER OCTET STRING around the point.
        raw_point = core.OctetString.load(point).native
        return keys.PublicKeyInfo(
            {
                "algorithm": {
                    "algorithm": "ec",
                    "parameters": keys.ECDomainParameters(name="named", value="secp256r1"),
                },
                "public_key": raw_point,
            }
        ).dump()

    def list_keys(self) -> list[KeyRef]:
        """Every dairi private key on the token."""
        refs = []
        with self._session() as session:
            for key in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}):
                label = key.label or ""
                parts = label.split(":")
                if len(parts) == 3 and parts[0] == "dairi" and parts[2].startswith("v"):
                    refs.append(KeyRef(self.config.token_label, parts[1], int(parts[2][1:])))
        return sorted(refs)

    def destroy_key(self, ref: KeyRef) -> None:
        """Destroy the key pair and any certificate stored beside it."""
        with self._session() as session:
            self._private_key(session, ref).destroy()
            for obj in session.get_objects({Attribute.ID: ref.cka_id}):
                obj.destroy()

    # -- certificates stored beside keys ------------------------------------

    def store_certificate(self, ref: KeyRef, cert_der: bytes) -> None:
        """Store (or replace) the key's certificate on the token, as HSM tools expect."""
        cert = x509.Certificate.load(cert_der)
        with self._session() as session:
            self._private_key(session, ref)
            for old in session.get_objects(
                {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: ref.cka_id}
            ):
                old.destroy()
            session.create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.ID: ref.cka_id,
                    Attribute.LABEL: ref.cka_label,
                    Attribute.SUBJECT: cert.subject.dump(),
                    Attribute.ISSUER: cert.issuer.dump(),
                    Attribute.SERIAL_NUMBER: core.Integer(cert.serial_number).dump(),
                    Attribute.VALUE: cert_der,
                }
            )

    # -- signing ------------------------------------------------------------

    def sign_digest(
        self,
        ref: KeyRef,
        digest: bytes,
        *,
        hash_algorithm: str = "sha256",
        scheme: SignatureScheme = SignatureScheme.RSA_PKCS1V15,
    ) -> bytes:
        """Sign a digest computed in software.

        Returns PKCS#1 v1.5 or PSS signature bytes for RSA, a DER
        ``ECDSA-Sig-Value`` for EC. Raises :class:`UnsupportedScheme` when the
        scheme does not fit the key.
        """
        if hash_algorithm not in _HASHES or len(digest) != _HASHES[hash_algorithm]().digest_size:
            raise UnsupportedScheme(f"digest does not match {hash_algorithm}")
        with self._session() as session:
            key = self._private_key(session, ref)
            is_rsa = key.key_type == KeyType.RSA
            if is_rsa == (scheme is SignatureScheme.ECDSA):
                raise UnsupportedScheme(f"scheme {scheme} does not fit key {ref}")
            if scheme is SignatureScheme.RSA_PKCS1V15:
                return key.sign(digest_info(digest, hash_algorithm), mechanism=Mechanism.RSA_PKCS)
            if scheme is SignatureScheme.RSA_PSS:
                return key.sign(digest, mechanism=Mechanism.RSA_PKCS_PSS,
                                mechanism_param=_PSS_PARAMS[hash_algorithm])
            raw = key.sign(digest, mechanism=Mechanism.ECDSA)
        return encode_ecdsa_signature(raw)

    def sign(
        self,
        ref: KeyRef,
        data: bytes,
        *,
        hash_algorithm: str = "sha256",
        scheme: SignatureScheme = SignatureScheme.RSA_PKCS1V15,
    ) -> bytes:
        """Hash ``data`` in software and sign the digest (see :meth:`sign_digest`)."""
        if hash_algorithm not in _HASHES:
            raise UnsupportedScheme(f"unsupported hash {hash_algorithm}")
        return self.sign_digest(ref, _HASHES[hash_algorithm](data).digest(),
                                hash_algorithm=hash_algorithm, scheme=scheme)
