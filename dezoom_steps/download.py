"""One image, in-process: the five steps in a temporary work folder (used by the `dezoom` command)."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dezoom_steps import checkworker, net
from dezoom_steps.collections import iiif_manifest
from dezoom_steps.encoders import check_output_feasible
from dezoom_steps.encoders.tiff_passthrough import StoredTiles, stitch_plan, stitch_plan_applies
from dezoom_steps.errors import NoDezoomerFits, NoTileError, OutputError
from dezoom_steps.fill import require_all
from dezoom_steps.jsonio import read_step_json
from dezoom_steps.model import Level
from dezoom_steps.naming import claim_output, default_extension, title_stem
from dezoom_steps.steps.encode import encode
from dezoom_steps.steps.expand import manifest_entries
from dezoom_steps.steps.fetch_tiles import fetch_tiles
from dezoom_steps.steps.fill_tiles import fill_tiles
from dezoom_steps.steps.list_tiles import DEFAULT_TILE_BUDGET, Selection, list_tiles
from dezoom_steps.steps.resolve import resolve
from dezoom_steps.steps.render import render, streams
from dezoom_steps.steps.render_tiff import render_tiff
from dezoom_steps.steps.stitch import stitch
from dezoom_steps.tempfiles import temp_beside

log = logging.getLogger("dezoom")
Chooser = Callable[[list[str]], int]


@dataclass
class Request:
    """What to download and where: the `dezoom` flags that matter for one image."""

    url: str
    options: net.NetOptions
    selection: Selection = Selection()
    dezoomer: str = "auto"
    outfile: str | None = None  # explicit output path, else a name from `name` or the title
    name: str | None = None  # default file stem (bulk entries)
    folder: Path = Path(".")
    extension: str | None = None  # forced output extension when no outfile
    on_exists: str | None = None  # None: an explicit existing outfile is an error
    taken: set[Path] = field(default_factory=set)
    tile_cache: Path | None = None
    compression: int = 5
    pixel_budget: int = 10_000_000_000
    tile_budget: int = DEFAULT_TILE_BUDGET  # --tile-budget
    choose: Chooser | None = None  # asks the user which image; None: take the first
    region: str | None = None  # --region x,y,w,h (pixels or fractions of the chosen level)
    on_missing: str = "blank"  # --on-missing blank|fail|fill
    tiff_compression: str = "jpeg"  # --tiff-compression jpeg|deflate|zstd|none
    tiff_pyramid: bool = True  # --tiff-pyramid / --no-tiff-pyramid
    iiif_base_url: str | None = None  # --iiif-base-url: where a .iiif folder will be published
    progress: bool = True


@dataclass
class Result:
    """The outcome of one download: the output path and its sidecar (None when skipped)."""

    path: Path
    sidecar: dict[str, Any] | None


def image_choices(levels: list[Level]) -> list[tuple[str, Level]]:
    """The images behind one input (level groups), each with its largest level."""
    groups: dict[str, Level] = {}
    for lv in levels:
        if lv.group not in groups or lv.width * lv.height > groups[lv.group].width * groups[lv.group].height:
            groups[lv.group] = lv
    return list(groups.items())


def _pick(labels: list[str], req: Request, what: str) -> int:
    """The index of the image to download: --image-index, the user's answer, or the first."""
    if req.selection.image_index is not None:
        return min(req.selection.image_index, len(labels) - 1)
    for i, label in enumerate(labels):
        print(f"[{i}] {label}", file=sys.stderr)
    if req.choose is not None:
        return req.choose(labels)
    print(f"dezoom: {what} holds {len(labels)} images; downloading [0] (choose with --image-index N, "
          "or take them all with --bulk)", file=sys.stderr)
    return 0


def _manifest_fallback(req: Request, err: NoDezoomerFits) -> Result:
    """When the input is (or leads to) a IIIF manifest or collection, download one of its canvases."""
    if err.manifest is None:
        raise err
    entries = [e for e in manifest_entries(err.manifest, lambda u: net.fetch_document(u, req.options, None))
               if e.ok]
    if not entries:  # nothing downloadable in it: the resolve diagnosis says it best
        raise err
    labels = [f"{e.label or e.title or 'image'} ({e.width or '?'} x {e.height or '?'} pixels)" for e in entries]
    chosen = entries[_pick(labels, req, req.url)]
    sub = Request(**{**req.__dict__, "url": chosen.url,
                     "selection": Selection(**{**req.selection.__dict__, "image_index": None}),
                     "name": req.name or iiif_manifest.default_name(chosen)})
    return download(sub)


def _output_for(req: Request, title: str | None, width: int, height: int) -> tuple[Path, bool] | None:
    """The output path and whether it replaces a file; None when --on-exists skip applies."""
    if req.outfile:
        path = Path(req.outfile)
        if not path.suffix:
            path = path.with_name(path.name + "." + (req.extension or default_extension(width, height)))
        policy = req.on_exists
        if policy is None:
            if path.exists():
                raise OutputError(f"{path}: file exists; not overwritten (see --on-exists)")
            return path, False
    else:
        stem = req.name or title_stem(title) or "dezoomified"
        path = req.folder / f"{stem}.{req.extension or default_extension(width, height)}"
        policy = req.on_exists or "suffix"
    claim = claim_output(path, policy, req.taken)
    if claim.action == "skip":
        return None
    return claim.path, claim.action == "overwrite"


def _check_writable(out: Path) -> None:
    """Refuse before downloading when the output folder cannot take a new file (a real trial:
    permission bits say nothing for root or on read-only file systems)."""
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{out}: the folder {folder} does not exist")
    temp_beside(out).unlink()


