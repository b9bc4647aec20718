#!/usr/bin/env python3
"""Benchmark of issue 5: our stitching and encoding against libvips and Pillow on the same tiles.

    python3 bench/bench_outputs.py                        # 400 MP and 2.5 GP, PNG, JPEG and TIFF
    python3 bench/bench_outputs.py --sizes 4000           # a quick look (16 MP)
    python3 bench/bench_outputs.py --sizes 20000 --formats png,tif --tools ours,vips

Test tiles (made once, then reused: the command is idempotent) live in a cache folder outside
the repository, `--data DIR` (default: dezoom-bench-outputs in the temporary folder, $TMPDIR):
  side-20000/  a synthetic photo-like 20000x20000 image made with libvips (1/f luminance from
               Perlin octaves, hard-edged blobs, mid-frequency texture, smooth chroma, grain),
               cut by libvips' dzsave into a DeepZoom pyramid of 256 px JPEG tiles, no overlap,
               `.jpg[Q=85]` (libjpeg-turbo, 4:2:0): 79 x 79 = 6241 tiles at full resolution;
  side-50000/  50000x50000 = 2.5 GP, 196 x 196 = 38416 tiles: the interior tiles are hard links to
               the full 256 px tiles of side-20000 (repeating its 78 x 78 interior), the 391
               edge tiles (80 px) are crops of them re-encoded at Q85, as a server sends them.
               Only the full-resolution level exists.
Any side up to --source-side (20000) is generated directly; larger sides are built from it.
Each set also holds tiles.json (the project's resolve + list_tiles steps run on its .dzi) and
cache/ (the tiles hard-linked under their cache keys, dezoom_steps/cache.py), so our steps
read the tiles as after a download.

Then, per size and output format, every contender runs in a child process of its own, and
the child's peak RSS and CPU time come from os.wait4 (its rusage, as RUSAGE_CHILDREN would
give once it is reaped); the child times its own work (imports excluded):
  ours    as the pipeline runs them: PNG and JPEG by dezoom_steps.steps.render.render (tiles
          straight into the encoder; default compression 5: PNG deflate fast tier with the Up
          filter, JPEG Q95 4:2:0); TIFF by the passthrough plan, stitch, then encode, timed
          separately and together (JPEG, the server's tiles copied as they are) with pyramid
          levels and without, and for context re-encoded from the canvas (no tile cache);
  vips    pyvips: every tile file opened, `arrayjoin` (the inverse of dzsave), cropped to the
          image, saved: PNG at compression 1 with the Up filter (the comparable setting) and at
          libvips' defaults (compression 6, no filter; slow, so only up to 400 MP unless
          --vips-png-default always), JPEG Q95 4:2:0, tiled TIFF (256 px JPEG Q85 like the
          tiles, SubIFD pyramid and flat);
  pillow  Image.new + paste of every tile, then save (PNG compress_level 1, JPEG Q95 4:2:0,
          strip TIFF with JPEG Q85; Pillow cannot write tiles). Skipped above 1 GP
          (--pillow-max-mp: at 2.5 GP it holds 10 GB) or when it would not fit in memory.
Targets (issue 5): PNG at least 3x libvips' throughput with at most a fifth of its peak RSS;
TIFF passthrough at least 20x libvips tiffsave; JPEG at least libvips' throughput.

Results: bench/results/outputs-<date>-<sizes>.json and .md (machine, versions, load average
sampled through the run, how much CPU other processes took during each run), and the table
printed. Options: --data DIR, --sizes 20000,50000 (or 400mp,2.5gp), --formats png,jpg,tif,
--tools ours,vips,pillow, --verify / --no-verify (compare two tile rows of every output with
the tiles decoded by Pillow; default on up to 400 MP), --vips-png-default auto|always|never,
--pillow-max-mp N, --prepare-only (make the tiles and stop), --keep-outputs, --output PREFIX,
--render JSON (the tables of an earlier result again). Exit status 1 when a run failed or an
output was wrong (the JSON says which).
Needs pyvips (PyPI; the libvips library from Debian's libvips42 / libvips-tools).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from machine import machine_facts  # noqa: E402

SCHEMA = "dezoom-steps/bench-outputs/1"
TILE = 256
TILE_QUALITY = 85
SOURCE_SIDE = 20000
SIZE_ALIASES = {"400mp": 20000, "2.5gp": 50000}
DEFAULT_SIZES = "400mp,2.5gp"
COMPRESSION = 5  # our default: PNG fast deflate tier + Up filter, JPEG quality 100 - 5 = 95
JPEG_Q = 95
PNG_UP = 0x20  # VipsForeignPngFilter UP
PILLOW_BYTES_PER_PIXEL = 7  # Image.new RGB (4 B/px) + what save() holds on top (measured 2.7 GB at 400 MP)
VERIFY_MAX_PIXELS = 400_000_000
MB = 1e6
RESULT_MARK = "BENCH-RESULT "
RUSAGE_MARK = "BENCH-RUSAGE "
MACHINE_NOTE = ("the machine may be shared with other work: see the load average and the CPU time other "
                "processes took (others' cores) next to each figure")

# Issue 5 targets.
PNG_SPEEDUP, PNG_RSS_FRACTION, TIFF_SPEEDUP, JPEG_SPEEDUP = 3.0, 0.2, 20.0, 1.0


# ------------------------------------------------------------------ the contenders

@dataclass(frozen=True)
class Variant:
    """One measured run: which tool writes which format with which settings."""

    tool: str  # ours | vips | pillow
    fmt: str  # png | jpg | tif
    name: str  # short label of the settings
    settings: str  # what the settings are, for the table
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A unique label of this variant."""
        return f"{self.tool}-{self.fmt}-{self.name}"


