"""Deep Zoom (DZI): `<Image TileSize Overlap Format><Size Width Height/></Image>` + `_files/L/c_r.ext`.

The metadata may be XML (`.dzi`, `.xml`, with or without a UTF-8 BOM and namespace) or its
JSON form `{"Image": {"Url", "Format", "Overlap", "TileSize", "Size": {"Width", "Height"}}}`
whose numbers may be strings. Level numbers run from 0 (1x1) to
max_level = ceil(log2(max(W, H))); each level is the one above halved with rounding up.
Tiles carry `Overlap` extra pixels on every side that has a neighbour, so the tile at column
c > 0 starts at c*T - O; `base.grid_tiles` crops that overlap so cells partition the canvas.

A query string on the metadata URL (`foo.dzi?sig=...`) is kept on every tile URL on the
same origin (signed or tokenised servers).

Levels are returned largest first (index 0 = full resolution).
"""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.querystring import append_query
from dezoom_steps.dezoomers.support import load_json, name_from_url, whole_number
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.model import Found, Level
from dezoom_steps.urls import resolve_relative, same_origin
from dezoom_steps.xmldoc import XmlError, attribute, first_child, local_name, parse_xml, strip_bom

# A tile URL: .../name_files/12/3_4.jpg -> the metadata is .../name.dzi (or .xml).
_TILE = re.compile(r"_files/\d+/\d+_\d+\.(?:jpe?g|png|webp|gif|tiff?)(?=$|[?#])", re.IGNORECASE)
_DZI_URL = re.compile(r"\.dzi(?=$|[?#&])|[?&]DeepZoom=", re.IGNORECASE)
MAX_TILE_SIDE = 16384  # field notes S5: decoded tiles are capped at 16k x 16k
_FORMAT = re.compile(r"^[A-Za-z0-9]{1,10}$")
_META_EXT = re.compile(r"\.(?:dzi|xml|json)$", re.IGNORECASE)
_QUERY_FILE = re.compile(r"\.(?:dzi|xml|json)(?=&|$)", re.IGNORECASE)


def max_level(width: int, height: int) -> int:
    """ceil(log2(max(W, H))): the number of the full-resolution level (0 for a 1x1 image)."""
    return (max(width, height) - 1).bit_length()


def default_base(meta_url: str) -> str:
    """The `_files` folder beside the metadata file: its URL up to the extension, plus `_files`.

    Only a dot in the last path segment counts (a dot in the host, a folder or the query does
    not), except for servers that name the file in the query (iipsrv `?DeepZoom=a.tif.dzi`).
    """
    return _locate(meta_url)[0]


def _locate(meta_url: str) -> tuple[str, str]:
    """(default `_files` base, query to keep on tiles) of a metadata URL.

    A file named in the query (`?DeepZoom=a.tif.dzi&token=x`) gives the base
    `?DeepZoom=a.tif_files` and keeps what follows it (`token=x`); otherwise the whole
    query is kept.
    """
    parts = urlsplit(meta_url)
    head, _, last = parts.path.rpartition("/")
    named = None if _META_EXT.search(last) else _QUERY_FILE.search(parts.query)
    if named:
        start = meta_url.index("?") + 1
        return meta_url[: start + named.start()] + "_files", parts.query[named.end():].lstrip("&")
    if "." in last:
        last = last[: last.rindex(".")]
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/{last}_files", "", "")), parts.query