def download(req: Request) -> Result:
    """Resolve, choose, list, fetch, stitch and encode one image; returns where it went."""
    # The real input URL: the step files hold it redacted, fetch restores its query from here.
    req = Request(**{**req.__dict__, "options": dataclasses.replace(req.options, input_url=req.options.input_url or req.url)})
    work = Path(tempfile.mkdtemp(prefix="dezoom-"))
    try:
        try:
            res = resolve(url=req.url, output=work / "resolve.json", dezoomer=req.dezoomer,
                          net_options=req.options)
        except NoDezoomerFits as err:
            return _manifest_fallback(req, err)
        levels = [Level.from_json(d) for d in res["levels"]]
        cache = req.tile_cache or work / "cache"
        if req.options.check_workers != 0 and _helper_likely(levels):
            checkworker.start_early(cache, req.options.check_workers)
        selection = req.selection
        choices = image_choices(levels)
        if len(choices) > 1:
            labels = [f"{g or 'image'} ({lv.width} x {lv.height} pixels)" for g, lv in choices]
            selection = Selection(**{**selection.__dict__, "image_index": _pick(labels, req, res["input_url"])})
        tiles = list_tiles(resolve_json=work / "resolve.json", output=work / "tiles.json", image="cli",
                           selection=selection, pixel_budget=req.pixel_budget, region=req.region,
                           tile_budget=req.tile_budget)
        width, height = tiles["canvas"]["width"], tiles["canvas"]["height"]
        target = _output_for(req, tiles["title"], width, height)
        if target is None:
            return Result(req.folder, None)
        out, replace = target
        check_output_feasible(out, width, height)
        _check_writable(out)
        log.info("downloading %d tiles of a %dx%d level", len(tiles["tiles"]), width, height)
        # The passthrough plan reads the header of every cached tile, and the TIFF writer the tiles
        # it copies: those this run stores are noted as they arrive instead (issue 7: 0.09 s and
        # 0.07 s for 9,322 tiles read back).
        stored = StoredTiles() if stitch_plan_applies(out, req.tiff_compression) else None
        report = fetch_tiles(tiles_json=work / "tiles.json", cache_dir=cache, report=work / "fetch.json",
                             options=req.options, progress=req.progress, tiles_doc=tiles,
                             on_stored=stored.note if stored is not None else None)
        total = len(tiles["tiles"])
        if total and len(report["failed"]) == total:
            first = report["failed"][0]
            raise NoTileError(f"{tiles['input_url']}: could not get any of the {total} tiles "
                              f"(first failure: {first['url']}: {first['error']})")
        if req.on_missing == "fail":  # before stitching: no image at all
            require_all(tiles["input_url"], report["failed"], total, cached=req.tile_cache is not None)
        fill = None
        if req.on_missing == "fill":
            fill = work / "fill.json"
            fill_tiles(resolve_json=work / "resolve.json", tiles_json=work / "tiles.json", cache_dir=cache,
                       report=fill, options=req.options)
        if streams(out):  # one pass: tiles straight into the encoder, no canvas file
            sidecar = render(tiles_json=work / "tiles.json", cache_dir=cache, output=out, report=work / "stitch.json",
                             compression=req.compression, overwrite=replace, on_missing=req.on_missing,
                             cached=req.tile_cache is not None, fill=fill, iiif_base_url=req.iiif_base_url)
            return Result(out, sidecar)
        # tiles.json is passed as the document list_tiles returned: read once, not once a step
        plan = stitch_plan(work / "tiles.json", cache, out, req.tiff_compression, tiles_doc=tiles, stored=stored)
        if plan is not None:  # server tiles copied into the TIFF: only the other cells are decoded, in memory
            sidecar = render_tiff(tiles=tiles, cache_dir=cache, plan=plan, output=out, report=work / "stitch.json",
                                  compression=req.compression, overwrite=replace, on_missing=req.on_missing,
                                  cached=req.tile_cache is not None, fill=fill, tiff_pyramid=req.tiff_pyramid)
            if sidecar is not None:
                return Result(out, sidecar)
            plan.held.clear()  # the steps below read the tiles from the cache
        stitch(tiles_json=work / "tiles.json", cache_dir=cache, canvas=work / "canvas.tif",
               report=work / "stitch.json", fill=fill, passthrough=plan.to_json() if plan is not None else None,
               tiles_doc=tiles)
        sidecar = encode(tiles_json=work / "tiles.json", stitch_json=work / "stitch.json",
                         canvas=work / "canvas.tif", output=out, compression=req.compression,
                         overwrite=replace, on_missing=req.on_missing, cached=req.tile_cache is not None,
                         cache_dir=cache,
                         tiff_compression=req.tiff_compression, tiff_pyramid=req.tiff_pyramid,
                         iiif_base_url=req.iiif_base_url, tiles_doc=tiles)
        return Result(out, sidecar)
    finally:
        checkworker.discard_early()
        shutil.rmtree(work, ignore_errors=True)


def _helper_likely(levels: list[Level]) -> bool:
    """True when some level is large enough for the download to check its tiles in a helper process."""
    for lv in levels:
        try:  # the sizes are not checked yet (list_tiles refuses bad ones with a clear message)
            if lv.tile_width > 0 and lv.tile_height > 0 and \
                    checkworker.default_workers(lv.tile_count, lv.width * lv.height) > 0:
                return True
        except (TypeError, ValueError, ArithmeticError):
            continue
    return False


def complete_sidecar(path: Path) -> bool:
    """True when `path` has a sidecar saying the image is complete (a finished bulk entry)."""
    try:
        return read_step_json(Path(str(path) + ".json"), "output")["complete"]
    except Exception:
        return False
