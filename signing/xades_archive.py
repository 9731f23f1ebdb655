"""What a XAdES ``ArchiveTimeStamp`` (B-LTA) covers, as one byte string.

ETSI EN 319 132-1 §5.5.2.2 (XAdES 1.4.1 ``xadesv141:ArchiveTimeStamp``), in order:
the data of each ``ds:Reference`` as its digest was computed (after its
transforms), then ``ds:SignedInfo``, ``ds:SignatureValue`` and ``ds:KeyInfo``,
then each unsigned signature property already present (SignatureTimeStamp,
CertificateValues, RevocationValues), then every ``ds:Object`` but the one holding
the qualifying properties. Elements are canonicalised with the time-stamp's
method (exclusive C14N 1.0).
"""

from __future__ import annotations

from lxml import etree

from signing.xades_properties import NS, c14n, document_c14n, unsigned_signature_properties


def _reference_octets(
    signature: etree._Element, reference: etree._Element, detached_root: etree._Element | None
) -> bytes:
    uri = reference.get("URI")
    document = signature.getroottree().getroot()
    if uri == "":
        # Enveloped: the whole document (top-level processing instructions too)
        # without this signature (enveloped transform), inclusive C14N as the
        # reference's transform names.
        copy = etree.fromstring(etree.tostring(document.getroottree(), encoding="utf-8"))
        for node in copy.findall("ds:Signature", namespaces=NS):
            if node.get("Id") == signature.get("Id"):
                copy.remove(node)
        return document_c14n(copy)
    if uri is not None and uri.startswith("#"):
        # Same-document node (SignedProperties, KeyInfo): no transforms, so the
        # node set is turned into octets by inclusive C14N (XML-DSig §4.4.3.2).
        found = document.xpath("//*[@Id=$id]", id=uri[1:])
        if not isinstance(found, list) or len(found) != 1:
            raise AssertionError(f"reference {uri} does not resolve to one element")
        return bytes(etree.tostring(found[0], method="c14n", with_comments=False))
    if detached_root is None:
        raise AssertionError(f"external reference {uri} without the detached document")
    return document_c14n(detached_root)


def archive_timestamp_input(
    signature: etree._Element, detached_root: etree._Element | None
) -> bytes:
    """The octets the next ArchiveTimeStamp of ``signature`` time-stamps.
    ``detached_root``: the document a detached signature references."""
    parts = [
        _reference_octets(signature, reference, detached_root)
        for reference in signature.findall("ds:SignedInfo/ds:Reference", namespaces=NS)
    ]
    for name in ("ds:SignedInfo", "ds:SignatureValue", "ds:KeyInfo"):
        element = signature.find(name, namespaces=NS)
        if element is not None:
            parts.append(c14n(element))
    parts.extend(c14n(prop) for prop in unsigned_signature_properties(signature))
    for obj in signature.findall("ds:Object", namespaces=NS):
        if obj.find("xades:QualifyingProperties", namespaces=NS) is None:
            parts.append(c14n(obj))
    return b"".join(parts)
