"""Where the client's signatures come from: one abstraction, "a card that can sign bytes
and show its certificate", over three sources.

- :class:`DirectoryCard`: a virtual card directory (``dairi dev card create``);
- :class:`Pkcs12Card`: a PKCS#12 file, as 商業登記電子証明書 are delivered;
- :class:`Pkcs11Card`: a key on any PKCS#11 token (OpenSC's JPKI driver reads a real
  My Number Card; SoftHSM stands in for one in the tests). The key never leaves the
  token: the token signs.

Every card signs RSASSA-PKCS1-v1_5 over the SHA-256 DigestInfo of the bytes given (what
a JPKI card and the service's proofs expect), and :func:`sign_cms` turns that into the
detached CMS SignedData a grant instruction travels with. PINs and passwords are read
from a file or the environment by the command line, never logged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from asn1crypto import algos
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from dairi import DairiError


class CardUnusable(DairiError):
    """The card cannot be read or cannot sign: a missing or malformed file, a wrong
    password or PIN, no such token or key, or a key that is not RSA."""

    code = "CLIENT_CARD_UNUSABLE"


class Card(Protocol):
    """A card that can sign bytes and show its certificate."""

    @property
    def certificate_der(self) -> bytes: ...

    @property
    def intermediates_der(self) -> tuple[bytes, ...]: ...

    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 over the SHA-256 DigestInfo of ``data``."""
        ...


@dataclass(frozen=True)
class SoftwareCard:
    """A software key and its certificate: a virtual card's role or a PKCS#12 file."""

    key: rsa.RSAPrivateKey = field(repr=False)
    certificate_der: bytes
    intermediates_der: tuple[bytes, ...] = ()

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def directory_card(directory: Path, role: str | None = None) -> SoftwareCard:
    """The key pair ``role`` of the virtual card in ``directory`` (default: a My Number
    Card's authentication key, a representative card's registration key).

    Raises ``DEV_CARD_INVALID`` / ``DEV_CARD_ROLE_UNKNOWN`` (:mod:`devpki.cards`)."""
    # devpki is development tooling: imported only when a virtual card is used.
    from devpki.cards import load_card

    virtual = load_card(directory).role(role)
    return SoftwareCard(virtual.key, virtual.certificate.public_bytes(serialization.Encoding.DER))


def pkcs12_card(path: Path, password: bytes | None) -> SoftwareCard:
    """The key and certificate in a PKCS#12 file (the other certificates in it are sent
    as intermediates)."""
    try:
        key, certificate, others = pkcs12.load_key_and_certificates(path.read_bytes(), password)
    except OSError as exc:
        raise CardUnusable(f"cannot read {path}") from exc
    except (ValueError, TypeError) as exc:
        raise CardUnusable(
            f"{path} is not a PKCS#12 file this password opens", "CLIENT_CARD_UNUSABLE"
        ) from exc
    if certificate is None or not isinstance(key, rsa.RSAPrivateKey):
        raise CardUnusable(f"{path} holds no RSA key with its certificate")
    der = serialization.Encoding.DER
    return SoftwareCard(
        key, certificate.public_bytes(der), tuple(c.public_bytes(der) for c in others)
    )


@dataclass(frozen=True)
class Pkcs11Location:
    """Which key on which token: the module, the token label (or slot number), and the
    key's label or id (hex)."""

    module: str
    token_label: str | None = None
    slot: int | None = None
    key_label: str | None = None
    key_id: bytes | None = None


class Pkcs11Card:
    """A key on a PKCS#11 token: the token signs (``CKM_SHA256_RSA_PKCS``), the
    certificate is the token's certificate object with the key's id (or label).

    Opened per use: the client is a short-lived process, and a session kept across
    calls is a session held while the user reads the screen."""

    def __init__(self, where: Pkcs11Location, pin: str | None) -> None:
        self.where = where
        self._pin = pin
        self._certificate: bytes | None = None

    def _open(self) -> Any:
        import pkcs11
        from pkcs11.exceptions import PKCS11Error

        try:
            lib = pkcs11.lib(self.where.module)
            tokens = list(lib.get_tokens(token_label=self.where.token_label))
            if self.where.slot is not None:
                tokens = [t for t in tokens if t.slot.slot_id == self.where.slot]
        except (PKCS11Error, RuntimeError, OSError) as exc:
            raise CardUnusable(
                f"cannot load PKCS#11 module {self.where.module} ({type(exc).__name__})"
            ) from exc
        if len(tokens) != 1:
            raise CardUnusable(f"{len(tokens)} PKCS#11 tokens match (want exactly one)")
        try:
            return tokens[0].open(user_pin=self._pin)
        except PKCS11Error as exc:
            raise CardUnusable(f"the token refused the session ({type(exc).__name__})") from exc

    def _find(self, session: Any, object_class: Any) -> Any:
        from pkcs11 import Attribute

        attrs: dict[Any, Any] = {Attribute.CLASS: object_class}
        if self.where.key_id is not None:
            attrs[Attribute.ID] = self.where.key_id
        elif self.where.key_label is not None:
            attrs[Attribute.LABEL] = self.where.key_label
        found = list(session.get_objects(attrs))
        if len(found) != 1:
            raise CardUnusable(
                f"{len(found)} {object_class.name.lower()} objects match on the token "
                "(name the key by --pkcs11-key-label or --pkcs11-key-id)"
            )
        return found[0]

    @property
    def certificate_der(self) -> bytes:
        if self._certificate is None:
            from pkcs11 import Attribute, ObjectClass

            with self._open() as session:
                certificate = self._find(session, ObjectClass.CERTIFICATE)
                self._certificate = bytes(certificate[Attribute.VALUE])
        return self._certificate

    @property
    def intermediates_der(self) -> tuple[bytes, ...]:
        return ()

    def sign(self, data: bytes) -> bytes:
        from pkcs11 import KeyType, Mechanism, ObjectClass
        from pkcs11.exceptions import PKCS11Error

        with self._open() as session:
            key = self._find(session, ObjectClass.PRIVATE_KEY)
            if key.key_type != KeyType.RSA:
                raise CardUnusable("the card's key is not RSA")
            try:
                return bytes(key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
            except PKCS11Error as exc:
                raise CardUnusable(f"the token did not sign ({type(exc).__name__})") from exc


class _CardSigner(Signer):
    """pyHanko's ``Signer`` whose private-key operation is the card's."""

    def __init__(self, card: Card) -> None:
        certificate = asn1_x509.Certificate.load(card.certificate_der)
        super().__init__(
            signing_cert=certificate,
            cert_registry=SimpleCertificateStore.from_certs(
                [certificate, *(asn1_x509.Certificate.load(d) for d in card.intermediates_der)]
            ),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa"}),
        )
        self._card = card

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if digest_algorithm != "sha256":
            raise CardUnusable(f"the card signs with SHA-256, not {digest_algorithm}")
        if dry_run:
            size = asn1_x509.Certificate.load(self._card.certificate_der).public_key.bit_size
            return bytes((size + 7) // 8)
        return self._card.sign(data)


def sign_cms(card: Card, data: bytes) -> bytes:
    """A detached CMS SignedData (SHA-256, signingCertificateV2) over ``data`` by
    ``card``: how a representative signs a grant instruction (電子委任状)."""
    signer = _CardSigner(card)
    signed = asyncio.run(signer.async_sign_general_data(data, "sha256", detached=True))
    return bytes(signed.dump())
