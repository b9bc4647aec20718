"""`.iiif` output: a IIIF Image API 3.0 level-0 static tile tree, its info.json and an offline viewer.

Image API 3.0 §2.1: an image request is `{base}/{region}/{size}/{rotation}/{quality}.{format}`,
and "Both convey the request's information in the path segments of the URI [...] It also
permits a minimal implementation using pre-computed files in a matching directory structure."
So every tile is a file at `{region}/{size}/0/default.{jpg|png}` under the folder, with:

- region and size as the 3.0 implementation notes §3 compute them for tile (n, m) at scale
  factor s: region `x,y,w,h` = `n*tw*s, m*th*s, min(tw*s, width-x), min(th*s, height-y)`,
  size `w,h` = `ceil(region w / s), ceil(region h / s)` (what OpenSeadragon requests);
- region `full` when a tile covers the whole image (§4.8 canonical form: "`full` if the full
  image is requested"), and size `max` when that is also the full size ("`max` if the maximum
  size without upscaling is requested"); such a file is also written under its `w,h` name.

Compliance 3.0 §3.2: `max` is required at level 0, and "The full image will be available at
the `max` size, which might be less than the `width` and `height`" (with `maxWidth` /
`maxHeight`, §5.2). `full/max` is therefore the largest pyramid level that is at most two tiles
a side, and info.json declares that limit when it is not the full image. `sizes` (§5.3) lists
the sizes written as `full/{w},{h}`; `tiles` (§5.4) gives the tile size and scale factors.

The `id` of info.json must be the absolute base URI where the folder is published (§5.2), which
a folder on disk cannot know: give it with `base_url` (the folder's name is appended), else
`id` is `.`, a relative reference that resolves to the folder itself from info.json and from
`viewer.html`.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from dezoom_steps.canvas import Canvas
from dezoom_steps.encoders.pyramid import level_sizes, reductions_to
from dezoom_steps.encoders.tiletree import TileCodec, TreeLayout, write_tree

TILE = 512  # tile side: 4 times fewer files than 256, and still small requests
CONTEXT = "http://iiif.io/api/image/3/context.json"
PROTOCOL = "http://iiif.io/api/image"
VIEWER = "viewer.html"
INFO = "info.json"


def region_and_size(width: int, height: int, tile: int, scale: int, col: int, row: int) -> tuple[str, int, int]:
    """The region parameter and the size (w, h) of tile (col, row) at scale factor `scale`.

    Image API 3.0 implementation notes §3 ("Tile region parameter calculation").
    """
    xr, yr = col * tile * scale, row * tile * scale
    wr, hr = min(tile * scale, width - xr), min(tile * scale, height - yr)
    ws, hs = -(-wr // scale), -(-hr // scale)
    region = "full" if (xr, yr, wr, hr) == (0, 0, width, height) else f"{xr},{yr},{wr},{hr}"
    return region, ws, hs


def image_paths(region: str, w: int, h: int, full: tuple[int, int], ext: str) -> list[str]:
    """The file names of an image request: `{region}/{w},{h}/0/default.{ext}`, plus `full/max/...`
    when it is the full image at full size (its canonical name)."""
    paths = [f"{region}/{w},{h}/0/default.{ext}"]
    if region == "full" and (w, h) == full:
        paths.insert(0, f"full/max/0/default.{ext}")
    return paths


class IIIFLayout:
    """The level-0 tree of a `width` x `height` image: scale factors, sizes, and every file name."""

    def __init__(self, width: int, height: int, tile: int = TILE):
        self.width, self.height, self.tile = width, height, tile
        self.levels = reductions_to(width, height, tile)  # the last level is one tile
        self.sizes = level_sizes(width, height, self.levels)
        # full/max: the largest level at most two tiles a side (level 0 for small images)
        self.max_level = max(0, self.levels - 1)

    def scale(self, level: int) -> int:
        """The scale factor of a level."""
        return 1 << level

    def tree(self, ext: str) -> TreeLayout:
        """The tile writer's layout for tiles with extension `ext`."""
        full = (self.width, self.height)

        def tile_paths(level: int, col: int, row: int) -> list[str]:
            region, w, h = region_and_size(self.width, self.height, self.tile, self.scale(level), col, row)
            return image_paths(region, w, h, full, ext)

        def whole_paths(level: int) -> list[str]:
            if level != self.max_level or level == self.levels:  # the one-tile level has its tile
                return []
            w, h = self.sizes[level]
            paths = image_paths("full", w, h, full, ext)
            return paths if level == 0 else [f"full/max/0/default.{ext}", *paths]

        return TreeLayout(self.tile, 0, self.levels, tile_paths, whole_paths)

    def info(self, ext: str, base_id: str) -> dict:
        """The info.json document (Image API 3.0 §5)."""
        doc: dict = {"@context": CONTEXT, "id": base_id, "type": "ImageService3", "protocol": PROTOCOL,
                     "profile": "level0", "width": self.width, "height": self.height}
        if self.max_level > 0:
            mw, mh = self.sizes[self.max_level]
            # the larger side of the max level is over one tile, so this box gives back exactly
            # that level with the §4 "maximum size calculation", and every tile fits in it
            doc["maxWidth"], doc["maxHeight"] = max(mw, self.tile), max(mh, self.tile)
        doc["sizes"] = [{"width": w, "height": h} for w, h in reversed(self.sizes[self.max_level:])]
        doc["tiles"] = [{"width": self.tile, "height": self.tile,
                         "scaleFactors": [self.scale(k) for k in range(self.levels + 1)]}]
        if ext != "jpg":
            doc["preferredFormats"] = [ext]  # level 0 only requires jpg: say that tiles are png
            doc["extraFormats"] = [ext]
        return doc


def base_id(base_url: str | None, name: str) -> str:
    """The info.json `id`: `base_url/name` (name percent-encoded), or `.` when unknown."""
    if not base_url:
        return "."
    return base_url.rstrip("/") + "/" + quote(name, safe="")


def info_bytes(doc: dict) -> bytes:
    """info.json as written: indented, keys in spec order, UTF-8, final newline."""
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def viewer_html(doc: dict, title: str | None) -> bytes:
    """viewer.html: the project's viewer template with this image's info.json embedded.

    Browsers refuse fetch() of file: URLs, so the document travels inside the page (as JSON in a
    non-executed script element, `<`, `>` and `&` escaped so that no text can close it).
    """
    template = resources.files("dezoom_steps.encoders").joinpath("viewer.html").read_text("utf-8")
    data = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    data = data.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
    page = template.replace("{{TITLE}}", html.escape(title or "Zoomable image", quote=True))
    return page.replace("{{INFO_JSON}}", data).encode("utf-8")


def write_iiif(canvas: Canvas, root: Path, name: str, codec: TileCodec, *, title: str | None = None,
               base_url: str | None = None, threads: int = 2) -> None:
    """Write the tile tree, info.json and viewer.html of `canvas` into the empty folder `root`.

    `name` is the published folder's name (for the `id` with `base_url`).
    """
    layout = IIIFLayout(canvas.width, canvas.height)
    write_tree(canvas, root, layout.tree(codec.ext), codec, threads=threads)
    doc = layout.info(codec.ext, base_id(base_url, name))
    (root / INFO).write_bytes(info_bytes(doc))
    (root / VIEWER).write_bytes(viewer_html(doc, title))
