"""dairi's XAdES qualifying properties (ETSI EN 319 132-1), on top of signxml.

signxml's :class:`~signxml.xades.XAdESSigner` builds the ``ds:Object`` with
``QualifyingProperties`` and calls one annotator per signed property; dairi
overrides four of them and adds the unsigned properties after the signature value
exists:

- ``SigningTime`` from dairi's clock (signxml reads the wall clock);
- ``SigningCertificateV2`` naming the signing certificate only (signxml lists every
  certificate given, the AA's included);
- ``SignaturePolicyIdentifier`` with the policy OID as a URN and the SHA-256 of the
  policy document (signxml writes the identifier bare);
- ``SignerRoleV2/CertifiedRolesV2/CertifiedRole/X509AttributeCertificate`` with the
  leaf mandate AC (signxml
  writes claimed roles only);
- unsigned: ``SignatureTimeStamp``, ``CertificateValues``, ``RevocationValues``
  and ``ArchiveTimeStamp`` (XAdES 1.4.1 namespace).
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod
from signxml.exceptions import InvalidInput
from signxml.util import SigningSettings, ds_tag, namespaces, xades141_tag, xades_tag
from signxml.xades import XAdESSigner

from signing.mandate_evidence import EvidenceFile

# The canonicalisation of what a time-stamp covers: exclusive, so the bytes of an
# element do not depend on the namespaces of the document it sits in.
TIMESTAMP_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
_SHA256_URI = "http://www.w3.org/2001/04/xmlenc#sha256"
_BASE64_URI = "http://www.w3.org/2000/09/xmldsig#base64"
NS = {"ds": namespaces.ds, "xades": namespaces.xades, "xades141": namespaces.xades141}


def b64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


def c14n(element: etree._Element) -> bytes:
    """``element`` canonicalised with :data:`TIMESTAMP_C14N` (exclusive C14N 1.0)."""
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


@dataclass(frozen=True)
class SignedPropertiesSpec:
    """What goes into SignedSignatureProperties besides the signing certificate."""

    signing_time: datetime
    policy_oid: str | None = None
    policy_document: bytes | None = None
    certified_role_der: bytes | None = None  # the leaf mandate AC
    # Grant evidence, each file a signed ds:Object (base64) with its DataObjectFormat.
    evidence: tuple[EvidenceFile, ...] = ()


class DairiXadesSigner(XAdESSigner):
    """signxml's XAdES signer with dairi's signed properties (see the module docstring).

    One instance per signature: it carries that signature's properties.
    """

    def __init__(self, properties: SignedPropertiesSpec, **xml_signer_args: Any) -> None:
        super().__init__(**xml_signer_args)
        self._properties = properties
        self._evidence_references: list[tuple[etree._Element, EvidenceFile]] = []
        # After KeyInfo, before the XAdES object: its DataObjectFormat names them.
        self.signature_annotators.insert(
            self.signature_annotators.index(self._build_xades_ds_object), self._add_evidence
        )

    def _add_evidence(self, sig_root: etree._Element, signing_settings: SigningSettings) -> None:
        """Each evidence file as ``<ds:Object Id=… MimeType=… Encoding=base64>``, covered
        by a ds:Reference, so a verifier can check every hop offline (as the PDF's
        embedded files do for PAdES)."""
        if not self._properties.evidence:
            return
        if "Id" not in sig_root.attrib:
            sig_root.set("Id", f"SignXMLSignature{self._get_token()}")
        for n, file in enumerate(self._properties.evidence):
            obj = self._sub(
                sig_root,
                ds_tag("Object"),
                Id=f"{sig_root.get('Id')}-Evidence{n}",
                MimeType=file.mime_type,
                Encoding=_BASE64_URI,
            )
            obj.text = b64(file.data)
            self._add_reference_to_signed_info(sig_root, obj)
            reference = sig_root.find("ds:SignedInfo", namespaces=NS)[-1]
            reference.set("Id", f"{obj.get('Id')}-Ref")
            self._evidence_references.append((reference, file))

    def add_data_object_format(
        self,
        signed_data_object_properties: etree._Element,
        sig_root: etree._Element,
        signing_settings: SigningSettings,
    ) -> None:
        super().add_data_object_format(
            signed_data_object_properties, sig_root=sig_root, signing_settings=signing_settings
        )
        for reference, file in self._evidence_references:
            node = self._sub(
                signed_data_object_properties,
                xades_tag("DataObjectFormat"),
                ObjectReference=f"#{reference.get('Id')}",
            )
            self._sub(node, xades_tag("Description")).text = f"{file.name}: {file.description}"
            self._sub(node, xades_tag("MimeType")).text = file.mime_type

    def _tostring(self, xml_node: etree._Element, **kwargs: Any) -> bytes:
        # signxml copies the document through etree.tostring, whose default (ASCII)
        # turns a non-ASCII element name (<申請書>) into a character reference that
        # does not parse back; UTF-8 keeps it a name. A document element is copied
        # with its document, so processing instructions beside it (an e-application's
        # <?xml-stylesheet?>) stay in the signed document.
        kwargs.setdefault("encoding", "utf-8")
        return bytes(etree.tostring(_whole_document(xml_node), **kwargs))

    def _get_c14n_inputs_from_references(self, doc_root: Any, references: Any) -> Any:
        # signxml's detached mode first looks the URI up as an Id inside the document
        # and signs only that element when one matches: a document carrying
        # Id="application.xml" would get a signature over part of it that names the
        # whole file. Refusing the look-up makes signxml sign the whole document.
        raise InvalidInput("dairi's detached signatures cover the whole document")

    def _c14n(
        self,
        nodes: Any,
        algorithm: CanonicalizationMethod,
        inclusive_ns_prefixes: Any = None,
    ) -> bytes:
        # The document a reference covers (URI="" enveloped, or the detached file) is a
        # document node-set in XML-DSig: its top-level processing instructions are in
        # it, as xmlsec1 and other verifiers canonicalise it. signxml canonicalises
        # the document element alone, which leaves them out.
        nodes = [_whole_document(n) for n in (nodes if isinstance(nodes, list) else [nodes])]
        return bytes(super()._c14n(nodes, algorithm, inclusive_ns_prefixes=inclusive_ns_prefixes))

    def _sub(self, parent: etree._Element, tag: etree.QName, **attrs: str) -> etree._Element:
        return etree.SubElement(parent, tag, nsmap=self.namespaces, **attrs)

    def add_signing_time(
        self,
        signed_signature_properties: etree._Element,
        sig_root: etree._Element,
        signing_settings: SigningSettings,
    ) -> None:
        moment = self._properties.signing_time.replace(microsecond=0)
        node = self._sub(signed_signature_properties, xades_tag("SigningTime"))
        node.text = moment.isoformat().replace("+00:00", "Z")

    def add_signing_certificate(
        self,
        signed_signature_properties: etree._Element,
        sig_root: etree._Element,
        signing_settings: SigningSettings,
    ) -> None:
        # EN 319 132-1 §5.2.2: the signing certificate's digest; the other
        # certificates in KeyInfo (chain, AA) are not the signer's.
        assert signing_settings.cert_chain is not None  # dairi always passes the chain
        signing_cert = signing_settings.cert_chain[0]
        v2 = self._sub(signed_signature_properties, xades_tag("SigningCertificateV2"))
        cert_digest = self._sub(self._sub(v2, xades_tag("Cert")), xades_tag("CertDigest"))
        self._sub(cert_digest, ds_tag("DigestMethod"), Algorithm=_SHA256_URI)
        value = self._sub(cert_digest, ds_tag("DigestValue"))
        value.text = b64(hashlib.sha256(signing_cert.public_bytes(Encoding.DER)).digest())

    def add_signature_policy_identifier(
        self,
        signed_signature_properties: etree._Element,
        sig_root: etree._Element,
        signing_settings: SigningSettings,
    ) -> None:
        props = self._properties
        if props.policy_oid is None or props.policy_document is None:
            return
        identifier_node = self._sub(
            signed_signature_properties, xades_tag("SignaturePolicyIdentifier")
        )
        policy_id = self._sub(identifier_node, xades_tag("SignaturePolicyId"))
        sig_policy_id = self._sub(policy_id, xades_tag("SigPolicyId"))
        identifier = self._sub(sig_policy_id, xades_tag("Identifier"), Qualifier="OIDAsURN")
        identifier.text = f"urn:oid:{props.policy_oid}"
        description = self._sub(sig_policy_id, xades_tag("Description"))
        description.text = "dairi: signature made under a mandate (電子委任状)"
        policy_hash = self._sub(policy_id, xades_tag("SigPolicyHash"))
        self._sub(policy_hash, ds_tag("DigestMethod"), Algorithm=_SHA256_URI)
        self._sub(policy_hash, ds_tag("DigestValue")).text = b64(
            hashlib.sha256(props.policy_document).digest()
        )

    def add_signer_role(
        self,
        signed_signature_properties: etree._Element,
        sig_root: etree._Element,
        signing_settings: SigningSettings,
    ) -> None:
        if self._properties.certified_role_der is None:
            return
        role = self._sub(signed_signature_properties, xades_tag("SignerRoleV2"))
        certified = self._sub(role, xades_tag("CertifiedRolesV2"))
        # EN 319 132-1 §5.2.6: CertifiedRole is a choice; an RFC 5755 AC goes in
        # X509AttributeCertificate (base64 DER).
        role_node = self._sub(certified, xades_tag("CertifiedRole"))
        self._sub(role_node, xades_tag("X509AttributeCertificate")).text = b64(
            self._properties.certified_role_der
        )


def _whole_document(node: Any) -> Any:
    """The document of ``node`` when it is the document element of a document with
    other top-level nodes; ``node`` otherwise."""
    if isinstance(node, etree._Element) and node.getparent() is None:
        if node.getprevious() is not None or node.getnext() is not None:
            return node.getroottree()
    return node


def document_c14n(root: etree._Element, *, exclusive: bool = False) -> bytes:
    """``root``'s document (with its top-level processing instructions), canonicalised."""
    return bytes(
        etree.tostring(
            _whole_document(root), method="c14n", exclusive=exclusive, with_comments=False
        )
    )