VARIANTS = [
    Variant("ours", "png", "default", "compression 5 (deflate fast tier, Up filter)"),
    Variant("vips", "png", "c1-up", "pngsave compression=1 filter=up",
            {"save": "pngsave", "compression": 1, "filter": PNG_UP}),
    Variant("vips", "png", "default", "pngsave defaults (compression 6, no filter)", {"save": "pngsave"}),
    Variant("pillow", "png", "c1", "save compress_level=1", {"compress_level": 1}),
    Variant("ours", "jpg", "default", "compression 5 (Q95, 4:2:0, RST strips)"),
    Variant("vips", "jpg", "q95", "jpegsave Q=95 subsample_mode=on",
            {"save": "jpegsave", "Q": JPEG_Q, "subsample_mode": "on"}),
    Variant("pillow", "jpg", "q95", "save quality=95 subsampling=4:2:0", {"quality": JPEG_Q, "subsampling": 2}),
    Variant("ours", "tif", "pyramid", "jpeg, passthrough, pyramid", {"pyramid": True, "passthrough": True}),
    Variant("ours", "tif", "flat", "jpeg, passthrough, no pyramid", {"pyramid": False, "passthrough": True}),
    Variant("ours", "tif", "reencode", "jpeg Q95 re-encoded from the canvas, no pyramid",
            {"pyramid": False, "passthrough": False}),
    Variant("vips", "tif", "pyramid", f"tiffsave jpeg Q={TILE_QUALITY} tile 256 pyramid subifd",
            {"save": "tiffsave", "compression": "jpeg", "Q": TILE_QUALITY, "tile": True, "tile_width": TILE,
             "tile_height": TILE, "pyramid": True, "subifd": True}),
    Variant("vips", "tif", "flat", f"tiffsave jpeg Q={TILE_QUALITY} tile 256",
            {"save": "tiffsave", "compression": "jpeg", "Q": TILE_QUALITY, "tile": True, "tile_width": TILE,
             "tile_height": TILE}),
    Variant("pillow", "tif", "jpeg", f"save compression=jpeg quality={TILE_QUALITY} (strips)",
            {"compression": "jpeg", "quality": TILE_QUALITY}),
]
# ours variant -> the libvips variant it is compared with, and the target of the comparison
COMPARE = {
    "ours-png-default": ("vips-png-c1-up", "png"),
    "ours-jpg-default": ("vips-jpg-q95", "jpg"),
    "ours-tif-flat": ("vips-tif-flat", "tif"),
    "ours-tif-pyramid": ("vips-tif-pyramid", "tif"),
    "ours-tif-reencode": ("vips-tif-flat", None),
}


# ------------------------------------------------------------------ test data

def side_of(text: str) -> int:
    """A size option: a side in pixels, or an alias (400mp, 2.5gp)."""
    text = text.strip().lower()
    if text in SIZE_ALIASES:
        return SIZE_ALIASES[text]
    if not text.isdigit() or int(text) < TILE:
        raise argparse.ArgumentTypeError(f"size {text!r}: a side in pixels (>= {TILE}) or one of "
                                         f"{', '.join(SIZE_ALIASES)}")
    return int(text)


def size_label(side: int) -> str:
    """400mp, 2.5gp, 16mp... for a square side."""
    pixels = side * side
    return f"{pixels / 1e9:g}gp" if pixels >= 1e9 else f"{pixels / 1e6:g}mp"


