"""JPEG passthrough for TIFF output: which cached tiles can go into the TIFF as they are.

A tile is copied byte for byte into the TIFF (no decode, no re-encode) when
  - the level is a regular grid with no overlap: every tile's cell starts at a multiple of the
    tile size and its crop offsets are 0, so TIFF tile (c, r) is exactly server tile (c, r);
  - the tile size is a multiple of 8 x the chroma subsampling (16 for 4:2:0, 8 for 4:4:4),
    as JPEG-in-TIFF requires (the TIFF tile is made of whole MCUs);
  - the tile fills its cell (edge tiles are smaller: they are re-encoded from the canvas,
    padded by edge replication, because libvips misreads short JPEG tiles);
  - its JPEG header, read up to the start of scan, is baseline or extended Huffman (SOF0/SOF1),
    8-bit, YCbCr with 3 components, luma sampled (s, s) and chroma (1, 1), where (s, s) is the
    sampling every passed tile shares (the TIFF's YCbCrSubSampling tag), and the file ends
    with EOI.
Progressive, arithmetic, CMYK, RGB-coded (Adobe transform 0), grey or 4:2:2 tiles are decoded
and re-encoded like edge tiles. Only headers and the last two bytes of each tile are read, so
the plan is cheap enough for the stitch step to compute it and skip decoding those tiles.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dezoom_steps import tilemodes
from dezoom_steps.jsonio import read_step_json

HEAD_BYTES = 8192  # first read of a tile; more when its headers (ICC, EXIF) run past it
SOF_HUFFMAN = (0xC0, 0xC1)  # baseline, extended sequential Huffman
STANDALONE = set(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: markers without a length
NOT_BEFORE_SCAN = frozenset(STANDALONE | {0x00, 0xD8, 0xD9})  # markers no JPEG has before its scan
SAMPLINGS = ((2, 2), (1, 1))  # 4:2:0 and 4:4:4, the layouts every TIFF reader decodes
EOI = b"\xff\xd9"
HELD_BYTES = 64 << 20  # tile bytes a download may hand to the TIFF writer in memory (StoredTiles)


@dataclass(frozen=True)
class JpegHeader:
    """What the passthrough needs from a JPEG's headers."""

    sof: int
    precision: int
    width: int
    height: int
    components: tuple[tuple[int, int, int], ...]  # (id, h sampling, v sampling)
    adobe_transform: int | None = None

    def subsampling(self) -> tuple[int, int] | None:
        """The TIFF YCbCrSubSampling of this YCbCr JPEG, or None when it cannot be passed through."""
        if self.sof not in SOF_HUFFMAN or self.precision != 8 or len(self.components) != 3:
            return None
        if self.adobe_transform == 0 or tuple(c[0] for c in self.components) == (82, 71, 66):
            return None  # components stored as R, G, B, not YCbCr
        (_, yh, yv), (_, cbh, cbv), (_, crh, crv) = self.components
        if (cbh, cbv, crh, crv) != (1, 1, 1, 1) or (yh, yv) not in SAMPLINGS:
            return None
        return yh, yv


class NeedMore(Exception):
    """The headers run past the bytes read so far."""


TileFacts = tuple[JpegHeader | None, int | None, int]  # (header, tilemodes kind, size) of a cached tile


def parse_header(data: bytes) -> JpegHeader | None:
    """The frame header of a JPEG read from its start to the start of scan; None if it is not valid.

    Raises NeedMore when `data` ends before the start of scan.
    """
    return _parse_header(data)[0]