def qualifying_properties(signature: etree._Element) -> etree._Element:
    found = signature.find("ds:Object/xades:QualifyingProperties", namespaces=NS)
    if found is None:  # signxml always writes it; a bug if not
        raise AssertionError("no xades:QualifyingProperties in the signature")
    return found


def unsigned_signature_properties(signature: etree._Element) -> etree._Element:
    """The signature's UnsignedSignatureProperties, created on first need."""
    qp = qualifying_properties(signature)
    unsigned = qp.find("xades:UnsignedProperties", namespaces=NS)
    if unsigned is None:
        unsigned = etree.SubElement(qp, xades_tag("UnsignedProperties"))
    usp = unsigned.find("xades:UnsignedSignatureProperties", namespaces=NS)
    if usp is None:
        usp = etree.SubElement(unsigned, xades_tag("UnsignedSignatureProperties"))
    return usp


def add_timestamp(
    usp: etree._Element, tag: etree.QName, token_der: bytes, element_id: str
) -> etree._Element:
    """A XAdESTimeStampType element (SignatureTimeStamp, ArchiveTimeStamp) with its token."""
    node = etree.SubElement(usp, tag, Id=element_id)
    etree.SubElement(node, ds_tag("CanonicalizationMethod"), Algorithm=TIMESTAMP_C14N.value)
    etree.SubElement(node, xades_tag("EncapsulatedTimeStamp")).text = b64(token_der)
    return node


