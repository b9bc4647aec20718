"""Test helpers for stitch/encode: synthetic images cut into tiles in a tile cache, plus tiles.json."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from dezoom_steps.cache import cache_key, store
from dezoom_steps.jsonio import write_step_json
from dezoom_steps.model import Level, TileRef


def synthetic(width: int, height: int, seed: int = 0, noise: int = 0) -> np.ndarray:
    """A (height, width, 3) uint8 test picture: gradients, stripes and a few blocks (+ optional noise)."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255) // max(1, width - 1), (y * 255) // max(1, height - 1),
                    ((x // 7 + y // 5) * 37) % 256], axis=-1).astype(np.int32)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        img[y0:y0 + height // 4 + 1, x0:x0 + width // 4 + 1] = rng.integers(0, 256, 3)
    if noise:
        img += rng.integers(-noise, noise + 1, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def smooth(width: int, height: int) -> np.ndarray:
    """A smooth picture (for lossy codecs): gradients and a low-frequency wave."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack([40 + 180 * x / max(1, width), 60 + 150 * y / max(1, height),
                    128 + 90 * np.sin((x + 2 * y) / 40.0)], axis=-1)
    return img.round().clip(0, 255).astype(np.uint8)


def grid_tiles(level: Level, url: Callable[[Level, int, int], str]) -> list[dict]:
    """tiles.json records of a regular grid: cells partition the canvas; with overlap O, a tile
    not in the first column (row) starts O pixels before its cell (DeepZoom), so crop_x (crop_y) = O."""
    tiles = []
    for row in range(level.rows):
        for col in range(level.cols):
            x, y = col * level.tile_width, row * level.tile_height
            ref = TileRef(index=len(tiles), col=col, row=row, url=url(level, col, row), x=x, y=y,
                          w=min(level.tile_width, level.width - x), h=min(level.tile_height, level.height - y),
                          crop_x=level.overlap if col else 0, crop_y=level.overlap if row else 0)
            tiles.append(dict(ref.to_json(), key=cache_key(ref.url)))
    return tiles


def encode_tile(pixels: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """Image file bytes of a (h, w, 3) array."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **options)
    return buf.getvalue()


@dataclass
class TileSet:
    """A tile set on disk: tiles.json, the cache folder and the tile records written in it."""

    tiles_json: Path
    cache: Path
    tiles: list[dict]
    input_url: str


def make_tileset(
    tmp: Path, src: np.ndarray, tile: int | tuple[int, int] = 64, overlap: int = 0, fmt: str = "PNG",
    skip: set[int] = frozenset(), transform: Callable[[int, np.ndarray], bytes] | None = None,
    **options,
) -> TileSet:
    """Cut `src` into DeepZoom-style tiles (tiles carry `overlap` pixels on each inner side) in a cache.

    Tiles whose index is in `skip` are not stored; `transform(index, pixels)` may replace a tile's bytes.
    """
    height, width = src.shape[:2]
    tw, th = (tile, tile) if isinstance(tile, int) else tile
    level = Level(width=width, height=height, tile_width=tw, tile_height=th, overlap=overlap, format=fmt.lower())
    base = (tmp / "input").resolve()
    input_url = f"file://{base}/image.dzi"
    cache = tmp / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    tiles = grid_tiles(level, lambda lv, c, r: f"file://{base}/image_files/0/{c}_{r}.{fmt.lower()}")
    for t in tiles:
        x0, y0 = t["x"] - t["crop_x"], t["y"] - t["crop_y"]
        x1, y1 = min(width, t["x"] + t["w"] + overlap), min(height, t["y"] + t["h"] + overlap)
        pixels = np.ascontiguousarray(src[y0:y1, x0:x1])
        if t["index"] in skip:
            continue
        data = transform(t["index"], pixels) if transform else None
        store(cache, t["key"], data if data is not None else encode_tile(pixels, fmt, **options))
    tiles_json = tmp / "tiles.json"
    write_tiles_json(tiles_json, level, tiles, input_url)
    return TileSet(tiles_json, cache, tiles, input_url)


def write_tiles_json(path: Path, level: Level, tiles: list[dict], input_url: str,
                     title: str | None = "test image") -> None:
    """Write a valid tiles.json for `tiles` of `level`."""
    write_step_json(path, "tiles", {
        "image": "test", "input_url": input_url, "dezoomer": "deepzoom", "title": title, "headers": {},
        "selection": {"rule": "largest", "level_index": 0}, "level": level.to_json(),
        "canvas": {"width": level.width, "height": level.height},
        "estimates": {"tiles": len(tiles), "pixels": level.width * level.height, "raw_bytes": 0},
        "tiles": tiles,
    })


def read_canvas(path: Path) -> np.ndarray:
    """The whole canvas as an array (tests only: small images)."""
    from dezoom_steps.canvas import open_canvas

    with open_canvas(path) as cv:
        return cv.read_rows(0, cv.height).copy()
