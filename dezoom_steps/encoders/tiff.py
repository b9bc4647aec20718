"""Tiled TIFF writer (tifffile): pyramid levels as SubIFDs, JPEG passthrough, memory bounded.

Layout: level 0 in the first IFD, each lower level (half the size of the one above, rounded
up, until the image fits in one tile) in a SubIFD of it with NewSubfileType 1 (reduced
image). libvips (`in.tif[subifd=k]`), tifffile (`series[0].levels`), GDAL (overviews),
QuPath and OpenSlide-style viewers read the levels; viewers that know nothing of SubIFDs
see level 0 only.

Compression (`TiffOptions.compression`): jpeg (YCbCr 4:2:0, quality 100 - compression),
deflate or zstd (lossless, horizontal predictor; level from `compression`'s fast / default /
best tier), none. JPEG cannot hold alpha: an RGBA image asked in JPEG is written with deflate
(the stats say which compression was used).

Every tile is encoded here (a thread pool; imagecodecs and Pillow release the GIL) and handed
to tifffile as bytes. Edge tiles are padded to the full tile by repeating their last row and
column. Level 0 is written while the canvas is read one tile row at a time; the same rows
feed the 2x2 cascade of encoders/pyramid.py, whose finished lower-level tiles are encoded
at once and spilled to a temporary file, then written as the SubIFDs. Memory: a tile row of
each level, whatever the image size.

JPEG passthrough (encoders/tiff_passthrough.py): when a Plan is given, server tiles are
copied byte for byte as TIFF tiles; the other tiles (edges, odd or missing tiles) are
encoded from the canvas with the server tiles' own quantization tables and subsampling.
Level 1 then comes from a half-scale (DCT-scaled) decode of the copied tiles, so they are
decoded at most once and at half the cost.

BigTIFF only when needed: classic TIFF (32-bit offsets, readable everywhere) unless a bound
on the file size (every level's raw pixels, twice over for JPEG, which can exceed the raw
size at high quality, plus the copied tiles' bytes) could pass 4 GiB. The bound does not
depend on the content, so the same image always gets the same layout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import imagecodecs
import numpy as np
import tifffile
from PIL import Image

from dezoom_steps import tilecheck
from dezoom_steps.canvas import Canvas
from dezoom_steps.encoders.jpeg import quality_for
from dezoom_steps.encoders.png import compression_tier
from dezoom_steps.encoders.pyramid import Cascade, halve, level_sizes
from dezoom_steps.encoders.tiff_passthrough import Plan, plan_from_json, plan_passthrough
from dezoom_steps.errors import InputError
from dezoom_steps.outmeta import OutputMeta

TILE = 256  # TIFF tile side without passthrough; a multiple of 16 as JPEG 4:2:0 tiles require
COMPRESSIONS = ("jpeg", "deflate", "zstd", "none")
DEFAULT_COMPRESSION = "jpeg"
TIFFFILE_NAME = {"jpeg": "jpeg", "deflate": "zlib", "zstd": "zstd", "none": None}
DEFLATE_LEVELS = (1, 6, 9)  # libdeflate levels for compression tiers fast / default / best
ZSTD_LEVELS = (1, 3, 9)
CLASSIC_LIMIT = 2**32 - (64 << 20)  # a classic TIFF's offsets are 32-bit; keep a margin for tags
XMP_TAG = 700
PILLOW_SUBSAMPLING = {(1, 1): 0, (2, 2): 2}  # Pillow's `subsampling` codes: 4:4:4, 4:2:0
# Passthrough without levels: pixels of the cells being encoded ahead of the copy (256 tiles of 256 px:
# a few MB of encoded tiles), and at least this many cells.
ENCODE_AHEAD_PIXELS = 256 * 256 * 256
ENCODE_AHEAD_CELLS = 8


def has_imagecodecs() -> bool:
    """True when the imagecodecs package (tile codecs) is importable; it is a dependency."""
    return importlib.util.find_spec("imagecodecs") is not None


@dataclass(frozen=True)
class TiffOptions:
    """How to write a TIFF: tile compression and whether to add the pyramid levels."""

    compression: str = DEFAULT_COMPRESSION
    pyramid: bool = True


@dataclass
class TileCodec:
    """Turns (tile_h, tile_w, channels) uint8 tiles into the bytes of one TIFF tile."""

    compression: str  # what is written: jpeg, deflate, zstd or none
    channels: int
    quality: int = 95
    level: int = 6
    qtables: Any = None  # Pillow quantization tables of passthrough tiles (re-encode alike)
    subsampling: tuple[int, int] = (2, 2)

    @property
    def predictor(self) -> bool:
        """Lossless compressions store horizontal differences (TIFF Predictor 2)."""
        return self.compression in ("deflate", "zstd")

    def encode(self, tile: np.ndarray) -> bytes:
        """The TIFF tile bytes of `tile`."""
        if self.compression == "jpeg":
            return self._jpeg(tile)
        if self.predictor:
            diff = tile.copy()
            diff[:, 1:] -= tile[:, :-1]  # uint8 wrap-around, as TIFF's horizontal predictor
            if self.compression == "deflate":
                return imagecodecs.deflate_encode(diff, level=self.level)
            return imagecodecs.zstd_encode(diff, level=self.level)
        return np.ascontiguousarray(tile).tobytes()

    def _jpeg(self, tile: np.ndarray) -> bytes:
        """A JPEG stream: YCbCr for colour (grey stays one component)."""
        if self.qtables is not None:
            buf = io.BytesIO()
            Image.fromarray(tile).save(buf, "JPEG", qtables=self.qtables,
                                       subsampling=PILLOW_SUBSAMPLING[self.subsampling], optimize=False)
            return buf.getvalue()
        if self.channels == 1:
            return imagecodecs.jpeg_encode(tile[:, :, 0], level=self.quality)
        return imagecodecs.jpeg_encode(tile, level=self.quality, colorspace="RGB", outcolorspace="YCBCR",
                                       subsampling=self.subsampling)


def check_compression(name: str) -> str:
    """`name` if it is a TIFF compression this writer knows; InputError naming the choices otherwise."""
    if name not in COMPRESSIONS:
        raise InputError(f"unknown TIFF compression {name!r}: use one of {', '.join(COMPRESSIONS)}")
    return name


def tiff_write_args(format_name: str, tiles_doc: dict[str, Any], cache_dir: Path | None,
                    compression: str = DEFAULT_COMPRESSION, pyramid: bool = True,
                    recorded: dict[str, Any] | None = None, plan: Plan | None = None) -> dict[str, Any]:
    """The TIFF keyword arguments of encoders.write_image: options and, for JPEG, the passthrough plan.

    Empty for other formats. The plan needs the tile cache (`cache_dir`); without it every
    tile is encoded from the canvas. `recorded` is the plan stitch.json holds (stitch left
    those tiles out of the canvas): used as it is, and only with JPEG compression. `plan`:
    that plan already built in this process (steps/render_tiff.py), used instead of `recorded`.
    """
    check_compression(compression)
    if format_name != "tiff":
        return {}
    if recorded and recorded.get("indices") and (compression != "jpeg" or cache_dir is None):
        raise InputError(f"the canvas was stitched for copying {len(recorded['indices'])} server JPEG tiles "
                         f"into the TIFF, which --tiff-compression {compression} (or no tile cache) cannot "
                         "do: run the stitch step again with the same TIFF options")
    if plan is not None and compression == "jpeg" and cache_dir is not None:
        return {"tiff": TiffOptions(compression, pyramid), "passthrough": plan}
    plan = None
    if compression == "jpeg" and cache_dir is not None:
        plan = (plan_from_json(tiles_doc, Path(cache_dir), recorded) if recorded is not None
                else plan_passthrough(tiles_doc, Path(cache_dir)))
    return {"tiff": TiffOptions(compression, pyramid), "passthrough": plan}


def make_codec(options: TiffOptions, channels: int, compression: int, plan: Plan | None = None) -> TileCodec:
    """The codec for the requested compression (deflate for JPEG with alpha; passthrough tables)."""
    check_compression(options.compression)
    name = "deflate" if options.compression == "jpeg" and channels == 4 else options.compression
    tier = compression_tier(compression)
    codec = TileCodec(name, channels, quality=quality_for(compression),
                      level=(ZSTD_LEVELS if name == "zstd" else DEFLATE_LEVELS)[tier])
    if plan is not None:
        with Image.open(plan.any_tile) as img:
            codec.qtables = img.quantization
        codec.subsampling = plan.subsampling
    return codec


def pad_tile(cell: np.ndarray, tile_h: int, tile_w: int) -> np.ndarray:
    """`cell` grown to tile_h x tile_w by repeating its last row and column (as numpy's "edge" pad)."""
    h, w = cell.shape[:2]
    if (h, w) == (tile_h, tile_w):
        return cell
    if not h or not w:
        return np.pad(cell, ((0, tile_h - h), (0, tile_w - w), (0, 0)), mode="edge")
    out = np.empty((tile_h, tile_w) + cell.shape[2:], dtype=cell.dtype)
    out[:h, :w] = cell
    x = w
    if x < tile_w:
        out[:h, x] = cell[:, w - 1]
        x += 1
    while x < tile_w:  # doubling copies of the repeated column: a few wide copies, not many pixel-wide ones
        k = min(x - (w - 1), tile_w - x)
        out[:h, x:x + k] = out[:h, x - k:x]
        x += k
    out[h:] = out[h - 1]  # the last (already widened) row repeated
    return out


def cut_tiles(rows: np.ndarray, tile_h: int, tile_w: int) -> list[np.ndarray]:
    """A row of tiles (padded to full size) cut from `rows` (at most tile_h rows)."""
    return [pad_tile(rows[:, x:x + tile_w], tile_h, tile_w) for x in range(0, rows.shape[1], tile_w)]


def halve_any(rows: np.ndarray) -> np.ndarray:
    """2x2 box reduction of any block, an odd last row or column repeated (as the cascade does)."""
    if len(rows) % 2:
        rows = np.concatenate([rows, rows[-1:]])
    return halve(rows)


class SpillStore:
    """Encoded tiles of the lower levels, kept in an unlinked temporary file until written."""

    def __init__(self, folder: str | None):
        self.file = tempfile.TemporaryFile(dir=folder, prefix=".dezoom-spill-")
        self.index: dict[int, list[tuple[int, int]]] = {}
        self.end = 0

    def add(self, level: int, data: bytes) -> None:
        """Append the next tile (row-major order) of `level`."""
        self.file.write(data)
        self.index.setdefault(level, []).append((self.end, len(data)))
        self.end += len(data)

    def tiles(self, level: int) -> Iterator[bytes]:
        """The tiles of `level` in the order they were added."""
        self.file.flush()
        fd = self.file.fileno()
        for offset, size in self.index.get(level, []):
            yield os.pread(fd, size, offset)

    def close(self) -> None:
        """Delete the spill file."""
        self.file.close()


@dataclass
class _Writer:
    """One TIFF being written: geometry, codec, thread pool, spill store and counters."""

    canvas: Canvas
    codec: TileCodec
    tile_w: int
    tile_h: int
    levels: int
    pool: ThreadPoolExecutor
    spill: SpillStore
    plan: Plan | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"passed_through": 0, "encoded": 0})

    def encode_row(self, tiles: list[np.ndarray]) -> list[bytes]:
        """Encode a row of tiles in the pool, in order."""
        return list(self.pool.map(self.codec.encode, tiles))

    def spill_blocks(self, blocks: Iterable[Any], shift: int = 0) -> None:
        """Encode the tiles of finished cascade blocks and keep them for their level (+ shift)."""
        for b in blocks:
            for data in self.encode_row(cut_tiles(b.rows, self.tile_h, self.tile_w)):
                self.spill.add(b.level + shift, data)

    def level0(self) -> Iterator[bytes]:
        """Level-0 tiles from the canvas, row by row, feeding the cascade on the way."""
        cv = self.canvas
        cascade = Cascade(cv.width, cv.height, cv.channels, self.levels, self.tile_h) if self.levels else None
        for y in range(0, cv.height, self.tile_h):
            strip = cv.read_rows(y, self.tile_h)
            tiles = self.encode_row(cut_tiles(strip, self.tile_h, self.tile_w))
            self.stats["encoded"] += len(tiles)
            if cascade is not None:
                self.spill_blocks(cascade.feed(strip))
                if y + self.tile_h >= cv.height:  # before the last yield: tifffile stops pulling there
                    self.spill_blocks(cascade.close())
            yield from tiles

    def level0_passthrough(self) -> Iterator[bytes]:
        """Level-0 tiles: server tiles copied, the rest encoded; level 1 from half-scale decodes."""
        cv, plan = self.canvas, self.plan
        assert plan is not None
        w1, h1 = (cv.width + 1) // 2, (cv.height + 1) // 2
        cascade = Cascade(w1, h1, 3, self.levels - 1, self.tile_h, include_base=True) if self.levels else None
        with _regions(cv) as reader:
            if cascade is None:
                yield from self._flat_passthrough(reader)
                return
            for r in range(plan.rows):
                y, h = r * self.tile_h, min(self.tile_h, cv.height - r * self.tile_h)
                half = np.empty(((h + 1) // 2, w1, 3), dtype=np.uint8)
                jobs = [_tile_job(self, reader, c, r, y, h, half) for c in range(plan.cols)]
                done = list(self.pool.map(lambda job: job(), jobs))
                self.spill_blocks(cascade.feed(half), shift=1)
                if r == plan.rows - 1:  # before the last yield: tifffile stops pulling there
                    self.spill_blocks(cascade.close(), shift=1)
                yield from self._count(done)

    def _flat_passthrough(self, reader: "RegionRead") -> Iterator[bytes]:
        """Level 0 alone: copied tiles read in this thread (worker threads measured slower: the work is
        short system calls, and handing them over costs more than it saves), while the pool encodes
        the other cells (edges: decode, pad, encode), up to ENCODE_AHEAD_PIXELS ahead of the copy.

        Counted in cells, not rows: the bottom edge is a whole row of cells to encode, and is
        started while the rows above are still being copied (issue 7: counted in rows, the copy
        waited for it at the end).
        """
        plan, cv, stats = self.plan, self.canvas, self.stats
        assert plan is not None
        copied = plan.tiles
        cells = ((c, r) for r in range(plan.rows) for c in range(plan.cols) if (c, r) not in copied)
        encoded: dict[tuple[int, int], Future] = {}
        ahead = max(ENCODE_AHEAD_CELLS, ENCODE_AHEAD_PIXELS // (self.tile_w * self.tile_h))

        def submit_ahead() -> None:
            while len(encoded) < ahead:
                cell = next(cells, None)
                if cell is None:
                    return
                c, r = cell
                y, h = r * self.tile_h, min(self.tile_h, cv.height - r * self.tile_h)
                encoded[cell] = self.pool.submit(_tile_job(self, reader, c, r, y, h, None))

        submit_ahead()
        for r in range(plan.rows):
            for c in range(plan.cols):
                path = copied.get((c, r))
                if path is not None:
                    stats["passed_through"] += 1
                    yield plan.tile_bytes(path)
                else:
                    stats["encoded"] += 1
                    data = encoded.pop((c, r)).result()[0]
                    submit_ahead()
                    yield data

    def _count(self, done: list[tuple[bytes, bool]]) -> Iterator[bytes]:
        """The tile bytes of a row, counted as copied or encoded."""
        for data, copied in done:
            self.stats["passed_through" if copied else "encoded"] += 1
            yield data


RegionRead = Callable[[int, int, int, int], np.ndarray]  # (x, y, w, h) -> (h, w, channels) pixels


@contextlib.contextmanager
def _regions(cv: Any) -> Iterator[RegionRead]:
    """How the passthrough writer reads the cells it encodes: the canvas's own `read_region` (a
    canvas held in memory, steps/render_tiff.py), else preads of the canvas file."""
    own = getattr(cv, "read_region", None)
    if own is not None:
        yield own
        return
    with open(cv.path, "rb") as canvas_file:
        yield _RegionReader(canvas_file.fileno(), cv).read


class _RegionReader:
    """Reads rectangles of the canvas file with one pread per row."""

    def __init__(self, fd: int, canvas: Canvas):
        self.fd, self.canvas = fd, canvas

    def read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels (h, w, channels) of the canvas rectangle at (x, y)."""
        cv = self.canvas
        out = np.zeros((h, w, cv.channels), dtype=np.uint8)
        size = w * cv.channels
        for i in range(h):
            pos = cv.offset + (y + i) * cv.row_bytes + x * cv.channels
            data = os.pread(self.fd, size, pos)
            out[i].reshape(-1)[:len(data)] = np.frombuffer(data, dtype=np.uint8)
        return out


def _tile_job(w: _Writer, reader: RegionRead, c: int, r: int, y: int, h: int,
              half: np.ndarray | None) -> Callable[[], tuple[bytes, bool]]:
    """The job making TIFF tile (c, r) in passthrough mode: (bytes, copied as they are)."""

    def job() -> tuple[bytes, bool]:
        plan = w.plan
        assert plan is not None
        x = c * w.tile_w
        cw = min(w.tile_w, w.canvas.width - x)
        path = plan.tiles.get((c, r))
        if path is not None:
            data = plan.tile_bytes(path)
            if half is not None:
                half[:, x // 2:x // 2 + w.tile_w // 2] = half_decode(data, w.tile_w, w.tile_h)
            return data, True
        cell = reader(x, y, cw, h)
        if half is not None:
            half[:, x // 2:x // 2 + (cw + 1) // 2] = halve_any(cell)
        return w.codec.encode(pad_tile(cell, w.tile_h, w.tile_w)), False

    return job


def half_decode(data: bytes, tile_w: int, tile_h: int) -> np.ndarray:
    """A JPEG tile decoded at half size by libjpeg's DCT scaling (a full decode + 2x2 box if not).

    A tile whose entropy-coded data is broken (its headers were fine, so it was copied as the
    server sent it) gives black here rather than stopping the whole file.

    libjpeg-turbo through simplejpeg first: the same pixels as Pillow's draft decode (both scale
    in libjpeg with the same DCT and upsampling) in about half the time (issue 7: 141 against
    256 µs a 256 px tile). It stops at the first warning; Pillow then decides, as before.
    """
    turbo = tilecheck.import_turbo()
    if turbo:
        try:
            pixels = turbo.decode_jpeg(data, colorspace="RGB", min_width=tile_w // 2, min_height=tile_h // 2,
                                       min_factor=2, strict=True)
        except Exception:  # ValueError for a damaged scan or anything else it cannot decode
            pixels = None
        if pixels is not None and pixels.shape[:2] == (tile_h // 2, tile_w // 2):
            return pixels
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (tile_w // 2, tile_h // 2))
            pixels = np.asarray(img.convert("RGB"))
    except Exception:  # any decoder failure: the level shows the cell black, as stitch does
        return np.zeros((tile_h // 2, tile_w // 2, 3), dtype=np.uint8)
    if pixels.shape[:2] == (tile_h // 2, tile_w // 2):
        return pixels
    if pixels.shape[:2] != (tile_h, tile_w):
        return np.zeros((tile_h // 2, tile_w // 2, 3), dtype=np.uint8)
    return halve_any(pixels)


def pyramid_levels(width: int, height: int, tile_w: int, tile_h: int) -> int:
    """Lower levels until one fits in a single tile."""
    count = 0
    while width > tile_w or height > tile_h:
        width, height, count = (width + 1) // 2, (height + 1) // 2, count + 1
    return count


def size_bound(sizes: list[tuple[int, int]], channels: int, codec: TileCodec, plan: Plan | None) -> int:
    """An upper bound on the file size, used to choose between classic TIFF and BigTIFF."""
    factor = 2 if codec.compression == "jpeg" else 1.05  # JPEG at q100 can beat raw size; deflate adds framing
    raw = sum(w * h for w, h in sizes) * channels * factor
    copied = 0
    if plan is not None:
        copied = plan.copied_bytes if plan.copied_bytes is not None else sum(os.stat(p).st_size
                                                                             for p in plan.tiles.values())
    return int(raw) + copied + (1 << 20)


def write_tiff(canvas: Canvas, out: BinaryIO, compression: int = 5, *, threads: int = 2,
               meta: OutputMeta | None = None, options: TiffOptions | None = None,
               plan: Plan | None = None) -> dict[str, Any]:
    """Write `canvas` to the seekable binary file `out` as a tiled (pyramidal) TIFF; returns what was done.

    `plan` (JPEG compression, RGB canvas of the plan's size) copies its server tiles as they are.
    """
    options = options or TiffOptions()
    meta = meta or OutputMeta()
    channels = canvas.channels
    if plan is not None and (options.compression != "jpeg" or channels != 3
                             or (plan.width, plan.height) != (canvas.width, canvas.height)):
        plan = None
    codec = make_codec(options, channels, compression, plan)
    tile_w, tile_h = (plan.tile_w, plan.tile_h) if plan is not None else (TILE, TILE)
    levels = pyramid_levels(canvas.width, canvas.height, tile_w, tile_h) if options.pyramid else 0
    sizes = level_sizes(canvas.width, canvas.height, levels)
    bigtiff = size_bound(sizes, channels, codec, plan) >= CLASSIC_LIMIT
    name = getattr(out, "name", None)  # spill beside the output (same disk); else the temp folder
    spill = SpillStore((os.path.dirname(name) or None) if isinstance(name, str) else None)
    try:
        with ThreadPoolExecutor(max(1, threads)) as pool, tifffile.TiffWriter(out, bigtiff=bigtiff) as tif:
            w = _Writer(canvas, codec, tile_w, tile_h, levels, pool, spill, plan)
            layout = _layout(codec, channels, tile_w, tile_h)
            tif.write(w.level0_passthrough() if plan is not None else w.level0(),
                      shape=_shape(canvas.width, canvas.height, channels), **layout,
                      subifds=levels or None, software=meta.software, **_meta_tags(meta))
            for k in range(1, levels + 1):
                tif.write(spill.tiles(k), shape=_shape(*sizes[k], channels), **layout,
                          subfiletype=1, software=False)
    finally:
        spill.close()
    return {
        "compression": codec.compression, "bigtiff": bigtiff, "tile": [tile_w, tile_h],
        "levels": [list(s) for s in sizes],
        "tiles_passed_through": w.stats["passed_through"], "tiles_encoded": w.stats["encoded"],
    }


def _shape(width: int, height: int, channels: int) -> tuple[int, ...]:
    """tifffile's shape of a width x height image."""
    return (height, width) if channels == 1 else (height, width, channels)


def _layout(codec: TileCodec, channels: int, tile_w: int, tile_h: int) -> dict[str, Any]:
    """tifffile.write arguments shared by every level."""
    args: dict[str, Any] = {
        "dtype": np.uint8, "tile": (tile_h, tile_w), "compression": TIFFFILE_NAME[codec.compression],
        "photometric": "minisblack" if channels == 1 else "rgb", "metadata": None,
    }
    if channels == 4:
        args["extrasamples"] = ["unassalpha"]
    if codec.compression == "jpeg" and channels == 3:
        args["subsampling"] = codec.subsampling
    if codec.predictor:
        args["predictor"] = True
    return args


def _meta_tags(meta: OutputMeta) -> dict[str, Any]:
    """ICC profile, description, XMP and resolution of the first IFD (no date: outputs are reproducible)."""
    args: dict[str, Any] = {"datetime": False}
    if meta.icc:
        args["iccprofile"] = meta.icc
    if meta.description():
        args["description"] = meta.description().encode("utf-8")
    xmp = meta.xmp()
    args["extratags"] = [(XMP_TAG, 1, len(xmp), xmp, True)]
    if meta.dpi:
        args["resolution"] = meta.dpi
        args["resolutionunit"] = "INCH"
    return args