def _parse_header(data: bytes) -> tuple[JpegHeader | None, int]:
    """`parse_header`, and where its start-of-scan segment ends (0 when the header is not valid):
    the result depends on `data` up to there only."""
    if not data.startswith(b"\xff\xd8"):
        return None, 0
    n, sof_markers = len(data), tilemodes.SOF_MARKERS
    pos, frame, adobe = 2, None, None
    while True:
        if pos + 2 > n:
            raise NeedMore
        if data[pos] != 0xFF:
            return None, 0
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in NOT_BEFORE_SCAN:
            return None, 0  # no such marker belongs before the scan
        if pos + 4 > n:
            raise NeedMore
        length = data[pos + 2] << 8 | data[pos + 3]  # big-endian, as struct's ">H"
        if length < 2:
            return None, 0
        end = pos + 2 + length
        if end > n:
            raise NeedMore
        if marker in sof_markers:  # only the segments read are copied out (thousands of tiles)
            body = data[pos + 4:end]
            if frame is not None or len(body) < 6:
                return None, 0
            precision, height, width, count = struct.unpack_from(">BHHB", body)
            if len(body) < 6 + 3 * count:
                return None, 0
            comps = tuple((body[6 + 3 * i], body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(count))
            frame = (marker, precision, width, height, comps)
        elif marker == 0xEE:
            body = data[pos + 4:end]
            if body.startswith(b"Adobe") and len(body) >= 12:
                adobe = body[11]
        elif marker == 0xDA:
            if frame is None:
                return None, 0
            return JpegHeader(*frame, adobe_transform=adobe), end
        pos = end


def read_tile_header(path: str | os.PathLike[str]) -> tuple[JpegHeader | None, int | None]:
    """(JPEG header if the file is a complete JPEG, else None; tilemodes kind) of a cached tile.

    Plain system calls (open, read, fstat, close; a pread of the last two bytes only for tiles
    larger than HEAD_BYTES): the plan reads every tile of the level, thousands of them.
    """
    header, kind, _size = _read_tile(path)
    return header, kind


def _read_tile(path: str | os.PathLike[str], memo: dict[bytes, JpegHeader] | None = None) -> TileFacts:
    """`read_tile_header` and the file's size in bytes (0 when it cannot be read).

    `memo` maps headers already parsed (their bytes up to the end of the start-of-scan segment)
    to their result: the tiles of one server mostly share a handful of headers.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None, None, 0
    try:
        head = os.read(fd, HEAD_BYTES)
        size = os.fstat(fd).st_size
        return _judge(head, size, lambda: _read_to_end(fd), lambda: os.pread(fd, 2, max(0, size - 2)), memo)
    except OSError:
        return None, None, 0
    finally:
        os.close(fd)


def tile_facts(data: bytes, memo: dict[bytes, JpegHeader] | None = None) -> TileFacts:
    """What `_read_tile` says of a cached tile whose bytes are `data`, without reading the file:
    the download hands the plan the facts of the tiles it has just stored."""
    return _judge(data[:HEAD_BYTES], len(data), lambda: data[HEAD_BYTES:], lambda: data[-2:], memo)


class StoredTiles:
    """What a download noted of the tiles it stored: each one's `tile_facts`, and the bytes of the
    first ones up to `budget` bytes, which the TIFF writer then copies without reading the cache
    (issue 7: the copy of 9,322 tiles read back took 0.28 s of the TIFF's time, 0.21 s held)."""

    def __init__(self, budget: int = HELD_BYTES):
        self.facts: dict[str, TileFacts] = {}
        self.data: dict[str, bytes] = {}
        self.budget = budget
        self._memo: dict[bytes, JpegHeader] = {}

    def note(self, key: str, data: bytes) -> None:
        """The tile stored under cache key `key` has the bytes `data`."""
        self.facts[key] = tile_facts(data, self._memo)
        if len(data) <= self.budget:
            self.data[key] = data
            self.budget -= len(data)


def _judge(head: bytes, size: int, rest: Callable[[], bytes], tail_of: Callable[[], bytes],
           memo: dict[bytes, JpegHeader] | None) -> TileFacts:
    """(header, kind, size) of a tile of `size` bytes from its first bytes `head`; `rest()` gives
    the bytes after `head`, `tail_of()` its last two (each asked only when needed)."""
    try:
        header = _memo_parse(head, memo) if memo is not None else parse_header(head)
    except NeedMore:
        head += rest()
        try:
            header = parse_header(head)
        except NeedMore:
            header = None
    # the bytes read so far are the file from its start: its end is among them when it is short
    tail = head[max(0, size - 2):size] if len(head) >= size else tail_of()
    if header is not None:  # the frame header just parsed says it: no second parse
        kind = tilemodes.GREY if len(header.components) == 1 else tilemodes.RGB
    else:
        try:
            kind = tilemodes.tile_kind(head)
        except tilemodes.NeedMore:
            kind = None
    if header is not None and tail != EOI:
        header = None
    return header, kind, size


def _memo_parse(head: bytes, memo: dict[bytes, JpegHeader]) -> JpegHeader | None:
    """`parse_header(head)` looked up in `memo` by the bytes up to the first start-of-scan segment."""
    key = None
    sos = head.find(b"\xff\xda")
    if 0 < sos and sos + 4 <= len(head):
        end = sos + 4 + (head[sos + 2] << 8 | head[sos + 3]) - 2
        key = head[:end] if end <= len(head) else None
        if key is not None and key in memo:
            return memo[key]
    header, end = _parse_header(head)
    if header is not None and key is not None and end == len(key):  # that start of scan was the real one
        memo[key] = header
    return header


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a cached tile (plain system calls: a thousand tiles a TIFF, each a few KB)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 1 << 16)
        return data if len(data) < 1 << 16 else data + _read_to_end(fd)
    finally:
        os.close(fd)


def _read_to_end(fd: int) -> bytes:
    """The rest of the open file `fd`, from its current offset."""
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class Plan:
    """The JPEG passthrough of one level: grid tile size, shared subsampling, tiles to copy."""

    tile_w: int
    tile_h: int
    subsampling: tuple[int, int]
    width: int
    height: int
    # (col, row) of the TIFF tile grid -> cached file of the server tile copied there
    tiles: dict[tuple[int, int], str | Path] = field(default_factory=dict)
    indices: set[int] = field(default_factory=set)
    any_tile: str | Path | None = None  # one passed tile: its quantization tables serve the re-encodes
    copied_bytes: int | None = None  # the passed tiles' total size when planning read it (else stat'ed)
    held: dict[str | Path, bytes] = field(default_factory=dict)  # bytes of copied tiles already in memory

    def tile_bytes(self, path: str | Path) -> bytes:
        """The bytes of the copied tile at `path`: from memory, once (then released), else from the cache."""
        data = self.held.pop(path, None)
        return data if data is not None else read_file(path)

    def to_json(self) -> dict[str, Any]:
        """What stitch.json records of the plan, for the encode step (`plan_from_json`)."""
        return {"tile": [self.tile_w, self.tile_h], "subsampling": list(self.subsampling),
                "indices": sorted(self.indices)}

    @property
    def cols(self) -> int:
        """TIFF tile columns."""
        return -(-self.width // self.tile_w)

    @property
    def rows(self) -> int:
        """TIFF tile rows."""
        return -(-self.height // self.tile_h)


def grid_tile_size(doc: dict[str, Any]) -> tuple[int, int] | None:
    """(tile width, tile height) when the tiles of tiles.json form a regular grid with no overlap."""
    level = doc["level"]
    tw, th = level.get("tile_width"), level.get("tile_height")
    if not tw or not th or level.get("overlap", 0):
        return None
    seen: set[tuple[int, int]] = set()
    for t in doc["tiles"]:
        if t["crop_x"] or t["crop_y"] or t["x"] % tw or t["y"] % th or t["w"] > tw or t["h"] > th:
            return None
        cell = (t["x"] // tw, t["y"] // th)
        if cell in seen:
            return None
        seen.add(cell)
    return tw, th


def plan_passthrough(doc: dict[str, Any], cache_dir: Path, stored: StoredTiles | None = None) -> Plan | None:
    """The passthrough plan of tiles.json `doc` with its tiles in `cache_dir`; None when no tile qualifies.

    `stored`: what the download that stored tiles noted of them (their facts, some of their
    bytes, which the plan takes over for the tiles it copies); the other tiles are read from the cache.

    None also when the canvas would not be RGB (a tile with alpha, or only grey tiles): the
    TIFF then cannot be a YCbCr JPEG TIFF.
    """
    size = grid_tile_size(doc)
    if size is None:
        return None
    tw, th = size
    width, height = doc["canvas"]["width"], doc["canvas"]["height"]
    candidates: dict[tuple[int, int], list[tuple[dict[str, Any], str, int]]] = {s: [] for s in SAMPLINGS}
    kinds: list[int | None] = []
    tiles = [t for t in doc["tiles"] if t["x"] < width and t["y"] < height]
    folder = os.path.join(os.fspath(cache_dir), "")  # strings: thousands of Path objects cost 0.05 s
    paths = [folder + t["key"] for t in tiles]  # = cache.tile_path (keys are hex digits)
    memo: dict[bytes, JpegHeader] = {}
    known = stored.facts if stored is not None else {}
    # threads measured slower: short system calls
    headers = [known.get(t["key"]) or _read_tile(path, memo) for t, path in zip(tiles, paths)]
    for t, path, (header, kind, nbytes) in zip(tiles, paths, headers):
        kinds.append(kind)
        full = t["w"] == tw and t["h"] == th and t["x"] + tw <= width and t["y"] + th <= height
        if header is None or not full or (header.width, header.height) != (tw, th):
            continue
        sub = header.subsampling()
        if sub is not None and tw % (8 * sub[0]) == 0 and th % (8 * sub[1]) == 0:
            candidates[sub].append((t, path, nbytes))
    if tilemodes.canvas_channels(kinds) != tilemodes.RGB:
        return None
    sub = max(SAMPLINGS, key=lambda s: len(candidates[s]))  # ties go to 4:2:0, listed first
    chosen = candidates[sub]
    if not chosen:
        return None
    plan = Plan(tw, th, sub, width, height, any_tile=chosen[0][1], copied_bytes=sum(c[2] for c in chosen))
    held = stored.data if stored is not None else {}
    for t, path, _ in chosen:
        plan.tiles[(t["x"] // tw, t["y"] // th)] = path
        plan.indices.add(t["index"])
        data = held.get(t["key"])
        if data is not None:
            plan.held[path] = data
    held.clear()  # the tiles the plan does not copy are read from the canvas, not from here
    return plan


def plan_from_json(doc: dict[str, Any], cache_dir: Path, data: dict[str, Any]) -> Plan | None:
    """The plan stitch recorded (`Plan.to_json`), rebuilt without reading the tiles again."""
    indices = set(data["indices"])
    if not indices:
        return None
    tw, th = data["tile"]
    width, height = doc["canvas"]["width"], doc["canvas"]["height"]
    plan = Plan(tw, th, tuple(data["subsampling"]), width, height)
    folder = os.path.join(os.fspath(cache_dir), "")
    for t in doc["tiles"]:
        if t["index"] in indices:
            path = folder + t["key"]  # a string: thousands of Path objects cost 0.1 s
            plan.tiles[(t["x"] // tw, t["y"] // th)] = path
            plan.indices.add(t["index"])
            plan.any_tile = plan.any_tile or path
    return plan


def is_tiff_output(output: str | os.PathLike[str] | None) -> bool:
    """True when `output` names a TIFF file (by extension)."""
    return output is not None and Path(output).suffix.lower() in (".tif", ".tiff")


def stitch_plan_applies(output: str | os.PathLike[str] | None, tiff_compression: str = "jpeg") -> bool:
    """True when `output` is a TIFF written with JPEG compression: the outputs with a passthrough plan."""
    return is_tiff_output(output) and tiff_compression == "jpeg"


def stitch_plan(tiles_json: Path, cache_dir: Path, output: str | os.PathLike[str] | None,
                tiff_compression: str = "jpeg", *, tiles_doc: dict[str, Any] | None = None,
                stored: StoredTiles | None = None) -> Plan | None:
    """The passthrough plan when `output` is a TIFF written with JPEG compression, else None.

    Its tiles are those the stitch step need not decode: the TIFF writer copies them as they are.
    `tiles_doc`: tiles.json already read (in-process callers), else it is read from `tiles_json`;
    `stored`: what this process noted of the tiles it just stored (see `plan_passthrough`).
    """
    if not stitch_plan_applies(output, tiff_compression):
        return None
    doc = tiles_doc if tiles_doc is not None else read_step_json(tiles_json, "tiles")
    return plan_passthrough(doc, Path(cache_dir), stored)


def stitch_skip(tiles_json: Path, cache_dir: Path, output: str | os.PathLike[str] | None,
                tiff_compression: str = "jpeg") -> set[int]:
    """Tile indices the stitch step need not decode (those of `stitch_plan`); empty when there is none."""
    plan = stitch_plan(tiles_json, cache_dir, output, tiff_compression)
    return plan.indices if plan is not None else set()
