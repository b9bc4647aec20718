"""Step 2, list_tiles (pure): choose a level and list every tile -> tiles.json.

Everything that can be known before downloading is checked here, so impossible outputs
are refused before a single tile is fetched: declared sizes that are not positive whole
numbers, the tile budget (counted from the grid, before any tile is listed), the pixel
budget, and the output format's size limits when the output path is known (field notes S4). With a region (`--region`, see
dezoom_steps/region.py) only the tiles meeting it are listed, their cells are made relative
to it, and the canvas is the region: budgets and format limits apply to the region's size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dezoom_steps.cache import cache_key
from dezoom_steps.dezoomers import by_name
from dezoom_steps.errors import InputError, MalformedMetadata, OutputError
from dezoom_steps.jsonio import read_step_json, write_step_json
from dezoom_steps.model import Level
from dezoom_steps.region import Region, crop_cell, parse_region, resolve_region
from dezoom_steps.urls import is_http

log = logging.getLogger(__name__)

DEFAULT_PIXEL_BUDGET = 10_000_000_000  # 10 gigapixels: 30 GB of raw RGB
# Field notes S4: "a 1-line info.json can claim 10^9 tiles". 500,000 tiles of 256 px are
# 32 gigapixels (above the largest images seen in the wild, 44.8 GP with 512 px tiles).
DEFAULT_TILE_BUDGET = 500_000
MAX_OVERLAP = 8192  # half of field notes S5's 16k px tile side: more is no tile overlap but an attack
_LEVEL_SIZES = ("width", "height", "tile_width", "tile_height")


@dataclass(frozen=True)
class Selection:
    """How to pick the level: dezoomify-rs's flags. With none given, the largest level wins."""

    largest: bool = False
    max_width: int | None = None
    max_height: int | None = None
    zoom_level: int | None = None
    image_index: int | None = None


def choose_image(levels: list[Level], image_index: int | None) -> tuple[str, list[Level]]:
    """The levels of one image (group) of the input: `image_index` (clamped), else the first."""
    groups: list[str] = []
    for lv in levels:
        if lv.group not in groups:
            groups.append(lv.group)
    i = 0
    if image_index is not None:
        if image_index >= len(groups):
            log.warning("image index %d not available; using the last one (%d)", image_index, len(groups) - 1)
        i = min(max(image_index, 0), len(groups) - 1)
    return groups[i], [lv for lv in levels if lv.group == groups[i]]


def choose_level(levels: list[Level], sel: Selection) -> tuple[Level, str]:
    """Pick a level and say which rule picked it.

    `--zoom-level N` counts from the smallest level (0) whatever order the format lists them in;
    an index past the end takes the largest. `--max-width/--max-height` keep levels that fit
    (`<=`) and take the largest of those; otherwise (and with `--largest`) the largest wins.
    """
    by_area = sorted(levels, key=lambda lv: (lv.width * lv.height, lv.width))
    if sel.zoom_level is not None:
        if sel.zoom_level >= len(by_area):
            log.warning("zoom level %d not available; using the largest (%d)", sel.zoom_level, len(by_area) - 1)
        return by_area[min(max(sel.zoom_level, 0), len(by_area) - 1)], f"zoom-level {sel.zoom_level}"
    if not sel.largest and (sel.max_width or sel.max_height):
        fitting = [lv for lv in by_area
                   if (sel.max_width is None or lv.width <= sel.max_width)
                   and (sel.max_height is None or lv.height <= sel.max_height)]
        if not fitting:
            smallest = by_area[0]
            raise InputError(
                f"no zoom level fits within {sel.max_width or 'any'}x{sel.max_height or 'any'} px "
                f"(the smallest is {smallest.width}x{smallest.height})")
        return fitting[-1], f"largest within {sel.max_width or 'any'}x{sel.max_height or 'any'}"
    return by_area[-1], "largest"


def check_level(level: Level, url: str) -> None:
    """MalformedMetadata naming `url` unless the level's sizes are positive whole numbers (overlap >= 0)."""
    for attr in _LEVEL_SIZES:
        value = getattr(level, attr)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise MalformedMetadata(f"{url}: the level's {attr.replace('_', ' ')} must be a positive "
                                    f"whole number, got {value!r}")
    overlap = level.overlap
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap <= MAX_OVERLAP:
        raise MalformedMetadata(f"{url}: the level's overlap must be a whole number from 0 to {MAX_OVERLAP}, "
                                f"got {overlap!r}")


