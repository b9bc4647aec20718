"""Zoomify: an `ImageProperties.xml` file beside `TileGroup{g}/{z}-{x}-{y}.jpg` tiles.

Levels ("tiers") are computed from the image size alone, halving with rounding up until a
tier fits in one tile; that one-tile tier is included. This is what libvips
(`dzsave --layout zoomify`) and iipsrv produce (shared rig: `check_layouts.py` found every
predicted URL). `NUMTILES` is never used: iipsrv reports only the full-resolution tile
count (1120 for a 10000x7000 image whose pyramid has 1499 tiles), and trusting it would put
tiles in the wrong TileGroup.

Tier numbers `z` in tile URLs count from the smallest tier (0). Tiles are numbered across
all tiers, smallest tier first and row by row; tile number `i` lives in `TileGroup{i // 256}`.

A query string after ImageProperties.xml (`?token=...`, or `&token=...` after iipsrv's
`?Zoomify=x.tif/ImageProperties.xml`) is kept on every tile URL, except the viewer's
`noCacheSfx` cache-buster.

Levels are returned largest first (index 0 = full resolution).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.querystring import append_query, query_after, without_params
from dezoom_steps.dezoomers.support import ceil_div, name_from_url, whole_number
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.model import Found, Level
from dezoom_steps.xmldoc import XmlError, attribute, local_name, parse_xml

TILES_PER_GROUP = 256
DEFAULT_TILE_SIZE = 256  # the Zoomify default, used when TILESIZE is absent
# The Zoomify viewer's cache-buster (a timestamp per page load): it is not carried over to
# tiles, whose cache keys would otherwise change every time the URL is copied again.
CACHE_BUSTERS = frozenset({"nocachesfx"})

_METADATA = re.compile(r"/ImageProperties\.xml", re.IGNORECASE)
_TILE = re.compile(r"/TileGroup\d+/\d+-\d+-\d+\.(?:jpe?g|png)(?=$|[?#])", re.IGNORECASE)


def tiers(width: int, height: int, tile_size: int) -> list[tuple[int, int]]:
    """Tier sizes, largest first: halve with rounding up until a tier fits in one tile."""
    sizes = [(width, height)]
    while sizes[-1][0] > tile_size or sizes[-1][1] > tile_size:
        w, h = sizes[-1]
        sizes.append((ceil_div(w, 2), ceil_div(h, 2)))
    return sizes


def metadata_url(url: str) -> str | None:
    """The ImageProperties.xml URL behind `url` (itself, or the one of a tile URL), or None."""
    if _METADATA.search(url):
        return url  # fetched as given: a query string may matter to the server
    m = _TILE.search(url)
    if m:
        return url[: m.start()] + "/ImageProperties.xml"
    return None


class Zoomify(Dezoomer):
    """Zoomify pyramids (ImageProperties.xml), as written by Zoomify, libvips and iipsrv."""

    name = "zoomify"
    summary = "Zoomify: ImageProperties.xml with TileGroupN/z-x-y.jpg tiles (libvips, iipsrv, Zoomify)"
    url_hint = r"(?i)/ImageProperties\.xml|/TileGroup\d+/\d+-\d+-\d+\.(?:jpe?g|png)"
    examples = (
        "https://example.org/zoomify/painting/ImageProperties.xml",
        "http://127.0.0.1:8101/small/zoomify256/ImageProperties.xml?noCacheSfx=1700000000",
        "https://example.org/zoomify/painting/TileGroup0/2-1-0.jpg",
        "http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?Zoomify=medium_pyr.tif/ImageProperties.xml",
    )
    auto = True

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read ImageProperties.xml and list every tier, largest first."""
        meta = metadata_url(url)
        if meta is None:
            raise WrongDezoomer("the URL names neither an ImageProperties.xml file nor a Zoomify tile")
        data = docs.get(meta)
        # Base URL: everything before the first "/ImageProperties.xml"; a query after it is
        # kept for the tiles (signed or tokenised servers), cache-busters excepted.
        found = _METADATA.search(meta)
        base = meta[: found.start()]
        query = without_params(query_after(meta, found.end()), CACHE_BUSTERS)
        try:
            root = parse_xml(data)
        except XmlError as exc:
            raise MalformedMetadata(f"{meta}: unable to parse ImageProperties.xml: {exc}") from None
        if local_name(root).upper() != "IMAGE_PROPERTIES":
            raise MalformedMetadata(
                f"{meta}: not a Zoomify ImageProperties.xml (root element is <{local_name(root)}>, "
                "expected <IMAGE_PROPERTIES>)")
        width = whole_number(attribute(root, "WIDTH"), "WIDTH", meta)
        height = whole_number(attribute(root, "HEIGHT"), "HEIGHT", meta)
        size_attr = attribute(root, "TILESIZE")
        tile = DEFAULT_TILE_SIZE if size_attr is None else whole_number(size_attr, "TILESIZE", meta)
        return Found(levels=build_levels(base, width, height, tile, query), title=name_from_url(base))

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """`{base}/TileGroup{g}/{z}-{col}-{row}.jpg[?query]`, g = (tiles of smaller tiers + index) // 256."""
        p = level.params
        index = p["tiles_before"] + col + row * level.cols
        url = f"{p['base']}/TileGroup{index // TILES_PER_GROUP}/{p['level']}-{col}-{row}.jpg"
        return append_query(url, p.get("query", ""))


def build_levels(base: str, width: int, height: int, tile: int, query: str = "") -> list[Level]:
    """One Level per tier, largest first, each knowing how many tiles come before it."""
    smallest_first = list(reversed(tiers(width, height, tile)))
    levels: list[Level] = []
    before = 0
    for z, (w, h) in enumerate(smallest_first):
        levels.append(Level(
            width=w, height=h, tile_width=tile, tile_height=tile, format="jpg",
            name=f"tier {z} ({w} x {h})",
            params={"base": base, "level": z, "tiles_before": before, "query": query},
        ))
        before += ceil_div(w, tile) * ceil_div(h, tile)
    levels.reverse()
    return levels
