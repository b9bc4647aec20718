"""Frozen data records passed between the steps, with their JSON forms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Level:
    """One resolution of one image: size, tile grid and what the dezoomer needs to build tile URLs."""

    width: int
    height: int
    tile_width: int
    tile_height: int
    overlap: int = 0
    format: str = ""
    group: str = ""
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def cols(self) -> int:
        """Number of tile columns."""
        return -(-self.width // self.tile_width)

    @property
    def rows(self) -> int:
        """Number of tile rows."""
        return -(-self.height // self.tile_height)

    @property
    def tile_count(self) -> int:
        """Number of tiles of the level."""
        return self.cols * self.rows

    def to_json(self) -> dict[str, Any]:
        """JSON form (as stored in resolve.json)."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Level":
        """Inverse of `to_json`."""
        return cls(**d)


@dataclass(frozen=True)
class TileRef:
    """One tile: where to get it and which canvas cell it fills.

    The cell `(x, y, w, h)` is the part of the canvas this tile owns; the cells of a level
    cover the canvas exactly once. `(crop_x, crop_y)` is where that cell starts inside the
    decoded tile (non-zero when tiles carry overlap pixels, as DeepZoom tiles do).
    """

    index: int
    col: int
    row: int
    url: str
    x: int
    y: int
    w: int
    h: int
    crop_x: int = 0
    crop_y: int = 0
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form (as stored in tiles.json): the fields in order, as `dataclasses.asdict` gives them.

        Written out field by field: asdict deep-copies each value, 40 us a tile, a fifth of the
        time of listing a few thousand tiles.
        """
        return {"index": self.index, "col": self.col, "row": self.row, "url": self.url, "x": self.x,
                "y": self.y, "w": self.w, "h": self.h, "crop_x": self.crop_x, "crop_y": self.crop_y,
                "key": self.key}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TileRef":
        """Inverse of `to_json`."""
        return cls(**d)


@dataclass(frozen=True)
class Found:
    """What a dezoomer returns when it understood the input: levels, a title and tile headers."""

    levels: list[Level]
    title: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
