"""Reading untrusted XML: size first, then no DTD and no entities, then a hardened parser.

An XML document is refused before the parser sees it when it is larger than the
limit or declares a DTD or an entity (``<!DOCTYPE``, ``<!ENTITY``): entity
expansion (billion laughs), external entities (local files, network) and DTD
fetching all need one, and an e-application has no use for either. The scan is
done on the text in its own encoding (UTF-16/32 by BOM or by the zero bytes of
``<?``), so an encoding cannot hide the declaration. A document that passes is
parsed by lxml with entities unresolved, no network, no DTD loading and
``huge_tree`` off (libxml2's depth and size limits stay on).

The scan is deliberately coarse: the words inside a comment or CDATA section are
refused too. Nothing legitimate is lost by that, and it keeps the rule one line.
"""

from __future__ import annotations

import codecs

from lxml import etree

from signing.errors import DocumentError, DocumentTooLarge


class DocumentNotXml(DocumentError):
    """The document is not well-formed XML (or is empty)."""

    code = "DOCUMENT_NOT_XML"


class XmlUnsafe(DocumentError):
    """The XML declares a DTD or entities: refused before parsing (expansion bombs,
    external entities)."""

    code = "XML_UNSAFE"


_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY")

# (prefix, codec) for the encodings whose markup is not ASCII bytes; longest first.
_WIDE_ENCODINGS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)


def _markup_bytes(document: bytes) -> bytes:
    """The document as ASCII-compatible bytes, for the scan (never parsed from)."""
    for prefix, codec in _WIDE_ENCODINGS:
        if document.startswith(prefix):
            try:
                return document.decode(codec).encode("utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise DocumentNotXml(f"the document is not valid {codec}") from exc
    return document


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        collect_ids=True,
    )


def parse_untrusted_xml(document: bytes, max_bytes: int) -> etree._ElementTree:
    """Parse ``document`` as untrusted XML, refusing what could hurt.

    Raises :class:`~signing.errors.DocumentTooLarge`, :class:`XmlUnsafe` (a DTD or
    entity declaration) or :class:`DocumentNotXml`.
    """
    if len(document) > max_bytes:
        raise DocumentTooLarge(f"document is {len(document)} bytes; the limit is {max_bytes}")
    if not document.strip():
        raise DocumentNotXml("the document is empty")
    markup = _markup_bytes(document)
    for word in _FORBIDDEN:
        if word in markup:
            raise XmlUnsafe(
                f"the XML declares a DTD or entities ({word.decode()}); send it without them"
            )
    try:
        root = etree.fromstring(document, parser=_hardened_parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise DocumentNotXml("the document is not well-formed XML") from exc
    tree = root.getroottree()
    # Defence in depth: the scan above should have refused these already.
    if tree.docinfo.internalDTD is not None or tree.docinfo.doctype:
        raise XmlUnsafe("the XML declares a DTD")
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise XmlUnsafe("the XML references entities")
    return tree
