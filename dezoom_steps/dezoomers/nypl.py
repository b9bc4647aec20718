"""New York Public Library digital collections: item page -> image id -> config.js -> tiles (spec §4.10).

* `https://digitalcollections.nypl.org/items/<id>`: the id is read from the URL (hex digits
  and dashes); the metadata is `https://access.nypl.org/image.php/<id>/tiles/config.js`.
* `https://access.nypl.org/image.php/<id>/...`: the id is the path segment after `image.php/`.
* config.js is JSON, `{"configs": {"0": {"size": {"width", "height"}, "tile_size" (or
  "tilesize"), "format", "overlap"}, "90": ...}}`; only the unrotated `"0"` is used. Numbers
  may be strings. An empty config means the image is not tiled.
* Levels l = 0..L with L = bit_length(max(w, h)); level l is (w, h) // 2^(L-l) (rounded down).
  Tiles are `.../tiles/0/<l>/<col>_<row>.<format>` and carry `overlap` pixels on every side
  that has a neighbour, as in DeepZoom.

Levels are listed largest first (index 0 = full resolution).

Where this differs from dezoomify-rs on purpose:
- Levels of zero width or height are left out (they have no tiles).
- The id of an access.nypl.org URL is its first path segment after `image.php/`, so a tile URL
  works as input too (dezoomify-rs deletes a fixed prefix and suffix).
- A config.js with text around the JSON object (`var config = {...};`) is read too.
- The same URL shapes on a loopback host are accepted (see `loopback.py`): an item URL there
  reads `<origin>/image.php/<id>/tiles/config.js` from the same server.
- The title is the image id (dezoomify-rs gives none).
"""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import urlsplit

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.loopback import is_loopback, origin
from dezoom_steps.dezoomers.support import load_json, whole_number
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.model import Found, Level

ACCESS = "https://access.nypl.org/image.php/"
# Spec §4.10: "https://digitalcollections.nypl.org/items/([a-f0-9\-]+)"; http is accepted too.
_SITE_ITEM = re.compile(r"https?://digitalcollections\.nypl\.org/items/", re.IGNORECASE)
_SITE_ACCESS = re.compile(r"https?://access\.nypl\.org/image\.php/", re.IGNORECASE)
_ITEM_ID = re.compile(r"([a-f0-9\-]+)")
_ACCESS_ID = re.compile(r"([^/?#]+)")
_FORMAT = re.compile(r"^[A-Za-z0-9]{1,10}$")
NOT_TILED = ("No metadata found. This image is probably not tiled, and you can download it directly "
             "by right-clicking on it from your browser without any external tool.")


def config_url(url: str) -> str | None:
    """The config.js URL behind an item or access URL (or a loopback copy of one); None for other URLs."""
    path = urlsplit(url).path if is_loopback(url) else ""
    item = _SITE_ITEM.match(url)
    if item or path.startswith("/items/"):
        m = _ITEM_ID.match(url, item.end() if item else url.index("/items/") + len("/items/"))
        if m is None or not m.group(1).strip("-"):
            raise MalformedMetadata(f'Unable to extract an image id from "{url}"')
        access = ACCESS if item else origin(url) + "/image.php/"
        return f"{access}{m.group(1)}/tiles/config.js"
    access = _SITE_ACCESS.search(url)
    if access or path.startswith("/image.php/"):
        start = access.end() if access else url.index("/image.php/") + len("/image.php/")
        m = _ACCESS_ID.match(url, start)
        if m is None:
            raise MalformedMetadata(f'Unable to extract an image id from "{url}"')
        return f"{ACCESS if access else origin(url) + '/image.php/'}{m.group(1)}/tiles/config.js"
    return None


def read_config(meta: str, data: bytes) -> dict[str, Any]:
    """The `configs["0"]` object of config.js; MalformedMetadata when absent or not JSON."""
    text = data.strip()
    if not text:
        raise MalformedMetadata(f"{meta}: {NOT_TILED}")
    start, end = text.find(b"{"), text.rfind(b"}")
    try:
        doc = load_json(text[start:end + 1] if 0 <= start < end else text)
    except ValueError as exc:
        raise MalformedMetadata(f"{meta}: unable to read config.js: {exc}") from None
    configs = doc.get("configs") if isinstance(doc, dict) else None
    config = configs.get("0") if isinstance(configs, dict) else None
    if not isinstance(config, dict):
        raise MalformedMetadata(f"{meta}: {NOT_TILED}")
    return config


class NYPL(Dezoomer):
    """NYPL digital collections items (access.nypl.org tiles/config.js, DeepZoom-like tiles)."""

    name = "nypl"
    summary = "NYPL digital collections: item URL, image.php/<id>/tiles/config.js, DeepZoom-like tiles"
    url_hint = r"(?i)digitalcollections\.nypl\.org/items/|access\.nypl\.org/image\.php/"
    examples = (
        "https://digitalcollections.nypl.org/items/5e66b3e8-d0b3-d471-e040-e00a180654d7",
        "https://access.nypl.org/image.php/5e66b3e8-d0b3-d471-e040-e00a180654d7/tiles/config.js",
    )
    auto = True

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read config.js and list every level of nonzero size, largest first."""
        meta = config_url(url)
        if meta is None:
            raise WrongDezoomer("not an NYPL item or image URL (digitalcollections.nypl.org/items/<id>)")
        config = read_config(meta, docs.get(meta))
        size = config.get("size") if isinstance(config.get("size"), dict) else {}
        width = whole_number(size.get("width"), "size.width", meta)
        height = whole_number(size.get("height"), "size.height", meta)
        tile = whole_number(config.get("tile_size", config.get("tilesize")), "tile_size", meta)
        overlap = whole_number(config.get("overlap", 0), "overlap", meta, minimum=0)
        fmt = str(config.get("format") or "").strip()
        if not _FORMAT.match(fmt):
            raise MalformedMetadata(f"{meta}: format must name the tile file extension, got {fmt!r}")
        base = meta[: -len("/config.js")]
        image_id = base.rsplit("/", 2)[-2]  # .../image.php/<id>/tiles
        return Found(levels=build_levels(base, width, height, tile, overlap, fmt), title=image_id)

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """`{base}/0/{level}/{col}_{row}.{format}` (base = the folder of config.js)."""
        return f"{level.params['base']}/0/{level.params['level']}/{col}_{row}.{level.format}"


def build_levels(base: str, width: int, height: int, tile: int, overlap: int, fmt: str) -> list[Level]:
    """Levels L..0 (largest first) with size (w, h) // 2^(L-l); zero-sized levels are left out."""
    top = max(width, height).bit_length()
    levels = []
    for number in range(top, -1, -1):
        w, h = width >> (top - number), height >> (top - number)
        if w and h:
            levels.append(Level(width=w, height=h, tile_width=tile, tile_height=tile, overlap=overlap,
                                format=fmt, name=f"level {number} ({w} x {h})",
                                params={"base": base, "level": number}))
    return levels
