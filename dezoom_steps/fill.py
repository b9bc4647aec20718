"""Missing tiles: the `--on-missing` policies, and repairing holes from a lower zoom level.

`blank` (the default) leaves a missing tile's cell black and writes the image anyway (exit 6);
`fail` writes no image when a tile is missing (`TilesMissing`, exit 6; the tiles that arrived
stay in the cache, so a rerun fetches only the others); `fill` repairs holes as follows.

A missing tile leaves a hole: its canvas cell. The same part of the image exists, smaller, in
every lower level of the same image (the other levels of its group in resolve.json). For one
lower level the hole maps onto a rectangle of that level, scaled by the ratio of the two
levels' sizes; the lower level's tiles whose cells meet that rectangle are its sources. The
rectangle is assembled from them, then upscaled into the hole (Pillow, bicubic) with the exact
fractional box that maps onto the hole, so the filled pixels line up with their neighbours.

Planning is pure (geometry only); `render` decodes and resizes but does no I/O of its own.
The fetching of the sources is done by dezoom_steps/steps/fill_tiles.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from dezoom_steps.errors import DezoomError, PartialDownload
from dezoom_steps.model import Level

if TYPE_CHECKING:  # imported by `render`: the fetch step uses this module's checks, not its pixels
    import numpy as np

ON_MISSING = ("blank", "fail", "fill")  # --on-missing policies; blank is the default
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class TilesMissing(DezoomError):
    """`--on-missing fail`: some tiles are missing, so no image was written."""

    exit_code = PartialDownload.exit_code

    def __init__(self, where: str, missing: list[dict[str, Any]], total: int, cached: bool = True):
        self.missing, self.total = missing, total
        first = missing[0]
        why = f": {first['error']}" if first.get("error") else (f": {first['reason']}" if first.get("reason") else "")
        rerun = ("The tiles that arrived are kept in the tile cache: run again to fetch only the missing ones"
                 if cached else "Give a tile cache (-c DIR) to keep the tiles that arrived for a rerun")
        super().__init__(f"{where}: {len(missing)} of {total} tiles are missing (first: {first['url']}{why}); "
                         f"no image written (--on-missing fail). {rerun}")


def require_all(where: str, missing: list[dict[str, Any]], total: int, cached: bool = True) -> None:
    """Raise TilesMissing when `missing` (dicts with `url`, and `error` or `reason`) is not empty.

    `cached` says whether the tiles that arrived outlive this run (a tile cache was given).
    """
    if missing:
        raise TilesMissing(where, sorted(missing, key=lambda m: m.get("index", 0)), total, cached)


class FilledPartial(PartialDownload):
    """The image was written with some tiles missing, some or all of them filled from a lower level."""

    def __init__(self, path: str, missing: int, total: int, filled: int):
        super().__init__(path, missing, total)
        self.filled = filled
        black = missing - filled
        DezoomError.__init__(
            self, f"{path}: only {total - missing} tiles out of {total} could be downloaded; "
                  f"{filled} missing tiles were filled from a lower zoom level"
                  + (f", {black} left black" if black else "") + " (the sidecar lists the filled regions)")


@dataclass(frozen=True)
class FillPlan:
    """How to fill one hole: the canvas cell, the lower level used and the tiles to assemble.

    `area` (x, y, w, h) is a rectangle of the lower level assembled from `sources` (tile JSON
    with the lower level's cells); `box` (left, top, right, bottom, fractional) is the part of
    that area that maps exactly onto the hole.
    """

    index: int
    url: str
    cell: tuple[int, int, int, int]
    level_index: int
    level_size: tuple[int, int]
    area: tuple[int, int, int, int]
    box: tuple[float, float, float, float]
    sources: tuple[dict[str, Any], ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form (as stored in fill.json)."""
        return {"index": self.index, "url": self.url, "cell": list(self.cell), "level_index": self.level_index,
                "level_size": list(self.level_size), "area": list(self.area), "box": list(self.box),
                "sources": list(self.sources)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "FillPlan":
        """Inverse of `to_json`."""
        return cls(index=d["index"], url=d["url"], cell=tuple(d["cell"]), level_index=d["level_index"],
                   level_size=tuple(d["level_size"]), area=tuple(d["area"]), box=tuple(d["box"]),
                   sources=tuple(d["sources"]))


def lower_levels(levels: list[Level], chosen: int) -> list[int]:
    """Indices (in `levels`) of the smaller levels of the chosen level's image, largest first."""
    ref = levels[chosen]
    found = [i for i, lv in enumerate(levels)
             if lv.group == ref.group and lv.width * lv.height < ref.width * ref.height
             and lv.width <= ref.width and lv.height <= ref.height]
    return sorted(found, key=lambda i: (-(levels[i].width * levels[i].height), i))


class TileGrid:
    """The tiles of one level bucketed by the level's tile grid, to find those meeting a rectangle."""

    def __init__(self, level: Level, tiles: Iterable[dict[str, Any]]):
        self.tw, self.th = max(1, level.tile_width), max(1, level.tile_height)
        self.buckets: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for t in tiles:
            for key in self._keys(t["x"], t["y"], t["x"] + t["w"], t["y"] + t["h"]):
                self.buckets.setdefault(key, []).append(t)

    def _keys(self, x0: int, y0: int, x1: int, y1: int) -> Iterable[tuple[int, int]]:
        for r in range(y0 // self.th, (y1 - 1) // self.th + 1):
            for c in range(x0 // self.tw, (x1 - 1) // self.tw + 1):
                yield c, r

    def meeting(self, x0: int, y0: int, x1: int, y1: int) -> list[dict[str, Any]]:
        """Tiles whose cells meet [x0, x1) x [y0, y1), in row-major order, each once."""
        seen: dict[int, dict[str, Any]] = {}
        for key in self._keys(x0, y0, x1, y1):
            for t in self.buckets.get(key, ()):
                if t["x"] < x1 and t["x"] + t["w"] > x0 and t["y"] < y1 and t["y"] + t["h"] > y0:
                    seen[t["index"]] = t
        return sorted(seen.values(), key=lambda t: (t["y"], t["x"]))


def plan_hole(hole: dict[str, Any], offset: tuple[int, int], chosen: Level, lower: Level, lower_index: int,
              grid: TileGrid) -> FillPlan | None:
    """The plan filling `hole` (a tile of tiles.json) from `lower`; None when no lower tile covers it.

    `offset` is the region's origin on the chosen level ((0, 0) without --region): the hole's
    cell is relative to it.
    """
    sx, sy = lower.width / chosen.width, lower.height / chosen.height
    X0, Y0 = hole["x"] + offset[0], hole["y"] + offset[1]
    X1, Y1 = X0 + hole["w"], Y0 + hole["h"]
    fx0, fy0 = X0 * sx, Y0 * sy
    fx1, fy1 = min(X1 * sx, lower.width), min(Y1 * sy, lower.height)
    ax0, ay0 = min(math.floor(fx0), lower.width - 1), min(math.floor(fy0), lower.height - 1)
    ax1, ay1 = max(min(math.ceil(fx1), lower.width), ax0 + 1), max(min(math.ceil(fy1), lower.height), ay0 + 1)
    sources = grid.meeting(ax0, ay0, ax1, ay1)
    if not sources:
        return None
    box = (fx0 - ax0, fy0 - ay0, max(fx1, fx0 + 1e-6) - ax0, max(fy1, fy0 + 1e-6) - ay0)
    return FillPlan(index=hole["index"], url=hole["url"], cell=(hole["x"], hole["y"], hole["w"], hole["h"]),
                    level_index=lower_index, level_size=(lower.width, lower.height),
                    area=(ax0, ay0, ax1 - ax0, ay1 - ay0), box=box, sources=tuple(sources))


def plan_level(holes: list[dict[str, Any]], offset: tuple[int, int], chosen: Level, lower: Level,
               lower_index: int, lower_tiles: Iterable[dict[str, Any]]) -> tuple[list[FillPlan], list[dict[str, Any]]]:
    """Plans filling `holes` from one lower level, and the holes that level cannot cover."""
    grid = TileGrid(lower, lower_tiles)
    plans, uncovered = [], []
    for hole in holes:
        plan = plan_hole(hole, offset, chosen, lower, lower_index, grid)
        if plan is None:
            uncovered.append(hole)
        else:
            plans.append(plan)
    return plans, uncovered


def render(plan: FillPlan, read: Callable[[str], bytes | None], decode: Callable[[bytes], np.ndarray],
           channels: int) -> np.ndarray | None:
    """The hole's pixels, (h, w, channels) uint8, upscaled from the plan's sources; None if one is unusable.

    `read(key)` gives a cached tile's bytes (None when absent); `decode(bytes)` its pixels as
    (h, w, channels) uint8.
    """
    import numpy as np
    from PIL import Image

    ax, ay, aw, ah = plan.area
    area = np.zeros((ah, aw, channels), dtype=np.uint8)
    for s in plan.sources:
        data = read(s["key"])
        if data is None:
            return None
        try:
            pixels = decode(data)
        except Exception:  # an undecodable source: the hole stays as it is
            return None
        x0, y0 = max(s["x"], ax), max(s["y"], ay)
        x1, y1 = min(s["x"] + s["w"], ax + aw), min(s["y"] + s["h"], ay + ah)
        px, py = s["crop_x"] + x0 - s["x"], s["crop_y"] + y0 - s["y"]
        w = max(0, min(x1 - x0, pixels.shape[1] - px))
        h = max(0, min(y1 - y0, pixels.shape[0] - py))
        area[y0 - ay:y0 - ay + h, x0 - ax:x0 - ax + w] = pixels[py:py + h, px:px + w]
    mode = _MODES[channels]
    img = Image.fromarray(area[:, :, 0] if channels == 1 else area, mode)
    _, _, cw, ch = plan.cell
    out = np.asarray(img.resize((cw, ch), Image.Resampling.BICUBIC, box=plan.box))
    return out[:, :, None] if channels == 1 else out


def fill_into(plan: FillPlan, strip: np.ndarray, y0: int, read: Callable[[str], bytes | None],
              decode: Callable[[bytes], np.ndarray]) -> bool:
    """Paste the hole's upscaled pixels into `strip` (canvas rows from y0, full width); False if impossible."""
    patch = render(plan, read, decode, strip.shape[2])
    if patch is None:
        return False
    x, y, w, h = plan.cell
    w = max(0, min(w, strip.shape[1] - x))  # cells are clipped to the canvas, as stitch does
    h = max(0, min(h, strip.shape[0] - (y - y0)))
    strip[y - y0:y - y0 + h, x:x + w] = patch[:h, :w]
    return True


def filled_region(plan: FillPlan) -> dict[str, Any]:
    """The sidecar's record of one filled hole: its canvas rectangle and the level it came from."""
    x, y, w, h = plan.cell
    return {"x": x, "y": y, "w": w, "h": h, "from_level": plan.level_index,
            "from_size": list(plan.level_size), "index": plan.index}
