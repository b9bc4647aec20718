"""What an output image says about itself: colour profile, source, title, software, resolution.

Every encoder embeds what its format can hold (ICC profile, XMP packet, text fields, DPI).
Nothing here depends on the time of the run, so two runs over the same tiles write the same
bytes and a checksum of the output means something. The download date goes in the sidecar.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from dezoom_steps import __version__

XMP_NAMESPACE = "http://ns.adobe.com/xap/1.0/"  # JPEG APP1 XMP identifier (without the NUL)


def escape(text: str) -> str:
    """`&`, `<` and `>` as XML entities, as xml.sax.saxutils.escape does (whose module imports
    urllib.request and http.client: 20 ms of every step's start-up)."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


@dataclass(frozen=True)
class OutputMeta:
    """Metadata carried into the output image: ICC profile bytes, source URL, title, date, DPI."""

    icc: bytes | None = None
    source: str = ""
    title: str | None = None
    date: str | None = None  # a date from the source's metadata, never the time of the run
    dpi: tuple[float, float] | None = None
    software: str = f"dezoom-steps {__version__}"

    def description(self) -> str:
        """One line for description fields: the title and where the image came from."""
        parts = [p for p in (self.title, f"source: {self.source}" if self.source else "") if p]
        return "; ".join(parts)

    def xmp(self) -> bytes:
        """An XMP packet (UTF-8) with dc:title, dc:source, dc:date and xmp:CreatorTool."""
        fields = []
        if self.title:
            fields.append("<dc:title><rdf:Alt><rdf:li xml:lang=\"x-default\">"
                          f"{escape(self.title)}</rdf:li></rdf:Alt></dc:title>")
        if self.source:
            fields.append(f"<dc:source>{escape(self.source)}</dc:source>")
        if self.date:
            fields.append(f"<dc:date><rdf:Seq><rdf:li>{escape(self.date)}</rdf:li></rdf:Seq></dc:date>")
        fields.append(f"<xmp:CreatorTool>{escape(self.software)}</xmp:CreatorTool>")
        body = "".join(fields)
        return (
            '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
            '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            f'xmlns:xmp="http://ns.adobe.com/xap/1.0/">{body}</rdf:Description></rdf:RDF></x:xmpmeta>'
            '<?xpacket end="r"?>'
        ).encode("utf-8")


def icc_to_json(icc: bytes | None) -> str | None:
    """An ICC profile as stored in stitch.json (base64), or None."""
    return base64.b64encode(icc).decode("ascii") if icc else None


def icc_from_json(value: str | None) -> bytes | None:
    """Inverse of `icc_to_json`."""
    return base64.b64decode(value) if value else None


def from_step_docs(tiles: dict[str, Any], stitched: dict[str, Any], source: str) -> OutputMeta:
    """The metadata of an output from tiles.json, stitch.json and the public source URL."""
    dpi = tiles.get("level", {}).get("params", {}).get("dpi")  # a dezoomer that knows it (IIIF physdim)
    return OutputMeta(
        icc=icc_from_json(stitched.get("icc")), source=source, title=tiles.get("title"),
        date=tiles.get("date"), dpi=(float(dpi), float(dpi)) if dpi else None,
    )
