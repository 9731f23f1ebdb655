"""XAdES baseline signatures (B-B, B-T, B-LT, B-LTA) with signxml and an HSM key.

signxml builds the XML signature and the signed properties (dairi's own are in
:mod:`signing.xades_properties`); the private-key operation goes to the HSM through
:class:`~signing.xml_key.HsmXmlKey`, an object with the ``sign``/``public_key`` interface signxml
calls on a cryptography private key, so signxml needs no patch. The document is read
by :func:`signing.xml_safety.parse_untrusted_xml` before anything else.

Where things go (ETSI EN 319 132-1):

- ``ds:KeyInfo/ds:X509Data``: the signing certificate first, its chain, then the
  attribute authority's certificate when signing under a mandate. KeyInfo is
  covered by a ``ds:Reference`` (signxml's XAdES signer signs it), so the AA
  certificate cannot be swapped afterwards, it is there from B-B on (a verifier
  needs it to check the AC in ``CertifiedRolesV2`` at every level, as the PAdES
  signature has it among the CMS certificates), and EN 319 132-1 lets KeyInfo carry
  other certificates. The signing certificate comes first because xmlsec1 takes
  the first certificate that is not an issuer of another as the key's.
- Signed: SigningTime, SigningCertificateV2, SignaturePolicyIdentifier and
  SignerRoleV2/CertifiedRolesV2 (under a mandate), DataObjectFormat. Under a
  mandate, each grant evidence file (every hop's instruction, its CMS signature and
  its AC) is a base64 ``ds:Object`` covered by its own ``ds:Reference`` and named
  by a DataObjectFormat (file name, description, MIME type), as the PAdES
  signature covers them as embedded files.
- Unsigned: SignatureTimeStamp over the exclusive-canonicalised
  ``ds:SignatureValue`` (B-T); CertificateValues and RevocationValues for the
  signer, the TSA, the AA and the AC (B-LT); ArchiveTimeStamp (B-LTA).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from cryptography import x509
from lxml import etree
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from signxml import DigestAlgorithm, SignatureMethod, SignatureReference, methods
from signxml.exceptions import InvalidInput
from signxml.xades import XAdESDataObjectFormat

from hsm import Hsm
from signing.credential import SigningCredential
from signing.errors import DocumentError, SigningError, TimestampFailed
from signing.mandate_evidence import (
    MANDATE_SIGNATURE_POLICY_DOCUMENT,
    MANDATE_SIGNATURE_POLICY_OID,
    MandateEvidence,
)
from signing.validation_data import TimestampAuthority, ValidationData, ValidationDataSource
from signing.xades_archive import archive_timestamp_input
from signing.xades_properties import (
    ARCHIVE_TIMESTAMP_TAG,
    NS,
    SIGNATURE_TIMESTAMP_TAG,
    DairiXadesSigner,
    SignedPropertiesSpec,
    add_timestamp,
    add_validation_values,
    c14n,
    unsigned_signature_properties,
)
from signing.xml_key import HsmXmlKey
from signing.xml_safety import parse_untrusted_xml


class XmlAlreadySigned(DocumentError):
    """An enveloped signature covers the whole document: added to a document that
    already carries an enveloped XML signature, it changes what that one covers and
    breaks it. A detached signature leaves the document as it is."""

    code = "XML_ALREADY_SIGNED"


class XadesLevel(enum.StrEnum):
    """ETSI EN 319 132-1 baseline levels."""

    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @property
    def timestamped(self) -> bool:
        return self is not XadesLevel.B_B

    @property
    def long_term(self) -> bool:
        return self in (XadesLevel.B_LT, XadesLevel.B_LTA)


XadesPackaging = Literal["enveloped", "detached"]


@dataclass(frozen=True)
class XadesSpec:
    """What to produce. ``detached_uri``: the URI a detached signature names the
    document by (e.g. its file name), required for detached and only for it."""

    level: XadesLevel = XadesLevel.B_B
    packaging: XadesPackaging = "enveloped"
    # Sign under this mandate (AC, AA certificate, policy); None: a plain signature.
    mandate: MandateEvidence | None = None
    detached_uri: str | None = None

    def __post_init__(self) -> None:
        if self.packaging not in ("enveloped", "detached"):
            raise ValueError(f"unknown XAdES packaging {self.packaging!r}")
        if (self.packaging == "detached") != bool(self.detached_uri):
            raise ValueError("a detached signature needs detached_uri; an enveloped one takes none")
        if self.detached_uri is not None and self.detached_uri.startswith("#"):
            raise ValueError("detached_uri names a document outside the signature, not a fragment")


@dataclass(frozen=True)
class XadesResult:
    """``xml``: the signed document (enveloped) or the ``ds:Signature`` document (detached)."""

    xml: bytes
    level: XadesLevel
    packaging: XadesPackaging
    signature_id: str
    document_sha256: str
    signed_document_sha256: str


def _signature_element(output_root: etree._Element) -> etree._Element:
    if output_root.tag == etree.QName(NS["ds"], "Signature"):
        return output_root
    found = output_root.findall("ds:Signature", namespaces=NS)
    if not found:  # signxml appends it to the root; a bug if not
        raise AssertionError("no ds:Signature under the document root")
    return found[-1]


class XadesSigner:
    """Signs XML documents at a XAdES baseline level with HSM credentials.

    Holds no per-request state; signxml signers and certificate objects are built per
    call, so one instance serves every thread of a process.
    """

    def __init__(
        self,
        hsm: Hsm,
        *,
        tsa: TimestampAuthority | None,
        validation_data: ValidationDataSource | None,
        max_document_bytes: int,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._hsm = hsm
        self._tsa = tsa
        self._validation = validation_data
        self._max_bytes = max_document_bytes
        self._clock = clock or (lambda: datetime.now(UTC))

    def sign(self, document: bytes, credential: SigningCredential, spec: XadesSpec) -> XadesResult:
        """Sign ``document``; raises a :class:`SigningError` (``DOCUMENT_NOT_XML``,
        ``XML_UNSAFE``, ``DOCUMENT_TOO_LARGE``, ``TIMESTAMP_FAILED`` …) or an ``hsm``
        error."""
        return asyncio.run(self.async_sign(document, credential, spec))

    async def async_sign(
        self, document: bytes, credential: SigningCredential, spec: XadesSpec
    ) -> XadesResult:
        tree = parse_untrusted_xml(document, self._max_bytes)
        signatures = tree.getroot().iter(etree.QName(NS["ds"], "Signature"))
        if spec.packaging == "enveloped" and next(signatures, None) is not None:
            raise XmlAlreadySigned(
                "the XML is signed already; an enveloped signature would break that "
                "signature: sign it detached"
            )
        level = spec.level
        if level.timestamped and self._tsa is None:
            raise TimestampFailed(f"{level} needs a time-stamping authority; none is configured")
        if level.long_term and self._validation is None:
            raise SigningError(f"{level} needs revocation data; no validation source configured")

        # Refuse a certificate that does not validate now, before touching the key;
        # for B-LT this is also the data the signature will carry.
        validation: ValidationData | None = None
        if self._validation is not None:
            validation = await self._validation.collect(
                credential.certificate_der, credential.chain_der
            )
        if level.long_term:
            assert self._tsa is not None and self._validation is not None
            assert validation is not None
            validation = validation.merged(await self._validation.collect_for_tsa(self._tsa))
            if spec.mandate is not None:
                aa_data = await self._validation.collect(
                    spec.mandate.aa_certificate_der,
                    spec.mandate.aa_chain_der,
                    key_usage=frozenset({"digital_signature"}),
                )
                validation = validation.merged(aa_data)

        root = tree.getroot()
        # signxml signs a copy: ``out_root`` is the signed document (enveloped) or the
        # ds:Signature (detached).
        out_root = self._sign_xml(root, credential, spec)
        signature = _signature_element(out_root)
        if level.timestamped:
            usp = unsigned_signature_properties(signature)
            token = await self._timestamp(self._signature_value_c14n(signature))
            add_timestamp(usp, SIGNATURE_TIMESTAMP_TAG, token, _child_id(signature, "SigTST"))
            if level.long_term:
                assert validation is not None
                mandate = spec.mandate
                add_validation_values(
                    usp,
                    certs=[*validation.certs, *_mandate_certs(mandate)],
                    crls=[*validation.crls, *(mandate.ac_crls_der if mandate else ())],
                    ocsps=[*validation.ocsps, *(mandate.ac_ocsp_der if mandate else ())],
                )
            if level is XadesLevel.B_LTA:
                detached_root = root if spec.packaging == "detached" else None
                message = archive_timestamp_input(signature, detached_root)
                token = await self._timestamp(message)
                add_timestamp(usp, ARCHIVE_TIMESTAMP_TAG, token, _child_id(signature, "ArcTST"))

        # The whole document: processing instructions beside the root are signed too.
        signed = etree.tostring(out_root.getroottree(), xml_declaration=True, encoding="UTF-8")
        return XadesResult(
            xml=signed,
            level=level,
            packaging=spec.packaging,
            signature_id=str(signature.get("Id")),
            document_sha256=hashlib.sha256(document).hexdigest(),
            signed_document_sha256=hashlib.sha256(signed).hexdigest(),
        )

    def _sign_xml(
        self, root: etree._Element, credential: SigningCredential, spec: XadesSpec
    ) -> etree._Element:
        mandate = spec.mandate
        properties = SignedPropertiesSpec(
            signing_time=self._clock(),
            policy_oid=MANDATE_SIGNATURE_POLICY_OID if mandate else None,
            policy_document=MANDATE_SIGNATURE_POLICY_DOCUMENT if mandate else None,
            certified_role_der=mandate.leaf_ac_der if mandate else None,
            evidence=mandate.files if mandate else (),
        )
        signer = DairiXadesSigner(
            properties,
            method=methods.detached if spec.packaging == "detached" else methods.enveloped,
            signature_algorithm=(
                SignatureMethod.RSA_SHA256
                if credential.algorithm.is_rsa
                else SignatureMethod.ECDSA_SHA256
            ),
            digest_algorithm=DigestAlgorithm.SHA256,
            data_object_format=XAdESDataObjectFormat(
                Description="signed document", MimeType="application/xml"
            ),
        )
        certs = [
            x509.load_der_x509_certificate(der)
            for der in (credential.certificate_der, *credential.chain_der, *_aa_cert(mandate))
        ]
        references = (
            [SignatureReference(URI=spec.detached_uri)] if spec.detached_uri is not None else None
        )
        try:
            out = signer.sign(
                root,
                key=cast(Any, HsmXmlKey(self._hsm, credential)),
                cert=cast(Any, certs),
                reference_uri=cast(Any, references),
                always_add_key_value=False,
            )
        except InvalidInput as exc:
            raise SigningError(f"signxml could not sign: {exc}") from exc
        return cast(etree._Element, out)

    @staticmethod
    def _signature_value_c14n(signature: etree._Element) -> bytes:
        value = signature.find("ds:SignatureValue", namespaces=NS)
        assert value is not None
        return c14n(value)

    async def _timestamp(self, message: bytes) -> bytes:
        assert self._tsa is not None
        digest = hashlib.sha256(message).digest()
        try:
            token = await self._tsa.make_timestamper().async_timestamp(digest, "sha256")
        except (TimestampRequestError, OSError) as exc:
            raise TimestampFailed(
                f"the time-stamping authority refused or failed ({type(exc).__name__})"
            ) from exc
        return bytes(token.dump())


def _aa_cert(mandate: MandateEvidence | None) -> tuple[bytes, ...]:
    return (mandate.aa_certificate_der,) if mandate else ()


def _mandate_certs(mandate: MandateEvidence | None) -> tuple[bytes, ...]:
    return (mandate.aa_certificate_der, *mandate.aa_chain_der) if mandate else ()


def _child_id(signature: etree._Element, suffix: str) -> str:
    return f"{signature.get('Id')}-{suffix}"