def add_validation_values(
    usp: etree._Element,
    certs: Iterable[bytes],
    crls: Iterable[bytes],
    ocsps: Iterable[bytes],
) -> None:
    """CertificateValues and RevocationValues (B-LT), each value once."""
    cert_values = etree.SubElement(usp, xades_tag("CertificateValues"))
    for der in dict.fromkeys(certs):
        etree.SubElement(cert_values, xades_tag("EncapsulatedX509Certificate")).text = b64(der)
    revocation = etree.SubElement(usp, xades_tag("RevocationValues"))
    crl_list, ocsp_list = list(dict.fromkeys(crls)), list(dict.fromkeys(ocsps))
    if crl_list:
        crl_values = etree.SubElement(revocation, xades_tag("CRLValues"))
        for der in crl_list:
            etree.SubElement(crl_values, xades_tag("EncapsulatedCRLValue")).text = b64(der)
    if ocsp_list:
        ocsp_values = etree.SubElement(revocation, xades_tag("OCSPValues"))
        for der in ocsp_list:
            etree.SubElement(ocsp_values, xades_tag("EncapsulatedOCSPValue")).text = b64(der)


ARCHIVE_TIMESTAMP_TAG = xades141_tag("ArchiveTimeStamp")
SIGNATURE_TIMESTAMP_TAG = xades_tag("SignatureTimeStamp")
