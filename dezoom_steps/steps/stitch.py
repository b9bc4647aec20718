"""Step `stitch`: decode the cached tiles and paste them onto the on-disk canvas, one row strip at a time.

Tiles are grouped into horizontal strips (the tiles of one cell row; overlapping rows of an
irregular layout are merged). One strip buffer of (strip height, canvas width, 3) bytes is
reused for every strip, so memory is bounded by a tile row, never by the image. Tiles of a
strip are decoded by a small thread pool (Pillow releases the GIL) straight into the buffer.
Missing or undecodable tiles stay black (transparent on an RGBA canvas) and are listed in
stitch.json. The canvas is built under a temporary name and renamed when complete.

The canvas has as many channels as the tiles need (grey, RGB or RGBA: tilemodes.py reads
every tile's header first), and the first ICC profile found in the tiles is kept in
stitch.json for the encoders.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import struct
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from dezoom_steps import tilemodes
from dezoom_steps.cache import read_cached, tile_path
from dezoom_steps.canvas import create_canvas
from dezoom_steps.errors import OutputError
from dezoom_steps.fill import FillPlan, fill_into, filled_region
from dezoom_steps.jsonio import read_step_json, write_step_json
from dezoom_steps.model import TileRef
from dezoom_steps.outmeta import icc_to_json
from dezoom_steps.tempfiles import temp_beside

try:  # optional: a faster JPEG decoder (a dependency of the project, but not required here)
    from imagecodecs import jpeg8_decode as _jpeg8_decode
except ImportError:  # pragma: no cover - depends on the environment
    _jpeg8_decode = None

TILE_MAX_SIDE = 16384  # a tile wider or taller than this is refused (decompression bomb)
TileHook = Callable[[bytes, TileRef], bytes]


@dataclass
class Placed:
    """The outcome of one tile: placed or not, why not, its decoded size, its ICC profile."""

    tile: dict[str, Any]
    ok: bool
    reason: str = ""
    got: tuple[int, int] | None = None
    icc: bytes | None = None


def _grey16(img: Image.Image) -> np.ndarray:
    """A 16-bit or float grey image as 8-bit (h, w): the high byte, clipped."""
    if img.mode == "F":
        return np.clip(np.asarray(img), 0, 255).astype(np.uint8)
    return (np.clip(np.asarray(img, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)


def to_channels(img: Image.Image, channels: int = 3) -> np.ndarray:
    """A decoded tile as (h, w, channels) uint8 for a grey (1), RGB (3) or RGBA (4) canvas.

    16-bit grey keeps its high byte; palette and CMYK become RGB; on an RGB or grey canvas
    alpha is composited on black (such a tile only meets such a canvas when its header lied).
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = Image.fromarray(_grey16(img), "L")
    has_alpha = img.mode in tilemodes.ALPHA_MODES or (img.mode in ("P", "L", "RGB") and "transparency" in img.info)
    if channels == 4:
        return np.asarray(img if img.mode == "RGBA" else img.convert("RGBA"))
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[:, :, 3:]
        rgb = ((rgba[:, :, :3] * alpha + 127) // 255).astype(np.uint8)
        img = Image.fromarray(rgb, "RGB")
    if channels == 1:
        return np.asarray(img if img.mode == "L" else img.convert("L"))[:, :, None]
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def _jpeg_fast(data: bytes, channels: int) -> np.ndarray | None:
    """A baseline or progressive grey/YCbCr JPEG decoded by imagecodecs (libjpeg-turbo, ~40 % faster
    than Pillow's path, no ICC profile read); None for anything else, which Pillow decodes."""
    if _jpeg8_decode is None or not data.startswith(b"\xff\xd8"):
        return None
    try:
        components, w, h, _ = tilemodes.jpeg_frame(data)
    except (ValueError, struct.error, tilemodes.NeedMore):
        return None
    if components not in (1, 3):
        return None
    if w > TILE_MAX_SIDE or h > TILE_MAX_SIDE:
        raise ValueError(f"tile of {w}x{h} pixels exceeds {TILE_MAX_SIDE} per side")
    pixels = _jpeg8_decode(data)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.dtype != np.uint8 or pixels.shape[2] != components:
        return None
    if components == channels:
        return pixels
    if channels == 1:  # a colour tile on a grey canvas: only when headers lied; Pillow's weights
        return None
    if components == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    if channels == 4:
        pixels = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    return pixels


def decode_image(data: bytes, channels: int = 3) -> tuple[np.ndarray, bytes | None]:
    """Decode image bytes (format sniffed from the content); returns (pixels, ICC profile or None)."""
    fast = _jpeg_fast(data, channels)
    if fast is not None:
        return fast, None  # the profile comes from Assembly.first_icc
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
        if w > TILE_MAX_SIDE or h > TILE_MAX_SIDE:
            raise ValueError(f"tile of {w}x{h} pixels exceeds {TILE_MAX_SIDE} per side")
        img.load()
        return to_channels(img, channels), img.info.get("icc_profile") or None


@contextlib.contextmanager
def tile_size_limits() -> Iterator[None]:
    """Let Pillow open tiles up to TILE_MAX_SIDE squared; a bigger one raises instead of warning.

    Pillow's decompression-bomb guard is process-wide (`Image.MAX_IMAGE_PIXELS`); it is set for
    the duration of the stitch and restored afterwards.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = TILE_MAX_SIDE * TILE_MAX_SIDE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def strips(tiles: list[dict[str, Any]], height: int) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
    """(y0, rows, tiles) of each horizontal band: tiles grouped by cell row, overlapping rows merged."""
    band: list[dict[str, Any]] = []
    y0 = y1 = 0
    for t in sorted(tiles, key=lambda t: (t["y"], t["x"])):
        if t["y"] >= height:
            continue
        if band and t["y"] >= y1:
            yield y0, y1 - y0, band
            band = []
        if not band:
            y0, y1 = t["y"], t["y"]
        band.append(t)
        y1 = max(y1, min(height, t["y"] + t["h"]))
    if band:
        yield y0, y1 - y0, band


class _Stitcher:
    """Decodes and pastes tiles into the reused strip buffer."""

    def __init__(self, cache_dir: Path, width: int, hook: TileHook | None, channels: int = 3):
        self.cache_dir, self.width, self.hook, self.channels = cache_dir, width, hook, channels
        self.fills: dict[int, FillPlan] = {}  # --on-missing fill: plans by tile index (fill.json)
        self.filled: list[FillPlan] = []  # the plans pasted

    def tile_bytes(self, t: dict[str, Any]) -> bytes | None:
        """The cached bytes of tile `t`, through the dezoomer's decode hook when there is one."""
        if self.hook is None:
            return read_cached(self.cache_dir, t["key"])
        try:
            raw = tile_path(self.cache_dir, t["key"]).read_bytes()
        except OSError:
            return None
        return self.hook(raw, TileRef.from_json(t)) if raw else None

    def tile_kind(self, t: dict[str, Any]) -> int | None:
        """GREY, RGB or ALPHA (tilemodes) from the tile's header; None when it is missing or unreadable."""
        if self.hook is None:
            try:
                with open(tile_path(self.cache_dir, t["key"]), "rb") as f:
                    head = f.read(tilemodes.HEAD_BYTES)
                    try:
                        return tilemodes.tile_kind(head)
                    except tilemodes.NeedMore:
                        return tilemodes.tile_kind(head + f.read())
            except (OSError, tilemodes.NeedMore):
                return None
        try:
            data = self.tile_bytes(t)
            return tilemodes.tile_kind(data) if data else None
        except (Exception, tilemodes.NeedMore):  # a failing hook: the stitch reports the tile
            return None

    def place(self, t: dict[str, Any], strip: np.ndarray, y0: int) -> Placed:
        """Decode tile `t` and paste its cell into `strip` (whose first row is canvas row y0)."""
        try:
            data = self.tile_bytes(t)
            if data is None:
                return Placed(t, False, "not in the tile cache")
            pixels, icc = decode_image(data, self.channels)
        except UnidentifiedImageError:
            return Placed(t, False, "cannot decode: not an image format Pillow can read")
        except Exception as exc:  # any decoder failure means the tile is unusable, not that the step fails
            return Placed(t, False, f"cannot decode: {exc}")
        th, tw = pixels.shape[:2]
        cx, cy = t["crop_x"], t["crop_y"]
        w = max(0, min(t["w"], self.width - t["x"], tw - cx))  # cells are clipped to the canvas
        h = max(0, min(t["h"], strip.shape[0] - (t["y"] - y0), th - cy))
        strip[t["y"] - y0:t["y"] - y0 + h, t["x"]:t["x"] + w] = pixels[cy:cy + h, cx:cx + w]
        return Placed(t, True, got=(tw, th), icc=icc)

    def place_or_fill(self, t: dict[str, Any], strip: np.ndarray, y0: int) -> Placed:
        """`place`; a tile that cannot be placed gets its fill from a lower level when fill.json has one."""
        placed = self.place(t, strip, y0)
        plan = None if placed.ok else self.fills.get(t["index"])
        if plan is not None and fill_into(plan, strip, y0, partial(read_cached, self.cache_dir),
                                          lambda data: decode_image(data, self.channels)[0]):
            self.filled.append(plan)
        return placed


class Assembly:
    """The tiles of tiles.json being put together: canvas kind first, then row bands, then the report.

    Used by `stitch` (bands written to a canvas file) and by the render step (bands streamed
    into the encoder). A context manager: it holds the decoding threads and Pillow's size guard.
    """

    def __init__(self, tiles_json: Path, cache_dir: Path, *, decode: TileHook | None = None,
                 threads: int = 2, skip: set[int] | None = None, fill: Path | None = None,
                 tiles_doc: dict[str, Any] | None = None):
        self.doc = tiles_doc if tiles_doc is not None else read_step_json(tiles_json, "tiles")
        self.width, self.height = self.doc["canvas"]["width"], self.doc["canvas"]["height"]
        skip = skip or set()
        in_canvas = [t for t in self.doc["tiles"] if t["x"] < self.width and t["y"] < self.height]
        self.tiles = [t for t in in_canvas if t["index"] not in skip]
        self.passed = [Placed(t, True) for t in in_canvas if t["index"] in skip]
        self.stitcher = _Stitcher(Path(cache_dir), self.width, decode)
        self.fill = fill
        if fill is not None:
            plans = read_step_json(fill, "fill")["filled"]
            self.stitcher.fills = {d["index"]: FillPlan.from_json(d) for d in plans}
        self.results: list[Placed] = []
        self.bands = list(strips(self.tiles, self.height))
        self._pool = ThreadPoolExecutor(max(1, threads))
        self._limits = tile_size_limits()

    def __enter__(self) -> "Assembly":
        self._limits.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)
        self._limits.__exit__(None, None, None)

    @property
    def channels(self) -> int:
        """Channels of the canvas (after `prepare`): 1, 3 or 4."""
        return self.stitcher.channels

    def prepare(self) -> int:
        """Read every tile's header to choose grey, RGB or RGBA; returns the channel count."""
        kinds = list(self._pool.map(self.stitcher.tile_kind, self.tiles, chunksize=64))
        self.stitcher.channels = tilemodes.canvas_channels(kinds + [tilemodes.RGB] * bool(self.passed))
        return self.stitcher.channels

    def first_icc(self) -> bytes | None:
        """The ICC profile of the first tile that has one (among the first 64; headers only)."""
        if not hasattr(self, "_icc"):
            self._icc = None
            for t in self.tiles[:64] or [p.tile for p in self.passed[:1]]:
                self._icc = _first_icc(self.stitcher, [t])
                if self._icc:
                    break
        return self._icc

    def fill_band(self, y0: int, strip: np.ndarray, band: list[dict[str, Any]]) -> None:
        """Decode the tiles of one band into `strip` (zeroed, whose first row is canvas row y0)."""
        self.results.extend(self._pool.map(partial(self.stitcher.place_or_fill, strip=strip, y0=y0), band))

    def report(self) -> dict[str, Any]:
        """The stitch.json body, once every band is done."""
        icc = next((r.icc for r in self.results if r.icc), None) or self.first_icc()
        body = _report_body(self.doc, self.results + self.passed, self.width, self.height, self.channels, icc)
        body["skipped"] = len(self.passed)
        if self.fill is not None:
            body["filled"] = [filled_region(p) for p in sorted(self.stitcher.filled, key=lambda p: p.index)]
        return body


