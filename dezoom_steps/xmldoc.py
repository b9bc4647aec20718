"""Safe parsing of untrusted XML metadata (ImageProperties.xml, .dzi, ...).

Metadata comes from servers we do not control, so the parser never resolves entities,
never loads a DTD, never touches the network and refuses huge documents. Element and
attribute names are matched by local name, so a default namespace (as in
`<Image xmlns="http://schemas.microsoft.com/deepzoom/2008">`) or a prefix does not matter.
"""

from __future__ import annotations

from lxml import etree

MAX_XML_BYTES = 4 * 1024 * 1024  # metadata documents are a few hundred bytes; pages a few hundred KB
UTF8_BOM = b"\xef\xbb\xbf"
# "<!ENTITY" as it appears in every encoding a parser detects by itself (a UTF-16 document
# slipped past a UTF-8-only check, and libxml2 expands internal entities in attribute values
# even with resolve_entities=False: found while building the hostile corpus).
_ENTITY_MARKS = tuple("<!ENTITY".encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"))


class XmlError(ValueError):
    """The bytes are not a well-formed, safe XML document (the message says why)."""


def strip_bom(data: bytes) -> bytes:
    """`data` without a leading UTF-8 byte order mark and leading whitespace."""
    data = data.lstrip()
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):].lstrip()
    return data


def _parser() -> etree.XMLParser:
    """A parser that cannot be made to read files, the network or expand entities."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        dtd_validation=False, remove_comments=True, remove_pis=True, recover=False,
    )


def parse_xml(data: bytes) -> etree._Element:
    """The root element of `data`, or XmlError (too large, empty, entities, not well-formed)."""
    if len(data) > MAX_XML_BYTES:
        raise XmlError(f"document too large for metadata ({len(data):,} bytes, limit {MAX_XML_BYTES:,})")
    data = strip_bom(data)
    if not data:
        raise XmlError("empty document")
    if any(mark in data for mark in _ENTITY_MARKS):
        raise XmlError("entity declarations are not allowed in metadata")
    try:
        root = etree.fromstring(data, parser=_parser())
    except (etree.XMLSyntaxError, ValueError, LookupError) as exc:  # also: an unknown encoding name
        raise XmlError(f"not well-formed XML ({' '.join(str(exc).split())})") from None
    if root is None:
        raise XmlError("no root element")
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):  # any other encoding (belt and braces)
        raise XmlError("entity declarations are not allowed in metadata")
    return root


def local_name(element: etree._Element) -> str:
    """The element's tag without its namespace (`{ns}Image` -> `Image`)."""
    tag = element.tag
    if not isinstance(tag, str):  # comments, processing instructions, entities
        return ""
    return etree.QName(tag).localname


def first_child(element: etree._Element, name: str) -> etree._Element | None:
    """The first child element whose local name is `name` (case-insensitive), or None."""
    wanted = name.lower()
    for child in element:
        if local_name(child).lower() == wanted:
            return child
    return None


def attribute(element: etree._Element, name: str) -> str | None:
    """The value of attribute `name`, matched by local name and case-insensitively, or None."""
    wanted = name.lower()
    for key, value in element.attrib.items():
        if etree.QName(key).localname.lower() == wanted:
            return value
    return None
