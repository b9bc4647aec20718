"""The dezoomer interface: pure format readers driven by the resolve loop.

A dezoomer never touches the network. `resolve(url, docs, options)` reads the documents it
needs from `docs` (a store filled by the driver); when one is missing, `docs.get` raises
`NeedsData(url)` and the driver fetches it and calls again. A dezoomer that cannot handle
the input raises `WrongDezoomer(reason)`; one that recognises its format in broken content
raises `MalformedMetadata`.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Iterator, Mapping

from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer
from dezoom_steps.model import Found, Level, TileRef


class FetchFailure:
    """A document the driver tried to fetch but could not (kept so dezoomers can report it)."""

    def __init__(self, message: str):
        self.message = message


class Documents:
    """The store of fetched documents handed to dezoomers: url -> bytes or FetchFailure."""

    def __init__(self, items: Mapping[str, bytes | FetchFailure] | None = None):
        self._items: dict[str, bytes | FetchFailure] = dict(items or {})

    def get(self, url: str) -> bytes:
        """The bytes of `url`; raises NeedsData if not fetched yet, WrongDezoomer if fetching failed."""
        item = self._items.get(url)
        if item is None:
            raise NeedsData(url)
        if isinstance(item, FetchFailure):
            raise WrongDezoomer(f"unable to download {url}: {item.message}", unavailable=url)
        return item

    def put(self, url: str, data: bytes | FetchFailure) -> None:
        """Record a fetched document (or the failure to fetch it)."""
        self._items[url] = data

    def failure(self, url: str) -> str | None:
        """The error of a failed download of `url`, or None (not tried, or fetched)."""
        item = self._items.get(url)
        return item.message if isinstance(item, FetchFailure) else None

    def __contains__(self, url: object) -> bool:
        return url in self._items

    def urls(self) -> list[str]:
        """Every URL in the store, in insertion order."""
        return list(self._items)


class Dezoomer:
    """Base class of every format reader; subclasses set the class attributes and `resolve`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    url_hint: ClassVar[str] = r"(?!)"
    examples: ClassVar[tuple[str, ...]] = ()
    auto: ClassVar[bool] = True
    # Rounds of downloads this reader may need in the metadata loop; None = the driver's
    # default (auto.MAX_ROUNDS). Readers that probe tiles one by one (generic) need more.
    max_rounds: ClassVar[int | None] = None

    def hinted(self, url: str) -> bool:
        """True when `url` looks strongly like this format (tried first in auto mode)."""
        return re.search(self.url_hint, url) is not None

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read the levels of the image at `url` from `docs` (pure)."""
        raise NotImplementedError

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """URL of the tile at (col, row) of `level` (grid formats)."""
        raise NotImplementedError

    def tiles(self, level: Level) -> Iterator[TileRef]:
        """Every tile of `level`, row by row; cells partition the canvas exactly once."""
        return grid_tiles(level, self.tile_url)

    def tiles_in(self, level: Level, x: int, y: int, w: int, h: int) -> Iterator[TileRef]:
        """The tiles of `level` whose cells may meet the rectangle (x, y, w, h), row by row.

        Grid formats list only the rows and columns meeting it, so a small region of a huge level
        costs what the region costs; other formats filter their whole listing.
        """
        if type(self).tiles is Dezoomer.tiles:
            tw, th = level.tile_width, level.tile_height
            cols = range(x // tw, min(level.cols, -(-(x + w) // tw)))
            rows = range(y // th, min(level.rows, -(-(y + h) // th)))
            return grid_tiles(level, self.tile_url, cols, rows)
        return self.tiles(level)

    def decode_tile(self, data: bytes, tile: TileRef) -> bytes:
        """Turn the downloaded bytes into an image file's bytes (identity for most formats)."""
        return data


def grid_tiles(level: Level, tile_url, cols: range | None = None, rows: range | None = None) -> Iterator[TileRef]:
    """Tiles of a regular grid, row by row, with overlap cropped so that cells do not overlap.

    A tile at column c starts `overlap` pixels left of its cell when c > 0 (DeepZoom's
    "tiles carry the overlap pixels"), so the cell begins at `crop_x = overlap` inside it.
    `cols`/`rows` restrict the listing (a region); a tile's index is its place in the whole grid.
    """
    tw, th, o = level.tile_width, level.tile_height, level.overlap
    all_cols = level.cols
    for row in rows if rows is not None else range(level.rows):
        y = row * th
        h = min(th, level.height - y)
        for col in cols if cols is not None else range(all_cols):
            x = col * tw
            w = min(tw, level.width - x)
            yield TileRef(
                index=row * all_cols + col, col=col, row=row, url=tile_url(level, col, row),
                x=x, y=y, w=w, h=h, crop_x=o if col > 0 else 0, crop_y=o if row > 0 else 0,
            )


def positive_int(value: Any, what: str, source: str) -> int:
    """`value` as an int > 0, or MalformedMetadata naming `what` and the `source` URL."""
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        raise MalformedMetadata(f"{source}: {what} is not a whole number: {value!r}") from None
    if n <= 0:
        raise MalformedMetadata(f"{source}: {what} must be positive, got {n}")
    return n
