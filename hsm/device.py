"""The token: keys, certificates and signatures through one logged-in PKCS#11 session
per process, behind a lock (kept by :mod:`hsm.session`)."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import pkcs11
from asn1crypto import algos, core, keys, x509
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature, encode_named_curve_parameters
from pkcs11.util.rsa import encode_rsa_public_key

from hsm.config import HsmConfig
from hsm.errors import KeyNotFound, UnsupportedScheme
from hsm.keys import KeyAlgorithm, KeyRef, SignatureScheme
from hsm.session import SessionKeeper

if TYPE_CHECKING:

    class _SigningKey(pkcs11.PrivateKey, pkcs11.SignMixin):
        """What get_key answers for a dairi private key: python-pkcs11 composes each
        object's class from its attributes, and CKA_SIGN (PRIVATE_KEY_TEMPLATE) adds sign()."""


_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
_PSS_PARAMS = {
    "sha256": (Mechanism.SHA256, pkcs11.MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, pkcs11.MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, pkcs11.MGF.SHA512, 64),
}

# What a kept key handle's object must still answer to sign for its KeyRef (sign_digests).
_KEY_IDENTITY = [Attribute.CLASS, Attribute.ID, Attribute.LABEL, Attribute.KEY_TYPE]

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
# A secret (HMAC) key: kept in the token, never readable, good only for MACs.
SECRET_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
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
    process-wide lock, re-opens the library in a child after ``fork`` and after an
    outage, and never retries a refused PIN (:mod:`hsm.session`, :mod:`hsm.login`).
    """

    def __init__(self, config: HsmConfig) -> None:
        self.config = config
        self._keeper = SessionKeeper(config)
        # sign_digests' keys: found once per session, not once per batch (a lookup costs
        # about a third of a signature); forgotten when the session is not the one they
        # were found in (a forked child, a session reopened after an outage), and used
        # only while the object behind the handle still is the key (_still_the_key).
        self._signing_session: pkcs11.Session | None = None
        self._signing_keys: dict[KeyRef, _SigningKey] = {}

    # -- session management -------------------------------------------------

    def _session(
        self, *, writes: bool = False
    ) -> contextlib.AbstractContextManager[pkcs11.Session]:
        """The process's logged-in session for one operation (see :mod:`hsm.session`;
        ``writes``: the operation creates or destroys token objects): raises
        :class:`HsmUnavailable` during an outage, :class:`PinIncorrect` once the token
        has refused the PIN."""
        return self._keeper.session(writes=writes)

    def check(self, probe: KeyRef | None = None) -> None:
        """Prove the token answers now: enumerate the slots afresh, and search the
        logged-in session for ``probe`` (a key that must exist, e.g. the attribute
        authority's) or, without one, for nothing in particular.

        Raises :class:`HsmUnavailable`, :class:`PinIncorrect` (without logging in
        again once refused) or :class:`KeyNotFound` (token present, key absent).
        """
        with self._session() as session:
            self._keeper.confirm_token()
            if probe is not None:
                self._private_key(session, probe)
            else:
                list(
                    session.get_objects(
                        {
                            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                            Attribute.ID: b"dairi-readiness-probe",
                        }
                    )
                )

    def unlock(self) -> bool:
        """Forget a refused login so that the next operation tries the PIN again;
        True if a record was removed (see :mod:`hsm.login`)."""
        return self._keeper.gate.unlock()

    def close(self) -> None:
        self._keeper.close()

    # -- keys ---------------------------------------------------------------

    def generate_key(self, algorithm: KeyAlgorithm, *, version: int = 1) -> KeyRef:
        """Generate a non-extractable key pair on the token and return its reference."""
        ref = KeyRef(self.config.token_label, secrets.token_hex(16), version)
        attrs: dict[str, Any] = {
            "id": ref.cka_id,
            "label": ref.cka_label,
            "store": True,
            "public_template": PUBLIC_KEY_TEMPLATE,
            "private_template": PRIVATE_KEY_TEMPLATE,
        }
        with self._session(writes=True) as session:
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

    def _private_key(self, session: pkcs11.Session, ref: KeyRef) -> _SigningKey:
        try:
            key = session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, id=ref.cka_id, label=ref.cka_label
            )
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
            raise KeyNotFound(f"no private key {ref} on the token") from exc
        return cast("_SigningKey", key)

    def _public_key(self, session: pkcs11.Session, ref: KeyRef) -> pkcs11.PublicKey:
        try:
            key = session.get_key(
                object_class=ObjectClass.PUBLIC_KEY, id=ref.cka_id, label=ref.cka_label
            )
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
            raise KeyNotFound(f"no public key {ref} on the token") from exc
        return cast(pkcs11.PublicKey, key)

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
        """Every dairi private key on the token (:class:`HsmUnavailable` rather than an
        empty list when the token has gone: SoftHSM then finds no objects)."""
        with self._session() as session:
            self._keeper.confirm_token()
            labels = self._private_key_labels(session)
        refs = []
        for label in labels:
            parts = label.split(":")
            if len(parts) == 3 and parts[0] == "dairi" and parts[2].startswith("v"):
                refs.append(KeyRef(self.config.token_label, parts[1], int(parts[2][1:])))
        return sorted(refs)

    @staticmethod
    def _private_key_labels(session: pkcs11.Session, attempts: int = 3) -> list[str]:
        # A key another process is writing or destroying at this instant can be found
        # and then answer CKR_OBJECT_HANDLE_INVALID (measured: 3 lists in 190 beside a
        # process generating keys): search again rather than call the session lost.
        for attempt in range(attempts):
            try:
                return [
                    key[Attribute.LABEL] or ""
                    for key in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
                ]
            except pkcs11.ObjectHandleInvalid:
                if attempt == attempts - 1:
                    raise
        return []

    def destroy_key(self, ref: KeyRef) -> None:
        """Destroy the key pair and any certificate stored beside it."""
        with self._session(writes=True) as session:
            self._signing_keys.pop(ref, None)
            self._private_key(session, ref).destroy()
            for obj in session.get_objects({Attribute.ID: ref.cka_id}):
                obj.destroy()

    # -- certificates stored beside keys ------------------------------------

    def store_certificate(self, ref: KeyRef, cert_der: bytes) -> None:
        """Store (or replace) the key's certificate on the token, as HSM tools expect."""
        cert = x509.Certificate.load(cert_der)
        with self._session(writes=True) as session:
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
                return key.sign(
                    digest,
                    mechanism=Mechanism.RSA_PKCS_PSS,
                    mechanism_param=_PSS_PARAMS[hash_algorithm],
                )
            raw = key.sign(digest, mechanism=Mechanism.ECDSA)
        return encode_ecdsa_signature(raw)

    def sign_digests(
        self,
        ref: KeyRef,
        digests: Sequence[bytes],
        *,
        hash_algorithm: str = "sha256",
        scheme: SignatureScheme = SignatureScheme.RSA_PKCS1V15,
    ) -> list[bytes]:
        """Sign several digests with one key in one hold of the session (a CSC
        ``signHash`` batch); the key is found once per session and kept for the next
        batches, each of which first checks that the kept handle still names the key
        (:meth:`_still_the_key`). Each result is as :meth:`sign_digest`'s; raises
        :class:`UnsupportedScheme` before signing anything if one digest does not fit,
        :class:`KeyNotFound` when the key is no longer on the token."""
        size = _HASHES[hash_algorithm]().digest_size if hash_algorithm in _HASHES else None
        if size is None or any(len(d) != size for d in digests):
            raise UnsupportedScheme(f"a digest does not match {hash_algorithm}")
        with self._session() as session:
            if self._signing_session is not session:
                self._signing_session, self._signing_keys = session, {}
            cached = self._signing_keys.get(ref)
            if cached is not None:
                if self._still_the_key(cached, ref):
                    try:
                        return self._sign_each(cached, ref, digests, hash_algorithm, scheme)
                    except (pkcs11.ObjectHandleInvalid, pkcs11.KeyHandleInvalid):
                        pass  # destroyed since the check: search, not call the session lost
                # the handle names something else now, or nothing: search (KeyNotFound if
                # the key is gone)
                del self._signing_keys[ref]
            key = self._private_key(session, ref)
            self._signing_keys[ref] = key
            return self._sign_each(key, ref, digests, hash_algorithm, scheme)

    @staticmethod
    def _still_the_key(key: _SigningKey, ref: KeyRef) -> bool:
        """Whether the object behind a kept handle is still ``ref``'s private key.

        A PKCS#11 handle names an object only while it exists: after the key is
        destroyed (here, in another worker, by the operator's command line) a token may
        give its number to a new object, and signing through the kept handle would sign
        with that object. So one attribute read (python-pkcs11's ``get_attributes``:
        ``C_GetAttributeValue`` for the lengths, then for the values) takes what
        :meth:`_private_key` searches by (class, CKA_ID, CKA_LABEL; the session is on
        the configured token) and the key type the kept object chose its mechanisms by;
        any difference, or a handle the token no longer knows, means search again.
        """
        try:
            found = key.get_attributes(_KEY_IDENTITY)
        except (
            pkcs11.ObjectHandleInvalid,
            pkcs11.KeyHandleInvalid,
            pkcs11.AttributeTypeInvalid,
            pkcs11.AttributeSensitive,
        ):
            return False
        return found == {
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.ID: ref.cka_id,
            Attribute.LABEL: ref.cka_label,
            Attribute.KEY_TYPE: key.key_type,
        }

    @staticmethod
    def _sign_each(
        key: _SigningKey,
        ref: KeyRef,
        digests: Sequence[bytes],
        hash_algorithm: str,
        scheme: SignatureScheme,
    ) -> list[bytes]:
        is_rsa = key.key_type == KeyType.RSA
        if is_rsa == (scheme is SignatureScheme.ECDSA):
            raise UnsupportedScheme(f"scheme {scheme} does not fit key {ref}")
        size = _HASHES[hash_algorithm]().digest_size
        # The DigestInfo's DER is a fixed prefix for a given hash: build it once.
        prefix = digest_info(bytes(size), hash_algorithm)[:-size]
        signed: list[bytes] = []
        for digest in digests:
            if scheme is SignatureScheme.RSA_PKCS1V15:
                signed.append(key.sign(prefix + digest, mechanism=Mechanism.RSA_PKCS))
            elif scheme is SignatureScheme.RSA_PSS:
                signed.append(
                    key.sign(
                        digest,
                        mechanism=Mechanism.RSA_PKCS_PSS,
                        mechanism_param=_PSS_PARAMS[hash_algorithm],
                    )
                )
            else:
                raw = key.sign(digest, mechanism=Mechanism.ECDSA)
                signed.append(encode_ecdsa_signature(raw))
        return signed

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
        return self.sign_digest(
            ref,
            _HASHES[hash_algorithm](data).digest(),
            hash_algorithm=hash_algorithm,
            scheme=scheme,
        )

    # -- secret keys (HMAC) ---------------------------------------------------

    def secret_key_id(self, label: str) -> str:
        """The CKA_ID (hex) of the HMAC key labelled ``label``, generated on first need.

        The key is a 256-bit ``CKK_GENERIC_SECRET`` generated inside the token (see
        :data:`SECRET_KEY_TEMPLATE`: a token object, sensitive, never extractable,
        usable only for ``CKM_SHA256_HMAC``). Processes that create it at the same
        moment may leave several keys under the label; every one stays usable by its
        id and the smallest id is the one answered, so all processes settle on it.
        """
        with self._session() as session:
            ids = self._secret_key_ids(session, label)
            if not ids:
                session.generate_key(
                    KeyType.GENERIC_SECRET,
                    256,
                    id=secrets.token_bytes(16),
                    label=label,
                    store=True,
                    template=SECRET_KEY_TEMPLATE,
                    mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                )
                ids = self._secret_key_ids(session, label)
        return min(ids).hex()

    @staticmethod
    def _secret_key_ids(session: pkcs11.Session, label: str) -> list[bytes]:
        return [
            bytes(key[Attribute.ID])
            for key in session.get_objects(
                {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
            )
        ]

    def hmac_sha256(self, label: str, key_id: str, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` computed inside the token with the secret key
        (``label``, ``key_id``); raises :class:`KeyNotFound` when it is not there."""
        with self._session() as session:
            try:
                key = session.get_key(
                    object_class=ObjectClass.SECRET_KEY, id=bytes.fromhex(key_id), label=label
                )
            except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
                raise KeyNotFound(f"no secret key {label}/{key_id} on the token") from exc
            # SECRET_KEY_TEMPLATE sets CKA_SIGN, so python-pkcs11 gives the key sign()
            hmac_key = cast(pkcs11.SignMixin, key)
            return bytes(hmac_key.sign(data, mechanism=Mechanism.SHA256_HMAC))
