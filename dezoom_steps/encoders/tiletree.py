"""Tile trees: the canvas and its lower levels cut into tile files (IIIF level-0 folder, DeepZoom).

One streaming pass: the canvas is read in row strips, the pyramid cascade (encoders/pyramid.py)
makes every lower level from them, and each level's rows are cut into tiles as soon as a row
of tiles is complete. Tiles are encoded by a small thread pool and written at once, so memory
is bounded by a few tile rows of the widest level, never by the image.

A format module (iiif_folder.py, dzi.py) only says where each tile goes (`TreeLayout`). This
module also builds the tree in a temporary folder beside the final name and publishes it with
renames (`publish`), and defines the tree's checksum (`tree_digest`).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from dezoom_steps.canvas import Canvas
from dezoom_steps.encoders.jpeg import quality_for
from dezoom_steps.encoders.png import zlib_level
from dezoom_steps.encoders.pyramid import Cascade
from dezoom_steps.errors import OutputError
from dezoom_steps.outmeta import OutputMeta

READ_ROWS = 64  # canvas rows read at a time (the cascade works in chunks of this size too)
PENDING_PER_THREAD = 8  # tiles queued per encoding thread before the reader waits
RECENT_FOLDERS = 64  # tile folders remembered as made (memory must not grow with the image)


@dataclass(frozen=True)
class TreeLayout:
    """Where the tiles of one tree go.

    `levels` is the number of halvings below full resolution (level k is ceil(w/2^k) x
    ceil(h/2^k)). Tile (col, row) of a level covers the level's pixels [col*tile - overlap,
    (col+1)*tile + overlap) clipped to the level (overlap only on inner sides, as DeepZoom).
    `tile_paths(k, col, row)` gives the relative paths (POSIX, under the tree's root) the tile
    is written to; `whole_paths(k)` the paths of the whole level as one image ([] for none).
    """

    tile: int
    overlap: int
    levels: int
    tile_paths: Callable[[int, int, int], list[str]]
    whole_paths: Callable[[int], list[str]] = lambda k: []


@dataclass(frozen=True)
class TileCodec:
    """How tiles are encoded: `ext` (`jpg` or `png`) and an encoder of (h, w, channels) uint8 arrays."""

    ext: str
    encode: Callable[[np.ndarray], bytes]


def tile_codec(channels: int, compression: int, meta: OutputMeta | None = None) -> TileCodec:
    """JPEG tiles (quality 100 - compression) for grey and RGB canvases, PNG tiles for RGBA ones.

    The ICC profile of `meta`, if any, goes into every tile (browsers colour-manage each image).
    """
    icc = {"icc_profile": meta.icc} if meta is not None and meta.icc else {}
    if channels == 4:
        level = zlib_level(compression)

        def encode_png(pixels: np.ndarray) -> bytes:
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(pixels), "RGBA").save(buf, "PNG", compress_level=level, **icc)
            return buf.getvalue()

        return TileCodec("png", encode_png)
    quality = quality_for(compression)

    def encode_jpeg(pixels: np.ndarray) -> bytes:
        img = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=2, **icc)
        return buf.getvalue()

    return TileCodec("jpg", encode_jpeg)


class _Cutter:
    """One level's rows in arrival order, cut into rows of tiles as soon as they are complete."""

    def __init__(self, width: int, height: int, tile: int, overlap: int, whole: bool):
        self.width, self.height, self.tile, self.overlap = width, height, tile, overlap
        self.rows: np.ndarray | None = None
        self.first = 0  # level row of self.rows[0]
        self.next_row = 0  # next row of tiles to cut
        self.whole: list[np.ndarray] | None = [] if whole else None

    def add(self, y: int, rows: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """Take the level's rows starting at row `y`; yield (col, row, pixels) of every finished tile."""
        held = 0 if self.rows is None else len(self.rows)
        if y != self.first + held:
            raise ValueError(f"rows arrive out of order: got row {y}, expected {self.first + held}")
        if self.whole is not None:
            self.whole.append(rows)
        self.rows = rows if not held else np.concatenate([self.rows, rows])
        t, o = self.tile, self.overlap
        while self.next_row * t < self.height:
            top = self.next_row * t
            y0, y1 = max(top - o, 0), min(top + t + o, self.height)
            if self.first + len(self.rows) < y1:
                break
            band = self.rows[y0 - self.first:y1 - self.first]
            for col in range(-(-self.width // t)):
                x0, x1 = max(col * t - o, 0), min((col + 1) * t + o, self.width)
                yield col, self.next_row, band[:, x0:x1]
            self.next_row += 1
            keep = max(top + t - o, 0)  # the next row of tiles starts here
            self.rows, self.first = self.rows[keep - self.first:], keep

    def done(self) -> bool:
        """True once every row of tiles was cut."""
        return self.next_row * self.tile >= self.height

    def whole_image(self) -> np.ndarray:
        """The whole level (only when asked for at construction)."""
        assert self.whole is not None
        return np.concatenate(self.whole)


def write_tree(canvas: Canvas, root: Path, layout: TreeLayout, codec: TileCodec, *, threads: int = 2) -> None:
    """Write every tile of every level of `canvas` under the folder `root` (which must exist)."""
    w, h = canvas.width, canvas.height
    channels = getattr(canvas, "channels", 3)
    cascade = Cascade(w, h, channels, layout.levels, block_rows=layout.tile, include_base=True)
    sizes = [(lv.width, lv.height) for lv in cascade.levels]
    cutters = [_Cutter(lw, lh, layout.tile, layout.overlap, bool(layout.whole_paths(k)))
               for k, (lw, lh) in enumerate(sizes)]
    base = os.fspath(root)
    made: dict[str, None] = {}  # folders made lately (a few: IIIF tiles each have their own folder)
    pending: deque[Future[None]] = deque()

    def save(paths: list[str], pixels: np.ndarray) -> None:
        data = codec.encode(pixels)
        for path in paths:
            _write_file(path, data)

    def submit(rel_paths: list[str], pixels: np.ndarray) -> None:
        paths = [os.path.join(base, rel) for rel in rel_paths]  # strings: pathlib is slow per tile
        for path in paths:  # folders made here, in order, so workers never race on them
            parent = os.path.dirname(path)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made[parent] = None
                if len(made) > RECENT_FOLDERS:
                    del made[next(iter(made))]
        pending.append(pool.submit(save, paths, pixels))
        while len(pending) > PENDING_PER_THREAD * max(1, threads):
            pending.popleft().result()

    def take(blocks: Iterator) -> None:
        for block in blocks:
            cutter = cutters[block.level]
            for col, row, pixels in cutter.add(block.y, block.rows):
                submit(layout.tile_paths(block.level, col, row), pixels)
            if cutter.done() and cutter.whole is not None:
                submit(layout.whole_paths(block.level), cutter.whole_image())
                cutter.whole = None

    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="tile") as pool:
        try:
            for y in range(0, h, READ_ROWS):
                take(cascade.feed(canvas.read_rows(y, READ_ROWS)))
            take(cascade.close())
            while pending:
                pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
    unfinished = [k for k, c in enumerate(cutters) if not c.done()]
    if unfinished:  # a cascade bug, never bad input
        raise RuntimeError(f"tile tree: levels {unfinished} were not cut completely")


def _write_file(path: str, data: bytes) -> None:
    """Write `data` to a new file at `path` (inside the temporary tree, so no rename needed)."""
    with open(path, "wb") as f:
        f.write(data)


def publish(tmp_root: Path, entries: list[str], folder: Path, overwrite: bool) -> None:
    """Move `entries` (names directly under `tmp_root`) into `folder`, the last one last.

    The last entry is the one that makes the output visible (the IIIF folder itself, or the
    `.dzi` file after its `_files` folder). Existing entries are refused unless `overwrite`; then
    each is moved aside first and deleted once the new one is in place, so a final name never
    holds a half-written tree.
    """
    targets = [folder / name for name in entries]
    if not overwrite:
        for target in targets:
            if os.path.lexists(target):
                raise OutputError(f"{target}: exists; not overwritten")
    trash: list[Path] = []
    try:
        for name, target in zip(entries, targets):
            if os.path.lexists(target):
                aside = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=folder))
                os.replace(target, aside / name)
                trash.append(aside)
            os.replace(tmp_root / name, target)
    finally:
        for aside in trash:
            shutil.rmtree(aside, ignore_errors=True)


def tree_digest(folder: Path, entries: list[str]) -> tuple[str, int]:
    """SHA-256 and total size of a tree: the hash of its `sha256sum`-style manifest.

    Every file under the `entries` (files or folders in `folder`) gives a line
    `<sha256 of the file>  <path relative to folder>\\n` (POSIX separators); the lines are sorted by
    path (as UTF-8 bytes) and the digest is the SHA-256 of their concatenation. The same value
    comes out of `find ENTRIES -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`
    run in `folder`. Returns (hex digest, sum of the file sizes).
    """
    files: list[tuple[bytes, Path]] = []
    for name in entries:
        top = folder / name
        if top.is_file():
            files.append((name.encode("utf-8"), top))
            continue
        for dirpath, _dirnames, filenames in os.walk(top):
            for fname in filenames:
                path = Path(dirpath) / fname
                files.append((path.relative_to(folder).as_posix().encode("utf-8"), path))
    files.sort()
    manifest, total = hashlib.sha256(), 0
    for rel, path in files:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
                total += len(block)
        manifest.update(h.hexdigest().encode("ascii") + b"  " + rel + b"\n")
    return manifest.hexdigest(), total