class DeepZoom(Dezoomer):
    """Microsoft Deep Zoom images (.dzi), XML or JSON, from libvips, OpenSeadragon sites, iipsrv."""

    name = "deepzoom"
    summary = "Deep Zoom (DZI): .dzi/.xml or JSON metadata with name_files/level/col_row tiles"
    url_hint = r"(?i)\.dzi(?:$|[?#&])|_files/\d+/\d+_\d+\.(?:jpe?g|png|webp)|[?&]DeepZoom="
    examples = (
        "https://example.org/images/harbour.dzi",
        "http://127.0.0.1:8101/small/dz254o1.dzi?v=2",
        "https://example.org/images/harbour_files/12/3_4.jpg",
        "http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?DeepZoom=medium_pyr.tif.dzi",
    )
    auto = True

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read the DZI (XML or JSON) and list every level, largest first."""
        meta, data = _metadata(url, docs)
        image = _image_record(meta, data)
        tile = whole_number(image.get("TileSize"), "TileSize", meta)
        overlap = whole_number(image.get("Overlap", 0) or 0, "Overlap", meta, minimum=0)
        if 2 * overlap > MAX_TILE_SIDE:  # an overlap alone wider than any tile may be (hostile input)
            raise MalformedMetadata(f"{meta}: Overlap ({overlap}) is absurd: tiles would be more than "
                                    f"{MAX_TILE_SIDE} px wide")
        fmt = str(image.get("Format") or "").strip()
        if not _FORMAT.match(fmt):
            raise MalformedMetadata(f"{meta}: Format must name the tile file extension, got {fmt!r}")
        width = whole_number(image.get("Width"), "Size Width", meta)
        height = whole_number(image.get("Height"), "Size Height", meta)
        declared = str(image.get("Url") or "").strip().rstrip("/")
        base, query = _locate(meta)
        if declared:
            base = resolve_relative(meta, declared)
            if not same_origin(base, meta):  # a token is never sent to another host
                query = ""
        title = name_from_url(base)
        if title:
            while title.endswith("_files"):
                title = title[: -len("_files")]
        levels = build_levels(base, width, height, tile, overlap, fmt, query)
        return Found(levels=levels, title=title or None)

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """`{base}/{level}/{col}_{row}.{format}[?query]`."""
        url = f"{level.params['base']}/{level.params['level']}/{col}_{row}.{level.format}"
        return append_query(url, level.params.get("query", ""))


def _metadata(url: str, docs: Documents) -> tuple[str, bytes]:
    """(metadata URL, its bytes): the input itself, or the .dzi/.xml beside a tile URL."""
    m = _TILE.search(url)
    if not m:
        return url, docs.get(url)
    stem = url[: m.start()]
    try:
        return stem + ".dzi", docs.get(stem + ".dzi")
    except WrongDezoomer:
        pass  # no .dzi beside the tiles: some sites name it .xml
    try:
        return stem + ".xml", docs.get(stem + ".xml")
    except WrongDezoomer:
        raise WrongDezoomer(
            f"tile URL given, but neither {stem}.dzi nor {stem}.xml could be downloaded") from None


def _image_record(meta: str, data: bytes) -> dict[str, Any]:
    """The Image fields as a flat dict (TileSize, Overlap, Format, Url, Width, Height)."""
    hinted = _DZI_URL.search(meta) is not None
    text = strip_bom(data)
    if text.startswith((b"{", b"[")):
        return _json_record(meta, text)
    if not text.startswith(b"<"):
        if hinted:
            raise MalformedMetadata(f"{meta}: not a Deep Zoom document (neither XML nor JSON)")
        raise WrongDezoomer("not a Deep Zoom document (neither XML nor JSON)")
    try:
        root = parse_xml(text)
    except XmlError as exc:
        if hinted:
            raise MalformedMetadata(f"{meta}: unable to parse the DZI file: {exc}") from None
        raise WrongDezoomer(f"not a Deep Zoom document: {exc}") from None
    if local_name(root) != "Image":
        why = f"root element is <{local_name(root)}>, expected <Image>"
        if hinted:
            raise MalformedMetadata(f"{meta}: not a Deep Zoom image: {why}")
        raise WrongDezoomer(f"not a Deep Zoom image: {why}")
    size = first_child(root, "Size")
    record = {k: attribute(root, k) for k in ("TileSize", "Overlap", "Format", "Url")}
    record["Width"] = attribute(size, "Width") if size is not None else None
    record["Height"] = attribute(size, "Height") if size is not None else None
    return record


def _json_record(meta: str, text: bytes) -> dict[str, Any]:
    """The Image fields of the JSON form; WrongDezoomer if the JSON is something else."""
    try:
        doc = load_json(text)
    except ValueError as exc:
        raise WrongDezoomer(f"not a Deep Zoom document: {exc}") from None
    image = doc.get("Image") if isinstance(doc, dict) else None
    if not isinstance(image, dict):
        if isinstance(doc, dict) and "TileSize" in doc and "Size" in doc:
            image = doc
        else:
            raise WrongDezoomer("JSON without a Deep Zoom \"Image\" object")
    size = image.get("Size")
    if not isinstance(size, dict):
        raise MalformedMetadata(f"{meta}: the Deep Zoom Image has no Size {{Width, Height}}")
    record = {k: image.get(k) for k in ("TileSize", "Overlap", "Format", "Url")}
    record["Width"], record["Height"] = size.get("Width"), size.get("Height")
    return record


def build_levels(base: str, width: int, height: int, tile: int, overlap: int, fmt: str,
                 query: str = "") -> list[Level]:
    """Levels max_level..0 (largest first), each the previous one halved with rounding up."""
    top = max_level(width, height)
    levels = []
    for k in range(top + 1):
        w, h = -((-width) >> k), -((-height) >> k)  # ceil(size / 2**k)
        number = top - k
        levels.append(Level(
            width=w, height=h, tile_width=tile, tile_height=tile, overlap=overlap, format=fmt,
            name=f"level {number} ({w} x {h})", params={"base": base, "level": number, "query": query},
        ))
    return levels
