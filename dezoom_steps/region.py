"""`--region x,y,w,h`: a rectangle of the chosen level, and the tiles that cover it (pure).

A region is four comma-separated numbers. When all four are written with a decimal point and
lie in [0, 1] they are fractions of the chosen level's width and height (`0.25,0.25,0.5,0.5`
is the middle quarter); when all four are whole numbers they are pixels of that level. Mixing
the two is refused, so that `0,0,1,1` (one pixel) never silently means the whole image.
A region reaching past the level's right or bottom edge is clipped to it; a region that starts
outside the level, or is empty, is an error.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from dezoom_steps.errors import InputError

log = logging.getLogger(__name__)

_WHOLE = re.compile(r"^\d+$")
_DECIMAL = re.compile(r"^\d*\.\d*$")


@dataclass(frozen=True)
class RegionSpec:
    """A parsed `--region`: four numbers, and whether they are fractions of the level."""

    text: str
    values: tuple[float, float, float, float]
    fractions: bool


@dataclass(frozen=True)
class Region:
    """A rectangle in pixels of the chosen level: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def to_json(self) -> dict[str, int]:
        """JSON form (as recorded in tiles.json and the sidecar)."""
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


def parse_region(text: str) -> RegionSpec:
    """Parse `x,y,w,h` (pixels, or fractions of the level when all four have a decimal point)."""
    parts = [p.strip() for p in str(text).split(",")]
    where = f"region {text!r}"
    if len(parts) != 4 or not all(parts):
        raise InputError(f"{where}: expected four numbers x,y,w,h (pixels, or fractions such as 0.25,0.25,0.5,0.5)")
    if all(_WHOLE.match(p) for p in parts):
        values = tuple(float(int(p)) for p in parts)
        fractions = False
    elif all(_DECIMAL.match(p) and p != "." for p in parts):
        values = tuple(float(p) for p in parts)
        if any(v > 1 for v in values):
            raise InputError(f"{where}: fractions must lie between 0 and 1 (for pixels, write whole numbers)")
        fractions = True
    else:
        raise InputError(f"{where}: give four whole numbers (pixels) or four fractions written with a "
                         "decimal point (e.g. 0.0,0.5,1.0,0.5); negative numbers are not allowed")
    return RegionSpec(str(text), values, fractions)  # type: ignore[arg-type]


def _edge(fraction: float, size: int) -> int:
    """A fraction of `size` rounded to the nearest pixel (halves up), so adjacent regions share edges."""
    return math.floor(fraction * size + 0.5)


def resolve_region(spec: RegionSpec, width: int, height: int, source: str = "") -> Region:
    """The region in pixels of a `width` x `height` level, clipped to it; InputError when outside or empty."""
    where = f"{source}: " if source else ""
    if spec.fractions:
        fx, fy, fw, fh = spec.values
        x0, y0 = _edge(fx, width), _edge(fy, height)
        x1, y1 = _edge(fx + fw, width), _edge(fy + fh, height)
    else:
        x0, y0, w, h = (int(v) for v in spec.values)
        x1, y1 = x0 + w, y0 + h
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"{where}region {spec.text} is empty on the chosen {width}x{height} level")
    if x0 >= width or y0 >= height:
        raise InputError(f"{where}region {spec.text} starts at ({x0}, {y0}), outside the chosen "
                         f"{width}x{height} level")
    if x1 > width or y1 > height:
        log.warning("region %s reaches past the %dx%d level; clipped to it", spec.text, width, height)
    return Region(x0, y0, min(x1, width) - x0, min(y1, height) - y0)


def crop_cell(tile: dict[str, Any], region: Region) -> dict[str, Any] | None:
    """`tile` with its canvas cell made relative to `region` and cut to it; None when they do not meet.

    The cell keeps its place inside the decoded tile: when the region cuts off the cell's first
    columns or rows, `crop_x`/`crop_y` move forward by as many pixels.
    """
    x0, y0 = max(tile["x"], region.x), max(tile["y"], region.y)
    x1 = min(tile["x"] + tile["w"], region.x + region.w)
    y1 = min(tile["y"] + tile["h"], region.y + region.h)
    if x1 <= x0 or y1 <= y0:
        return None
    return {**tile, "x": x0 - region.x, "y": y0 - region.y, "w": x1 - x0, "h": y1 - y0,
            "crop_x": tile["crop_x"] + (x0 - tile["x"]), "crop_y": tile["crop_y"] + (y0 - tile["y"])}


def crop_tiles(tiles: Iterable[dict[str, Any]], region: Region) -> list[dict[str, Any]]:
    """The tiles whose cells meet `region`, each with its cell relative to the region (order kept)."""
    out = []
    for t in tiles:
        cut = crop_cell(t, region)
        if cut is not None:
            out.append(cut)
    return out