def photo_like(side: int, seed: int = 7) -> Any:
    """A lazy libvips image, side x side sRGB uchar, with the statistics of a photo (perf-notes §1).

    Low frequencies (Perlin octaves of 128-4096 px with amplitude ~ wavelength^0.9, close to a
    1/f spectrum, and smooth chroma) are made at 1/16 scale and enlarged; mid-frequency texture
    (8-64 px octaves), hard-edged discs (Worley cells) and grain are made at full size.
    """
    import pyvips

    lo = 16
    lw, lh = -(-side // lo), -(-side // lo)
    cells = [4096, 2048, 1024, 512, 256, 128]
    low = sum((pyvips.Image.perlin(lw, lh, cell_size=c // lo, seed=seed + i) * c ** 0.9
               for i, c in enumerate(cells)), pyvips.Image.black(lw, lh))
    chroma = [pyvips.Image.perlin(lw, lh, cell_size=1500 // lo, seed=seed + 20),
              pyvips.Image.perlin(lw, lh, cell_size=1100 // lo, seed=seed + 21)]
    big = low.bandjoin(chroma).resize(lo, kernel="linear").crop(0, 0, side, side)
    norm = sum(c ** 0.9 for c in cells)
    texture = sum((pyvips.Image.perlin(side, side, cell_size=c, seed=seed + 10 + i) * c ** 0.9
                   for i, c in enumerate([64, 32, 16, 8])), pyvips.Image.black(side, side))
    blobs = (pyvips.Image.worley(side, side, cell_size=700, seed=seed + 30) < 120).ifthenelse(1.0, 0.0)
    grain = pyvips.Image.gaussnoise(side, side, sigma=3, mean=0, seed=seed + 40)
    lum = 52 + 132 * big[0] / norm + texture * 0.5 + 18 * blobs + grain
    lab = lum.bandjoin([big[1] * 32 + 6 * blobs, big[2] * 32 - 8 * blobs]).copy(interpretation="lab")
    return lab.colourspace("srgb").cast("uchar")


def dzi_xml(side: int) -> str:
    """The .dzi document of a side x side DeepZoom image of 256 px JPEG tiles, no overlap."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="jpg" Overlap="0" '
            f'TileSize="{TILE}"><Size Width="{side}" Height="{side}"/></Image>\n')


def top_level(side: int) -> int:
    """The DeepZoom level number of the full resolution."""
    return (side - 1).bit_length()


def generate_direct(folder: Path, side: int) -> str:
    """Make `folder`/image.dzi + image_files/ with libvips dzsave; returns how it was made."""
    photo_like(side).dzsave(str(folder / "image"), tile_size=TILE, overlap=0, suffix=f".jpg[Q={TILE_QUALITY}]")
    return (f"libvips synthetic photo-like {side}x{side}, dzsave tile_size={TILE} overlap=0 "
            f"suffix=.jpg[Q={TILE_QUALITY}]")


def generate_from(folder: Path, side: int, source: Path, source_side: int) -> str:
    """Make a side x side DeepZoom level from the full tiles of `source` (hard links) plus cropped edges."""
    from PIL import Image

    src_dir = source / "image_files" / str(top_level(source_side))
    full = source_side // TILE  # full-size tile columns (and rows) of the source
    if full < 1:
        raise SystemExit(f"bench: the {source_side} px source has no full {TILE} px tile")
    cols = -(-side // TILE)
    edge = side - (cols - 1) * TILE
    out_dir = folder / "image_files" / str(top_level(side))
    out_dir.mkdir(parents=True)
    for r in range(cols):
        for c in range(cols):
            src = src_dir / f"{c % full}_{r % full}.jpg"
            dst = out_dir / f"{c}_{r}.jpg"
            w = edge if c == cols - 1 else TILE
            h = edge if r == cols - 1 else TILE
            if (w, h) == (TILE, TILE):
                os.link(src, dst)
            else:
                with Image.open(src) as im:
                    im.crop((0, 0, w, h)).save(dst, quality=TILE_QUALITY, subsampling=2)
    (folder / "image.dzi").write_text(dzi_xml(side))
    return (f"{cols}x{cols} tiles: full tiles hard-linked from the {source_side} px set "
            f"(its {full}x{full} interior repeated), {2 * cols - 1} edge tiles of {edge} px cropped "
            f"and re-encoded at Q{TILE_QUALITY} (Pillow)")


def list_and_cache(folder: Path) -> dict[str, Any]:
    """Run resolve + list_tiles on the set's .dzi, hard-link the tiles into cache/, write layout.json."""
    from dezoom_steps.cache import tile_path
    from dezoom_steps.steps.list_tiles import list_tiles
    from dezoom_steps.steps.resolve import resolve
    from dezoom_steps.urls import file_url_path, normalize_input

    resolve(url=normalize_input(str(folder / "image.dzi")), output=folder / "resolve.json", dezoomer="deepzoom")
    doc = list_tiles(resolve_json=folder / "resolve.json", output=folder / "tiles.json", image="bench")
    cache = folder / "cache"
    cache.mkdir()
    rows, total = [], 0
    for t in doc["tiles"]:
        path = file_url_path(t["url"])
        os.link(path, tile_path(cache, t["key"]))
        total += path.stat().st_size
        rows.append([path.relative_to(folder).as_posix(), t["x"], t["y"]])
    width, height = doc["canvas"]["width"], doc["canvas"]["height"]
    cols = len({x for _, x, _ in rows})
    layout = {"width": width, "height": height, "cols": cols, "rows": len(rows) // cols, "tiles": rows}
    (folder / "layout.json").write_text(json.dumps(layout))
    return {"tiles": len(rows), "tile_bytes": total, "bits_per_pixel": round(total * 8 / (width * height), 2)}


def tiles_json_current(folder: Path) -> bool:
    """True when the set's tiles.json passes the current tiles schema (and its cache exists)."""
    from dezoom_steps.jsonio import read_step_json

    try:
        read_step_json(folder / "tiles.json", "tiles")
    except Exception:  # missing, unreadable or against an older schema
        return False
    return (folder / "cache").is_dir() and (folder / "layout.json").exists()


def ensure_data(data: Path, side: int, source_side: int) -> dict[str, Any]:
    """The test set of `side` under `data`, made if missing (built in a temporary folder, then renamed)."""
    folder = data / f"side-{side}"
    ready = folder / "ready.json"
    if ready.exists():
        facts = json.loads(ready.read_text())
        if not tiles_json_current(folder):  # made by an older list_tiles: list the same tiles again
            print(f"bench: listing the tiles of {folder} again (tiles.json no longer valid)", file=sys.stderr)
            for name in ("resolve.json", "tiles.json", "layout.json"):
                (folder / name).unlink(missing_ok=True)
            shutil.rmtree(folder / "cache", ignore_errors=True)
            facts.update(list_and_cache(folder))
            write_atomic(ready, json.dumps(facts, indent=1) + "\n")
        return facts
    source = None
    if side > source_side:
        source = data / f"side-{source_side}"
        ensure_data(data, source_side, source_side)
    else:  # sets built from this one by hard links would keep the old tiles: make them again too
        for other in data.glob("side-*/ready.json"):
            if json.loads(other.read_text()).get("source_side") == side:
                shutil.rmtree(other.parent)
    tmp = data / f".side-{side}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"bench: making the {side}x{side} test tiles in {folder} (once)", file=sys.stderr)
    start = time.perf_counter()
    how = generate_direct(tmp, side) if source is None else generate_from(tmp, side, source, source_side)
    facts = {"side": side, "made_by": how, "source_side": source_side if source else None, "seconds": 0.0}
    # list_tiles must see the final paths (tile URLs are file: URLs), so rename first.
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    facts.update(list_and_cache(folder))
    facts["seconds"] = round(time.perf_counter() - start, 1)
    ready.write_text(json.dumps(facts, indent=1) + "\n")
    return facts


def warm_page_cache(folder: Path) -> None:
    """Read every tile file once (untimed) so that no contender pays for the disk."""
    layout = json.loads((folder / "layout.json").read_text())
    for rel, _, _ in layout["tiles"]:
        with open(folder / rel, "rb") as f:
            while f.read(1 << 20):
                pass


# ------------------------------------------------------------------ children (the measured processes)

def maxrss_mb() -> float:
    """This process's peak RSS so far, MB (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def passthrough_plan(spec: dict[str, Any], output: Path, notes: list[str]) -> dict[str, Any] | None:
    """The TIFF passthrough plan stitch records for the encoder (tiles it need not decode), as the step script makes it."""
    from dezoom_steps.encoders.tiff_passthrough import stitch_plan

    plan = stitch_plan(Path(spec["tiles_json"]), Path(spec["cache"]), output, "jpeg")
    if plan is None:
        notes.append("no passthrough plan: stitch decodes every tile")
    return plan.to_json() if plan is not None else None


def child_ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Ours as the pipeline runs it: render (stitch straight into the encoder) for PNG and JPEG;
    for TIFF the stitch step (with the passthrough plan) then the encode step, timed separately."""
    from dezoom_steps.steps.encode import encode
    from dezoom_steps.steps.render import render
    from dezoom_steps.steps.stitch import stitch

    opts, work, notes = spec["options"], Path(spec["work"]), []
    rss_imports = maxrss_mb()
    out, canvas = work / f"out.{spec['fmt']}", work / "canvas.tif"
    tiles_json, cache = Path(spec["tiles_json"]), Path(spec["cache"])
    t0 = time.perf_counter()
    if spec["fmt"] != "tif":
        sidecar = render(tiles_json=tiles_json, cache_dir=cache, output=out, report=work / "stitch.json",
                         compression=COMPRESSION, overwrite=True)
        t3 = time.perf_counter()
        stitched = json.loads((work / "stitch.json").read_text())
        return {"work_s": t3 - t0, "plan_s": 0.0, "stitch_s": None, "encode_s": None,
                "rss_after_imports_mb": rss_imports, "output": str(out), "notes": ["render: one pass"],
                "placed": stitched.get("placed"), "tiles_not_decoded": 0,
                "missing": len(stitched.get("missing", [])), "complete": sidecar.get("complete"), "tiff": None}
    plan = passthrough_plan(spec, out, notes) if opts.get("passthrough") else None
    t1 = time.perf_counter()
    stitched = stitch(tiles_json=tiles_json, cache_dir=cache, canvas=canvas, report=work / "stitch.json",
                      passthrough=plan)
    t2 = time.perf_counter()
    sidecar = encode(tiles_json=tiles_json, stitch_json=work / "stitch.json", canvas=canvas, output=out,
                     compression=COMPRESSION, overwrite=True, tiff_compression="jpeg",
                     tiff_pyramid=bool(opts.get("pyramid")), cache_dir=cache if opts.get("passthrough") else None)
    t3 = time.perf_counter()
    canvas.unlink(missing_ok=True)
    return {"work_s": t3 - t0, "plan_s": t1 - t0, "stitch_s": t2 - t1, "encode_s": t3 - t2,
            "rss_after_imports_mb": rss_imports, "output": str(out), "notes": notes,
            "placed": stitched.get("placed"), "tiles_not_decoded": stitched.get("skipped", 0),
            "missing": len(stitched.get("missing", [])), "complete": sidecar.get("complete"),
            "tiff": sidecar.get("tiff")}


def child_vips(spec: dict[str, Any]) -> dict[str, Any]:
    """pyvips: open every tile file, arrayjoin, crop to the image, save."""
    import pyvips

    opts = dict(spec["options"])
    save = opts.pop("save")
    layout = json.loads(Path(spec["layout"]).read_text())
    folder, out = Path(spec["layout"]).parent, Path(spec["work"]) / f"out.{spec['fmt']}"
    rss_imports = maxrss_mb()
    t0 = time.perf_counter()
    images = [pyvips.Image.new_from_file(str(folder / rel)) for rel, _, _ in layout["tiles"]]
    joined = pyvips.Image.arrayjoin(images, across=layout["cols"])
    if (joined.width, joined.height) != (layout["width"], layout["height"]):
        joined = joined.crop(0, 0, layout["width"], layout["height"])  # edge tiles are smaller
    t1 = time.perf_counter()
    getattr(joined, save)(str(out), **opts)
    t2 = time.perf_counter()
    return {"work_s": t2 - t0, "open_s": t1 - t0, "save_s": t2 - t1, "rss_after_imports_mb": rss_imports,
            "output": str(out), "notes": [], "libvips": pyvips.version(0) * 100 + pyvips.version(1)}


def child_pillow(spec: dict[str, Any]) -> dict[str, Any]:
    """Pillow: paste every tile into Image.new, then save the whole image."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    layout = json.loads(Path(spec["layout"]).read_text())
    folder, out = Path(spec["layout"]).parent, Path(spec["work"]) / f"out.{spec['fmt']}"
    rss_imports = maxrss_mb()
    t0 = time.perf_counter()
    canvas = Image.new("RGB", (layout["width"], layout["height"]))
    for rel, x, y in layout["tiles"]:
        with Image.open(folder / rel) as tile:
            canvas.paste(tile, (x, y))
    t1 = time.perf_counter()
    fmt = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF"}[spec["fmt"]]
    canvas.save(out, fmt, **spec["options"])
    t2 = time.perf_counter()
    return {"work_s": t2 - t0, "paste_s": t1 - t0, "save_s": t2 - t1, "rss_after_imports_mb": rss_imports,
            "output": str(out), "notes": []}


CHILDREN = {"ours": child_ours, "vips": child_vips, "pillow": child_pillow}


def child_main(spec_json: str) -> int:
    """Entry point of a measured child: run one variant, print its result line."""
    spec = json.loads(spec_json)
    result = CHILDREN[spec["tool"]](spec)
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------ measuring from the parent

class LoadSampler:
    """Samples the 1-minute load average every few seconds in a background thread."""

    def __init__(self, every: float = 5.0):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        """Sample until stopped."""
        while True:
            self.samples.append((time.time(), os.getloadavg()[0]))
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any]:
        """min / mean / max of load1 and the share of samples above 1.5."""
        loads = [s for _, s in self.samples] or [os.getloadavg()[0]]
        return {"load1_min": round(min(loads), 2), "load1_mean": round(sum(loads) / len(loads), 2),
                "load1_max": round(max(loads), 2),
                "share_above_1_5": round(sum(x > 1.5 for x in loads) / len(loads), 2),
                "samples": len(loads), "every_s": self.every}


def busy_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat, not idle nor iowait)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def scrub_paths(text: str) -> str:
    """`text` with file paths cut to their file names (results must not name this machine's folders)."""
    return re.sub(r"(?:/[^/\s\"'|:,]+)+/([^/\s\"'|:,]+)", r"\1", text)


def launcher_main(spec_json: str) -> int:
    """A small process that starts the measured child and reports its rusage (RUSAGE_CHILDREN).

    Linux carries a parent's peak RSS into a child it forks (and through exec), so the bench's
    own memory (numpy, pyvips, checks) would become every child's floor; this launcher holds
    only a bare interpreter when it forks.
    """
    import resource

    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), "--child", spec_json])
    _, status = os.waitpid(pid, 0)
    wall = time.perf_counter() - start
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(RUSAGE_MARK + json.dumps({"exit_code": os.waitstatus_to_exitcode(status), "wall_s": wall,
                                    "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "maxrss_kb": ru.ru_maxrss}),
          flush=True)
    return 0


def measure_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one child through the launcher: its result, wall time, peak RSS and CPU time, the others' load."""
    cmd = [sys.executable, "-S", str(Path(__file__).resolve()), "--launch", json.dumps(spec)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        busy0, load0, start = busy_cpu_seconds(), os.getloadavg()[0], time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the launcher's session: the launcher and the child it started
            proc.wait()
        busy1, load1, window = busy_cpu_seconds(), os.getloadavg()[0], time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    usage = [json.loads(ln[len(RUSAGE_MARK):]) for ln in stdout.splitlines() if ln.startswith(RUSAGE_MARK)]
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if not usage:
        return {"exit_code": proc.returncode, "wall_s": round(time.perf_counter() - start, 3),
                "error": f"killed after {timeout:g} s" if proc.returncode == -9 else f"launcher exit {proc.returncode}"}
    u = usage[-1]
    cpu = u["user_s"] + u["sys_s"]
    row: dict[str, Any] = {"exit_code": u["exit_code"], "wall_s": round(u["wall_s"], 3), "cpu_s": round(cpu, 2),
                           "user_s": round(u["user_s"], 2), "sys_s": round(u["sys_s"], 2),
                           "peak_rss_mb": round(u["maxrss_kb"] * 1024 / MB, 1),
                           "load1_start": round(load0, 2), "load1_end": round(load1, 2),
                           "others_cores": round(max(0.0, (busy1 - busy0 - cpu) / window), 2)}
    if u["exit_code"] != 0 or not lines:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-3:]
        row["error"] = scrub_paths(f"exit {u['exit_code']}: {' | '.join(reversed(tail))}")  # the message first
        return row
    row.update(json.loads(lines[-1][len(RESULT_MARK):]))
    return row


# ------------------------------------------------------------------ checking outputs

def expected_band(folder: Path, layout: dict[str, Any], y: int, rows: int) -> Any:
    """Rows y..y+rows of the stitched image, from the tiles decoded by Pillow."""
    import numpy as np
    from PIL import Image

    band = np.zeros((rows, layout["width"], 3), dtype=np.uint8)
    for rel, x, ty in layout["tiles"]:
        if ty < y + rows and ty + TILE > y:
            with Image.open(folder / rel) as im:
                px = np.asarray(im.convert("RGB"))
            top, bottom = max(y, ty), min(y + rows, ty + px.shape[0])
            band[top - y:bottom - y, x:x + px.shape[1]] = px[top - ty:bottom - ty]
    return band


def check_output(path: Path, folder: Path, layout: dict[str, Any], verify: bool) -> dict[str, Any]:
    """Size of the output (header), TIFF levels, and with `verify` the pixels of two tile rows."""
    import numpy as np
    import pyvips

    width, height = layout["width"], layout["height"]
    img = pyvips.Image.new_from_file(str(path), access="sequential")
    check: dict[str, Any] = {"size": [img.width, img.height], "size_ok": (img.width, img.height) == (width, height)}
    if path.suffix == ".tif":
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            check["tiff"] = {"levels": len(tif.series[0].levels), "pages": len(tif.pages),
                             "tiled": bool(page.is_tiled), "compression": page.compression.name,
                             "photometric": page.photometric.name}
    if not verify or not check["size_ok"]:
        return check
    diffs = []
    for y in (TILE * (layout["rows"] // 2), TILE * (layout["rows"] - 1)):  # a middle row of tiles, the last
        rows = min(TILE, height - y)
        got = np.ndarray(buffer=img.crop(0, y, width, rows).write_to_memory(), dtype=np.uint8,
                         shape=(rows, width, img.bands))[:, :, :3]
        diffs.append(np.abs(got.astype(np.int16) - expected_band(folder, layout, y, rows).astype(np.int16)))
    d = np.concatenate(diffs)
    check["pixels"] = {"rows_compared": int(d.shape[0]), "mean_abs_diff": round(float(d.mean()), 3),
                       "max_abs_diff": int(d.max())}
    return check


def pixels_ok(variant: Variant, check: dict[str, Any]) -> bool:
    """Whether the compared rows are close enough to the tiles for this output's kind of compression."""
    px = check.get("pixels")
    if px is None:
        return True
    lossless = variant.fmt == "png" or (variant.tool == "ours" and variant.fmt == "tif"
                                        and variant.options.get("passthrough"))
    return px["mean_abs_diff"] <= (0.5 if lossless else 3.0)


# ------------------------------------------------------------------ the session

def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, versions of the software compared."""
    facts = machine_facts(("dezoom-steps", "Pillow", "numpy", "tifffile", "isal", "imagecodecs", "pyvips"))
    try:
        import pyvips

        libvips = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    except (ImportError, OSError):
        libvips = None
    return {**facts, "libvips": libvips, "shared": MACHINE_NOTE}


def available_memory() -> int:
    """MemAvailable in bytes (physical memory when unknown)."""
    try:
        kb = re.search(r"^MemAvailable:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
        if kb:
            return int(kb.group(1)) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def skip_reason(v: Variant, side: int, args: argparse.Namespace) -> str | None:
    """Why variant `v` is not run at this size, or None."""
    pixels = side * side
    if v.tool == "pillow":
        need = pixels * PILLOW_BYTES_PER_PIXEL
        if pixels > args.pillow_max_mp * 1e6:
            return (f"Pillow holds the whole image (~{PILLOW_BYTES_PER_PIXEL} B/px: {need / 2**30:.1f} GiB; "
                    f"above --pillow-max-mp {args.pillow_max_mp:g})")
        if need > available_memory() * 0.8:
            return (f"Pillow holds the whole image (~{PILLOW_BYTES_PER_PIXEL} B/px: {need / 2**30:.0f} GiB), "
                    f"more than the {available_memory() / 2**30:.0f} GiB available")
    if v.key == "vips-png-default" and args.vips_png_default == "auto" and pixels > VERIFY_MAX_PIXELS:
        return "libvips PNG at its defaults runs at ~4 MP/s (10+ minutes here); --vips-png-default always runs it"
    if v.key == "vips-png-default" and args.vips_png_default == "never":
        return "--vips-png-default never"
    return None


def run_size(data: Path, side: int, args: argparse.Namespace, facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Every selected variant on the test set of `side`; returns their rows."""
    folder = data / f"side-{side}"
    layout = json.loads((folder / "layout.json").read_text())
    pixels = layout["width"] * layout["height"]
    verify = args.verify if args.verify is not None else pixels <= VERIFY_MAX_PIXELS
    warm_page_cache(folder)
    rows = []
    for v in VARIANTS:
        if v.tool not in args.tools or v.fmt not in args.formats:
            continue
        row: dict[str, Any] = {"size": size_label(side), "side": side, "tool": v.tool, "format": v.fmt,
                               "variant": v.name, "key": v.key, "settings": v.settings}
        reason = skip_reason(v, side, args)
        if reason:
            row["skipped"] = reason
            rows.append(row)
            print(f"bench: {size_label(side)} {v.key}: skipped ({reason})", file=sys.stderr)
            continue
        work = folder / f"work-{v.key}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        spec = {"tool": v.tool, "fmt": v.fmt, "options": v.options, "work": str(work),
                "tiles_json": str(folder / "tiles.json"), "cache": str(folder / "cache"),
                "layout": str(folder / "layout.json")}
        print(f"bench: {size_label(side)} {v.key} ...", file=sys.stderr, flush=True)
        row.update(measure_child(spec, args.timeout))
        if "error" not in row:
            out = Path(row.pop("output"))
            row["output_mb"] = round(out.stat().st_size / MB, 1)
            row["bits_per_pixel"] = round(out.stat().st_size * 8 / pixels, 2)
            row["mp_per_s"] = round(pixels / MB / row["work_s"], 1)
            row["mp_per_cpu_s"] = round(pixels / MB / row["cpu_s"], 1) if row["cpu_s"] else None
            row["check"] = check_output(out, folder, layout, verify)
            row["ok"] = bool(row["check"]["size_ok"] and pixels_ok(v, row["check"])
                             and (v.tool != "ours" or (row.get("complete") and not row.get("missing"))))
            for k in ("work_s", "plan_s", "stitch_s", "encode_s", "open_s", "save_s", "paste_s",
                      "rss_after_imports_mb"):
                if row.get(k) is not None:
                    row[k] = round(row[k], 3)
            print(f"bench: {size_label(side)} {v.key}: {row['work_s']:.2f} s, {row['mp_per_s']} MP/s, "
                  f"{row['peak_rss_mb']:.0f} MB, {row['output_mb']} MB, ok={row['ok']}", file=sys.stderr)
            if args.keep_outputs:
                out.rename(folder / f"{v.key}.{v.fmt}")
        else:
            row["ok"] = False
            print(f"bench: {size_label(side)} {v.key}: FAILED {row['error']}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        rows.append(row)
    return rows


def comparisons(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours against libvips per size: throughput and RSS ratios, and the issue's targets."""
    by = {(r["side"], r["key"]): r for r in rows if "mp_per_s" in r}
    out = []
    for side in sorted({r["side"] for r in rows}):
        for ours_key, (vips_key, target) in COMPARE.items():
            o, v = by.get((side, ours_key)), by.get((side, vips_key))
            if o is None or v is None:
                continue
            speed, rss = o["mp_per_s"] / v["mp_per_s"], o["peak_rss_mb"] / v["peak_rss_mb"]
            c = {"size": size_label(side), "side": side, "ours": ours_key, "vips": vips_key,
                 "throughput_ratio": round(speed, 2), "rss_ratio": round(rss, 3),
                 "cpu_throughput_ratio": round(o["mp_per_cpu_s"] / v["mp_per_cpu_s"], 2)}
            if target == "png":
                c["target"] = f">= {PNG_SPEEDUP:g}x libvips' MP/s and <= {PNG_RSS_FRACTION:g}x its peak RSS"
                c["met"] = speed >= PNG_SPEEDUP and rss <= PNG_RSS_FRACTION
            elif target == "jpg":
                c["target"] = f">= {JPEG_SPEEDUP:g}x libvips' MP/s"
                c["met"] = speed >= JPEG_SPEEDUP
            elif target == "tif":
                c["target"] = f">= {TIFF_SPEEDUP:g}x libvips tiffsave's MP/s"
                c["met"] = speed >= TIFF_SPEEDUP
            out.append(c)
    return out


def short_error(text: str) -> str:
    """The line of a child's error that names the exception, else its start."""
    parts = [p.strip() for p in text.split(" | ")]
    named = [p for p in parts if re.match(r"^(exit \d+: )?[A-Za-z_.]*(Error|Exception)\b", p)]
    return (named[0] if named else text)[:160]


def fmt_num(x: float | None, digits: int = 1) -> str:
    """A number for the table, or an en dash."""
    return "–" if x is None else f"{x:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """The results as markdown: one table per size, then the targets."""
    comp = {(c["side"], c["ours"]): c for c in result["comparisons"]}
    vips_for = {k: v for k, (v, _) in COMPARE.items()}
    by = {(r["side"], r["key"]): r for r in result["runs"]}
    lines = []
    for side in sorted({r["side"] for r in result["runs"]}):
        d = result["data"][str(side)]
        lines += [f"**{size_label(side)}** ({side:,} x {side:,}, {d['tiles']:,} tiles of {TILE} px, "
                  f"JPEG Q{TILE_QUALITY}, {d['tile_bytes'] / MB:,.0f} MB, {d['bits_per_pixel']} bpp)", "",
                  "| output | tool | settings | s | MP/s | ÷ libvips | MP per CPU-s | peak RSS MB "
                  "| output MB | bpp | load1 | others' cores |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in result["runs"] if r["side"] == side):
            head = f"| {r['format'].upper()} | {r['tool']} | {r['settings']} "
            if "skipped" in r:
                lines.append(head + f"| skipped: {r['skipped']} | | | | | | | | |")
                continue
            if "error" in r:
                lines.append(head + f"| FAILED: {short_error(r['error'])} | | | | | | | | |")
                continue
            secs = f"{r['work_s']:.2f}"
            if r["tool"] == "ours" and r.get("stitch_s") is not None:  # TIFF: stitch (with the plan) + encode
                secs += f" ({r['plan_s'] + r['stitch_s']:.1f} + {r['encode_s']:.1f})"
            ratio = "–"
            c = comp.get((side, r["key"]))
            if c is not None:
                ratio = f"{c['throughput_ratio']:g}x"
            elif r["tool"] != "vips":
                vk = vips_for.get(r["key"]) or f"vips-{r['format']}-" + {"png": "c1-up", "jpg": "q95",
                                                                           "tif": "flat"}[r["format"]]
                v = by.get((side, vk))
                if v is not None and "mp_per_s" in v:
                    ratio = f"{r['mp_per_s'] / v['mp_per_s']:.2f}x"
            flag = "" if r.get("ok") else " ⚠"
            lines.append(head + f"| {secs} | {fmt_num(r['mp_per_s'])}{flag} | {ratio} | {fmt_num(r['mp_per_cpu_s'])} "
                         f"| {r['peak_rss_mb']:,.0f} | {r['output_mb']:,.1f} | {r['bits_per_pixel']} "
                         f"| {r['load1_start']:.1f}–{r['load1_end']:.1f} | {r['others_cores']:.2f} |")
        lines.append("")
    lines += ["Seconds of ours: PNG and JPEG in one render pass (as the pipeline writes them); TIFF: "
              "passthrough plan + stitch, then encode, in brackets. ÷ libvips: MP/s over "
              "libvips' on the same format (PNG: compression 1 + Up; TIFF: the same pyramid choice).", "",
              "| size | ours | libvips | MP/s ratio | per CPU-s | RSS ratio | target | met |",
              "|---|---|---|---:|---:|---:|---|---|"]
    for c in result["comparisons"]:
        met = "" if "met" not in c else ("**yes**" if c["met"] else "**no**")
        lines.append(f"| {c['size']} | {c['ours']} | {c['vips']} | {c['throughput_ratio']:g} "
                     f"| {c['cpu_throughput_ratio']:g} | {c['rss_ratio']:g} | {c.get('target', 'context')} | {met} |")
    load = result["load"]
    lines += ["", f"Load average (1 min) during the run: {load['load1_min']}–{load['load1_max']}, mean "
              f"{load['load1_mean']} on {result['machine']['cpu_count']} cores; {MACHINE_NOTE}."]
    for remark in result.get("remarks", []):  # added by hand to a result file, e.g. what changed since
        lines += ["", f"Remark: {remark}"]
    notes = sorted({n for r in result["runs"] for n in r.get("notes", [])})
    if notes:
        lines += ["", "API notes: " + "; ".join(notes)]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description="Outputs benchmark of issue 5: ours vs libvips vs Pillow.")
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "dezoom-bench-outputs",
                   help="folder of the generated test tiles, reused between runs (default %(default)s)")
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help="comma-separated square sides in pixels or 400mp / 2.5gp (default %(default)s)")
    p.add_argument("--source-side", type=int, default=SOURCE_SIDE,
                   help="sides above this are built from this set's tiles by hard links (default %(default)s)")
    p.add_argument("--formats", default="png,jpg,tif", help="comma-separated subset of %(default)s")
    p.add_argument("--tools", default="ours,vips,pillow", help="comma-separated subset of %(default)s")
    p.add_argument("--vips-png-default", choices=("auto", "always", "never"), default="auto",
                   help="libvips PNG at its default compression (slow): auto = up to 400 MP")
    p.add_argument("--pillow-max-mp", type=float, default=1000,
                   help="run Pillow only up to this many megapixels (default %(default)s: 2.5 GP would take "
                   "~10 GB and most of the machine's memory)")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=None,
                   help="compare two tile rows of every output with the tiles (default: up to 400 MP)")
    p.add_argument("--prepare-only", action="store_true", help="make the test tiles, then stop")
    p.add_argument("--keep-outputs", action="store_true", help="keep the output images in the data folder")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a run is killed (default %(default)s)")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="print (and write beside it as .md) the tables of an earlier result JSON, then stop")
    p.add_argument("--output", type=Path, help="result path without extension "
                   "(default bench/results/outputs-<date>-<sizes>)")
    a = p.parse_args(argv)
    try:
        a.sides = [side_of(s) for s in a.sizes.split(",")]
    except argparse.ArgumentTypeError as exc:
        p.error(str(exc))
    a.formats = a.formats.split(",")
    a.tools = a.tools.split(",")
    if set(a.formats) - {"png", "jpg", "tif"} or set(a.tools) - set(CHILDREN):
        p.error("formats are png, jpg, tif; tools are ours, vips, pillow")
    return a


def main(argv: list[str] | None = None) -> int:
    """Make the data if needed, run every variant, write and print the results; 1 if a run failed."""
    args = parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        text = markdown(result)
        write_atomic(args.render.with_suffix(".md"), f"# Outputs benchmark, {result['started'][:10]}\n\n{text}\n")
        print(text)
        return 0
    try:
        import pyvips  # noqa: F401
    except (ImportError, OSError) as exc:
        print(f"bench: needs pyvips (pip install pyvips; libvips from Debian's libvips42): {exc}", file=sys.stderr)
        return 2
    args.data.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now().astimezone()
    data = {str(side): ensure_data(args.data, side, args.source_side) for side in args.sides}
    if args.prepare_only:
        print(json.dumps(data, indent=1))
        return 0
    result: dict[str, Any] = {"schema": SCHEMA, "started": started.isoformat(timespec="seconds"),
                              "machine": machine_info(), "data": data,
                              "settings": {"compression": COMPRESSION, "tile": TILE, "tile_quality": TILE_QUALITY,
                                           "runs_per_figure": 1, "verify": args.verify,
                                           "formats": args.formats, "tools": args.tools}}
    with LoadSampler() as load:
        runs = []
        for side in args.sides:
            runs += run_size(args.data, side, args, data[str(side)])
    result["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    result["load"] = load.summary()
    result["runs"] = runs
    result["comparisons"] = comparisons(runs)
    label = "+".join(size_label(s) for s in args.sides)
    prefix = args.output or REPO / "bench" / "results" / f"outputs-{started.date().isoformat()}-{label}"
    write_atomic(Path(f"{prefix}.json"), json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    write_atomic(Path(f"{prefix}.md"), f"# Outputs benchmark, {started.date().isoformat()}\n\n{text}\n")
    print(text)
    print(f"\nbench: wrote {prefix}.json and .md", file=sys.stderr)
    failed = [r["key"] for r in runs if "skipped" not in r and not r.get("ok")]
    for key in failed:
        print(f"bench: PROBLEM: {key} failed or gave a wrong output (see the JSON)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--launch":
        sys.exit(launcher_main(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2]))
    sys.exit(main())