def band_columns(band: list[dict[str, Any]], width: int) -> tuple[int, int]:
    """The columns [x0, x1) the tiles of a band cover."""
    return min(t["x"] for t in band), min(width, max(t["x"] + t["w"] for t in band))


def stitch(
    *, tiles_json: Path, cache_dir: Path, canvas: Path, report: Path,
    decode: TileHook | None = None, threads: int = 2, skip: set[int] | None = None,
    fill: Path | None = None, passthrough: dict[str, Any] | None = None,
    tiles_doc: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the canvas from the cached tiles listed in tiles.json; write stitch.json and return it.

    `decode` is the dezoomer's `decode_tile(data, tile)` hook (raw bytes -> image file bytes);
    without it, cached bytes are used as they are. Tiles whose index is in `skip` are not
    decoded (the TIFF writer copies them as they are): their cells stay empty on the canvas
    and they count as placed RGB tiles; only the columns of the decoded tiles are written.
    `fill` is the fill_tiles step's fill.json (--on-missing fill): missing tiles it has a plan
    for are upscaled from a lower level. `passthrough` is the TIFF writer's plan
    (tiff_passthrough.Plan.to_json()): its tiles are skipped, and the plan is recorded in
    stitch.json so that the encode step need not read every tile's header again. `tiles_doc`:
    tiles.json already read (in-process callers), else it is read from `tiles_json`.
    """
    canvas = Path(canvas)
    if passthrough:
        skip = set(skip or ()) | set(passthrough["indices"])
    tmp = temp_beside(canvas)
    with Assembly(tiles_json, cache_dir, decode=decode, threads=threads, skip=skip, fill=fill,
                  tiles_doc=tiles_doc) as job:
        width, height = job.width, job.height
        try:
            channels = job.prepare()
            with create_canvas(tmp, width, height, channels) as cv:
                buf_rows = max((rows for _, rows, _ in job.bands), default=0)
                buffer = np.zeros((buf_rows, width, channels), dtype=np.uint8)
                for y0, rows, band in job.bands:
                    strip = buffer[:rows]
                    x0, x1 = band_columns(band, width) if job.passed else (0, width)
                    strip[:, x0:x1].fill(0)  # missing tiles stay black (transparent with alpha)
                    job.fill_band(y0, strip, band)
                    cv.write_rows(y0, strip[:, x0:x1], x=x0)
            os.replace(tmp, canvas)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                need = width * height * job.channels / 1e9
                raise OutputError(f"{canvas.parent}: disk full while writing the canvas ({exc.strerror}; it "
                                  f"needs {need:.1f} GB in the work folder: free space there or use another one)"
                                  ) from None
            raise OutputError(f"{canvas}: cannot write the canvas: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        body = job.report()
    if passthrough:
        body["passthrough"] = passthrough
    return write_step_json(report, "stitch", body)


def _first_icc(stitcher: _Stitcher, tiles: list[dict[str, Any]]) -> bytes | None:
    """The ICC profile of the first of `tiles` that can be opened (headers only)."""
    for t in tiles[:1]:
        with contextlib.suppress(Exception):
            data = stitcher.tile_bytes(t)
            if data and data.startswith(b"\xff\xd8") and b"ICC_PROFILE\0" not in data:
                return None  # a JPEG's profile is in APP2 "ICC_PROFILE" segments: none here, no need to parse
            if data:
                with Image.open(io.BytesIO(data)) as img:
                    return img.info.get("icc_profile") or None
    return None


def _report_body(doc: dict[str, Any], results: list[Placed], width: int, height: int,
                 channels: int, icc: bytes | None) -> dict[str, Any]:
    """The stitch.json body: counts, missing tiles, size mismatches, channels, ICC profile."""
    placed = [r for r in results if r.ok]
    missing = [{"index": r.tile["index"], "url": r.tile["url"], "reason": r.reason} for r in results if not r.ok]
    mismatches = []
    for r in placed:
        need = (r.tile["crop_x"] + r.tile["w"], r.tile["crop_y"] + r.tile["h"])
        if r.got is not None and (r.got[0] < need[0] or r.got[1] < need[1]):
            mismatches.append({"index": r.tile["index"], "expected": list(need), "got": list(r.got)})
    return {
        "image": doc["image"], "width": width, "height": height, "channels": channels,
        "tiles_total": len(doc["tiles"]), "placed": len(placed),
        "missing": sorted(missing, key=lambda m: m["index"]),
        "size_mismatches": mismatches, "icc_profile": icc is not None, "icc": icc_to_json(icc),
    }