def grid_tile_count(level: Level, rect: Region) -> int:
    """How many cells of the level's tile grid meet `rect` (computed, nothing listed)."""
    tw, th = level.tile_width, level.tile_height
    cols = -(-(rect.x + rect.w) // tw) - rect.x // tw
    rows = -(-(rect.y + rect.h) // th) - rect.y // th
    return max(cols, 0) * max(rows, 0)


def _over_tile_budget(url: str, what: str, count: int | str, budget: int) -> OutputError:
    """The one-line refusal of a level with more tiles than `budget`."""
    return OutputError(
        f"{url}: the chosen {what} has {count} tiles, above the tile budget of {budget:,}; "
        "choose a smaller level (-w/-h/--zoom-level) or raise the budget (--tile-budget)")


def list_tiles(
    *,
    resolve_json: Path,
    output: Path | None,
    image: str,
    selection: Selection = Selection(),
    pixel_budget: int = DEFAULT_PIXEL_BUDGET,
    output_file: Path | None = None,
    region: str | None = None,
    tile_budget: int = DEFAULT_TILE_BUDGET,
) -> dict[str, Any]:
    """Choose a level from resolve.json, list its tiles, check budgets; write tiles.json.

    Parameters:
        resolve_json: the resolve step's file.
        output: where to write tiles.json (not written when None).
        image: the image id (names work/ and cache folders).
        selection: level choice.
        pixel_budget: refuse levels with more pixels than this.
        output_file: the final output path, when known, to check format limits early.
        region: `x,y,w,h` in pixels or fractions of the chosen level (None: the whole level).
        tile_budget: refuse levels (or regions) needing more tiles than this.
    """
    res = read_step_json(resolve_json, "resolve")
    levels = [Level.from_json(d) for d in res["levels"]]
    _group, candidates = choose_image(levels, selection.image_index)
    for lv in candidates:  # a level choice compares sizes: every candidate must have sane ones
        check_level(lv, res["input_url"])
    level, rule = choose_level(candidates, selection)
    index = levels.index(level)
    spec = parse_region(region) if region else None
    rect = (resolve_region(spec, level.width, level.height, res["input_url"]) if spec is not None
            else Region(0, 0, level.width, level.height))
    pixels = rect.w * rect.h
    if pixels > pixel_budget:
        what = f"region is {rect.w}x{rect.h}" if spec is not None else f"level is {level.width}x{level.height}"
        raise OutputError(
            f"{res['input_url']}: the chosen {what} = {pixels:,} pixels, "
            f"above the pixel budget of {pixel_budget:,}; choose a smaller level (-w/-h/--zoom-level) "
            "or raise the budget (--pixel-budget)")
    area = f"region {rect.w}x{rect.h}" if spec is not None else f"level {level.width}x{level.height}"
    estimate = grid_tile_count(level, rect)
    if estimate > tile_budget:
        raise _over_tile_budget(res["input_url"], f"{area} (tiles of {level.tile_width}x{level.tile_height})",
                                f"{estimate:,}", tile_budget)
    if output_file is not None:
        from dezoom_steps.encoders import check_output_feasible

        check_output_feasible(Path(output_file), rect.w, rect.h)
    dz = by_name(res["dezoomer"])
    tiles = []
    listing = dz.tiles(level) if spec is None else dz.tiles_in(level, rect.x, rect.y, rect.w, rect.h)
    for t in listing:
        cell = t.to_json() if spec is None else crop_cell(t.to_json(), rect)
        if cell is not None:
            cell["key"] = cache_key(t.url)  # a fresh dict either way: no copy
            tiles.append(cell)
            if len(tiles) > tile_budget:  # formats whose tiles are not a plain grid
                raise _over_tile_budget(res["input_url"], area, f"more than {tile_budget:,}", tile_budget)
    headers = dict(res["headers"])
    if is_http(res["input_url"]) and not any(k.lower() == "referer" for k in headers):
        headers["Referer"] = res["input_url"]
    chosen: dict[str, Any] = {"rule": rule, "level_index": index}
    if spec is not None:
        # the region in pixels of the chosen level, and as the user wrote it
        chosen["region"] = dict(rect.to_json(), requested=spec.text)
    doc = {
        "image": image,
        "input_url": res["input_url"],
        "dezoomer": res["dezoomer"],
        "title": res["title"],
        "headers": headers,
        "selection": chosen,
        "level": level.to_json(),
        "canvas": {"width": rect.w, "height": rect.h},
        "estimates": {"tiles": len(tiles), "pixels": pixels, "raw_bytes": pixels * 3},
        "tiles": tiles,
    }
    if output is not None:
        return write_step_json(output, "tiles", doc)
    return {"schema": "dezoom-steps/tiles/1", **doc}
