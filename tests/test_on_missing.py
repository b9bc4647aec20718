"""`--on-missing blank|fail|fill`: the fill planner on synthetic pyramids, then the `dezoom`
command and the Snakemake workflow against the project's fault server (tests/servers/
faultserver.py) serving a copy of the embedded demo pyramid, with chosen tiles deleted so the
server answers 404 for them. Filled holes are compared with the demo's source image."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dezoom_steps.dezoomers.base import grid_tiles
from dezoom_steps.fill import FillPlan, TileGrid, fill_into, lower_levels, plan_level, render
from dezoom_steps.model import Level
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from rigutil import describe, run_dezoom

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo"
SOURCE = DEMO / "source.png"  # 1200 x 800; DeepZoom 256 px tiles with 1 px overlap, levels 0-11
# Tile 11/2_1 (column 2, row 1) owns the canvas cell x 512-767, y 256-511. On level 10
# (600 x 400) that area is x 256-383, y 128-255: inside tile 10/1_0.
HOLE = "11/2_1.jpg"
HOLE_CELL = (512, 256, 256, 256)
HOLE_LOWER = "10/1_0.jpg"


def rgb(path: Path) -> np.ndarray:
    """An image file's pixels as (h, w, 3) int16."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def cell_diff(img: np.ndarray, ref: np.ndarray, cell: tuple[int, int, int, int]) -> float:
    """Mean absolute difference of one rectangle of two images."""
    x, y, w, h = cell
    return float(np.abs(img[y:y + h, x:x + w] - ref[y:y + h, x:x + w]).mean())


# ------------------------------------------------------------------ planning, on synthetic pyramids

def _pyramid_tiles(level: Level, img: Image.Image, store: dict[str, bytes]) -> list[dict]:
    """The grid tiles of `level` cut from `img` (already at the level's size), encoded as PNG in `store`."""
    tiles = []
    for t in grid_tiles(level, lambda lv, c, r: f"mem://{lv.width}/{c}_{r}.png"):
        d = dict(t.to_json(), key=f"{level.width}-{t.col}-{t.row}")
        x0, y0 = t.x - t.crop_x, t.y - t.crop_y
        x1 = min(level.width, t.x + t.w + level.overlap)
        y1 = min(level.height, t.y + t.h + level.overlap)
        buf = io.BytesIO()
        img.crop((x0, y0, x1, y1)).save(buf, "PNG")
        store[d["key"]] = buf.getvalue()
        tiles.append(d)
    return tiles


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def test_lower_levels_are_the_smaller_levels_of_the_same_image_largest_first():
    levels = [Level(100, 100, 10, 10, group="a"), Level(400, 400, 10, 10, group="b"),
              Level(50, 50, 10, 10, group="a"), Level(200, 200, 10, 10, group="a"),
              Level(25, 25, 10, 10, group="b"), Level(400, 400, 10, 10, group="a")]
    assert lower_levels(levels, 5) == [3, 0, 2]
    assert lower_levels(levels, 1) == [4]
    assert lower_levels(levels, 2) == []


@pytest.mark.parametrize("overlap,region", [(0, (0, 0)), (1, (0, 0)), (1, (300, 130))])
def test_a_filled_hole_is_close_to_the_source_and_black_is_not(overlap, region):
    src = Image.open(SOURCE).convert("RGB")
    full = Level(1200, 800, 256, 256, overlap)
    half = Level(600, 400, 150, 150, overlap)  # another tile size, so holes straddle lower tiles
    store: dict[str, bytes] = {}
    _pyramid_tiles(full, src, store)
    lower = _pyramid_tiles(half, src.resize((600, 400), Image.Resampling.LANCZOS), store)
    ref = np.asarray(src).astype(np.int16)
    rx, ry = region
    # holes as list_tiles writes them with a region at (rx, ry): cells relative to the region
    holes = [dict(index=i, url=f"hole{i}", x=x - rx, y=y - ry, w=w, h=h, crop_x=0, crop_y=0, key="")
             for i, (x, y, w, h) in enumerate([(512, 256, 256, 256), (1024, 768, 176, 32), (300, 130, 150, 70)])]
    plans, uncovered = plan_level(holes, region, full, half, 7, lower)
    assert uncovered == [] and [p.index for p in plans] == [0, 1, 2]
    assert len(plans[0].sources) == 4, "x 256-384, y 128-256 on the half level straddles four 150 px tiles"
    for p, hole in zip(plans, holes):
        patch = render(p, store.get, _decode, 3).astype(np.int16)
        x, y = hole["x"] + rx, hole["y"] + ry
        want = ref[y:y + hole["h"], x:x + hole["w"]]
        assert patch.shape == want.shape
        filled, black = float(np.abs(patch - want).mean()), float(want.mean())
        assert filled < 8 and filled < black / 8, (p.index, filled, black)
        assert p.level_index == 7 and p.level_size == (600, 400)
        assert FillPlan.from_json(json.loads(json.dumps(p.to_json()))) == p


def test_fill_into_pastes_the_patch_into_the_strip_and_clips_it_to_the_canvas():
    src = Image.open(SOURCE).convert("RGB").crop((0, 0, 300, 100))
    full, low = Level(300, 100, 64, 64), Level(150, 50, 64, 64)
    store: dict[str, bytes] = {}
    lower = _pyramid_tiles(low, src.resize((150, 50), Image.Resampling.LANCZOS), store)
    hole = dict(index=9, url="h", x=256, y=64, w=44, h=36, crop_x=0, crop_y=0, key="")
    (plan,), _ = plan_level([hole], (0, 0), full, low, 0, lower)
    strip = np.zeros((36, 300, 3), dtype=np.uint8)
    assert fill_into(plan, strip, 64, store.get, _decode)
    assert strip[:, :256].max() == 0, "nothing outside the hole is touched"
    want = np.asarray(src)[64:100, 256:300].astype(np.int16)
    assert np.abs(strip[:, 256:].astype(np.int16) - want).mean() < 10
    assert not fill_into(plan, strip, 64, lambda key: None, _decode), "a source not in the cache: no fill"


def test_a_lower_level_without_a_tile_over_the_hole_leaves_it_uncovered():
    full, low = Level(400, 400, 100, 100), Level(200, 200, 100, 100)
    sparse = [dict(t.to_json(), key="k") for t in grid_tiles(low, lambda lv, c, r: f"u{c}{r}") if t.col == 0]
    grid = TileGrid(low, sparse)
    assert [t["col"] for t in grid.meeting(0, 0, 200, 200)] == [0, 0]
    hole = dict(index=3, url="h", x=300, y=0, w=100, h=100, crop_x=0, crop_y=0, key="")
    plans, uncovered = plan_level([hole], (0, 0), full, low, 0, sparse)
    assert plans == [] and uncovered == [hole]


# ------------------------------------------------------------------ the dezoom command

def serve_demo(fault_server, root: Path, *deleted: str):  # noqa: F811
    """A fault server over a copy of the demo pyramid without the `deleted` tiles (404 for them)."""
    site = root / "site"
    shutil.copytree(DEMO, site / "demo")
    for name in deleted:
        (site / "demo" / "demo_files" / name).unlink()
    return fault_server(site), site


def tile_counts(srv) -> dict[str, int]:
    """Requests per tile path (`level/col_row.jpg`), whatever the answer."""
    counts: dict[str, int] = {}
    for r in srv.requests():
        if "_files/" in r["path"]:
            key = r["path"].split("_files/", 1)[1]
            counts[key] = counts.get(key, 0) + 1
    return counts


def dezoom(srv, cwd: Path, out: str, *extra: str):
    """Run `dezoom` on the served demo (no retries, no throttle)."""
    return run_dezoom([srv.url("demo/demo.dzi"), out, "-r", "0", "-i", "0ms", *extra], cwd=cwd)


def test_blank_is_the_default_the_hole_stays_black_and_exit_is_6(fault_server, tmp_path):  # noqa: F811
    srv, _ = serve_demo(fault_server, tmp_path, HOLE)
    proc = dezoom(srv, tmp_path, "out.png")
    assert proc.returncode == 6, describe(proc)
    img = rgb(tmp_path / "out.png")
    x, y, w, h = HOLE_CELL
    assert (img[y:y + h, x:x + w] == 0).all()
    side = json.loads((tmp_path / "out.png.json").read_text())
    assert not side["complete"] and side["on_missing"] == "blank" and "filled_regions" not in side
    assert [m["url"].rsplit("_files/", 1)[1] for m in side["missing_tiles"]] == [HOLE]
    assert "10/" not in "".join(tile_counts(srv)), "blank fetches nothing from lower levels"


def test_fail_writes_no_image_and_a_rerun_fetches_only_the_missing_tile(fault_server, tmp_path):  # noqa: F811
    srv, site = serve_demo(fault_server, tmp_path, HOLE)
    cache = tmp_path / "tiles"
    proc = dezoom(srv, tmp_path, "out.png", "--on-missing", "fail", "-c", str(cache))
    assert proc.returncode == 6, describe(proc)
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.png.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == [], "no temporary file left"
    line = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(line) == 1 and "1 of 20 tiles are missing" in line[0] and HOLE in line[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(list(cache.iterdir())) == 19, "the tiles that arrived are kept in the cache"

    shutil.copy(DEMO / "demo_files" / HOLE, site / "demo" / "demo_files" / HOLE)
    before = tile_counts(srv)
    proc = dezoom(srv, tmp_path, "out.png", "--on-missing", "fail", "-c", str(cache))
    assert proc.returncode == 0, describe(proc)
    after = tile_counts(srv)
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {HOLE: 1}
    assert np.abs(rgb(tmp_path / "out.png") - rgb(SOURCE)).mean() < 4
    assert json.loads((tmp_path / "out.png.json").read_text())["complete"]


def test_fill_upscales_the_lower_level_into_the_hole(fault_server, tmp_path):  # noqa: F811
    srv, _ = serve_demo(fault_server, tmp_path, HOLE)
    proc = dezoom(srv, tmp_path, "out.png", "--on-missing", "fill")
    assert proc.returncode == 6, describe(proc)
    assert "filled from a lower zoom level" in proc.stderr
    img, ref = rgb(tmp_path / "out.png"), rgb(SOURCE)
    filled = cell_diff(img, ref, HOLE_CELL)
    black = cell_diff(np.zeros_like(ref), ref, HOLE_CELL)
    assert filled < 10 and filled < black / 8, (filled, black)
    x, y, w, h = HOLE_CELL
    rest = img.copy()
    rest[y:y + h, x:x + w] = ref[y:y + h, x:x + w]
    assert np.abs(rest - ref).mean() < 4, "the other tiles are untouched"
    side = json.loads((tmp_path / "out.png.json").read_text())
    assert not side["complete"] and side["on_missing"] == "fill"
    (region,) = side["filled_regions"]
    assert (region["x"], region["y"], region["w"], region["h"]) == HOLE_CELL
    assert region["from_size"] == [600, 400]
    counts = tile_counts(srv)
    assert counts.get(HOLE_LOWER) == 1 and sum(k.startswith("10/") for k in counts) == 1, counts


def test_fill_goes_one_level_lower_when_the_lower_tile_is_missing_too(fault_server, tmp_path):  # noqa: F811
    srv, _ = serve_demo(fault_server, tmp_path, HOLE, HOLE_LOWER)
    proc = dezoom(srv, tmp_path, "out.png", "--on-missing", "fill")
    assert proc.returncode == 6, describe(proc)
    side = json.loads((tmp_path / "out.png.json").read_text())
    (region,) = side["filled_regions"]
    assert region["from_size"] == [300, 200], "level 9"
    filled = cell_diff(rgb(tmp_path / "out.png"), rgb(SOURCE), HOLE_CELL)
    assert filled < 14, filled
    counts = tile_counts(srv)
    assert counts.get(HOLE_LOWER) == 1 and counts.get("9/0_0.jpg") == 1, counts


def test_fill_without_any_lower_tile_leaves_the_hole_black(fault_server, tmp_path):  # noqa: F811
    srv, site = serve_demo(fault_server, tmp_path, HOLE)
    for level in range(11):  # every lower level is gone: 404 for each
        shutil.rmtree(site / "demo" / "demo_files" / str(level))
    proc = dezoom(srv, tmp_path, "out.png", "--on-missing", "fill")
    assert proc.returncode == 6, describe(proc)
    x, y, w, h = HOLE_CELL
    assert (rgb(tmp_path / "out.png")[y:y + h, x:x + w] == 0).all()
    side = json.loads((tmp_path / "out.png.json").read_text())
    assert side["filled_regions"] == [] and len(side["missing_tiles"]) == 1
    lower = {k: n for k, n in tile_counts(srv).items() if not k.startswith("11/")}
    assert len(lower) == 11 and set(lower.values()) == {1}, "one covering tile tried per lower level, once"


def test_fail_also_refuses_a_tile_that_arrives_but_cannot_be_decoded(fault_server, tmp_path):  # noqa: F811
    srv, site = serve_demo(fault_server, tmp_path)
    (site / "demo" / "demo_files" / HOLE).write_bytes(b"\xff\xd8\xff\xe0" + b"not a JPEG at all" * 50)
    proc = dezoom(srv, tmp_path, "out.png", "--on-missing", "fail")
    assert proc.returncode == 6, describe(proc)
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.png.json").exists()
    # Refused when it arrives (tile validation), so it never reaches the cache or the stitcher.
    assert "1 of 20 tiles are missing" in proc.stderr and HOLE in proc.stderr
    assert "broken jpeg header" in proc.stderr or "does not decode" in proc.stderr


def test_fill_with_a_region_uses_the_cells_place_on_the_level(fault_server, tmp_path):  # noqa: F811
    srv, _ = serve_demo(fault_server, tmp_path, HOLE)
    proc = dezoom(srv, tmp_path, "out.png", "--on-missing", "fill", "--region", "400,200,500,400")
    assert proc.returncode == 6, describe(proc)
    img = rgb(tmp_path / "out.png")
    ref = rgb(SOURCE)[200:600, 400:900]
    assert img.shape == ref.shape
    hole = (112, 56, 256, 256)  # the hole's cell, relative to the region
    assert cell_diff(img, ref, hole) < 10
    side = json.loads((tmp_path / "out.png.json").read_text())
    assert [(r["x"], r["y"], r["w"], r["h"]) for r in side["filled_regions"]] == [hole]
    assert side["region"]["requested"] == "400,200,500,400"


def test_fill_into_a_tiff_whose_other_tiles_are_copied_as_they_are(rig, fault_server, tmp_path):  # noqa: F811
    """Zoomify 256 px JPEG tiles, no overlap: the TIFF writer copies the tiles it can; the hole is
    filled on the canvas and encoded like an edge tile."""
    import tifffile

    site = tmp_path / "site"
    shutil.copytree(rig.www_dir / "small" / "zoomify256", site / "z")
    (site / "z" / "TileGroup0" / "2-1-1.jpg").unlink()  # x 256-511, y 256-511 of the 1000x700 level
    srv = fault_server(site)
    proc = run_dezoom([srv.url("z/ImageProperties.xml"), "out.tif", "-r", "0", "-i", "0ms",
                       "--on-missing", "fill"], cwd=tmp_path)
    assert proc.returncode == 6, describe(proc)
    img = tifffile.imread(tmp_path / "out.tif", key=0)[:, :, :3].astype(np.int16)
    ref = rgb(rig.ref_small)
    assert img.shape == ref.shape
    hole = (256, 256, 256, 256)
    assert cell_diff(img, ref, hole) < 10
    x, y, w, h = hole
    rest = img.copy()
    rest[y:y + h, x:x + w] = ref[y:y + h, x:x + w]
    assert np.abs(rest - ref).mean() < 2
    side = json.loads((tmp_path / "out.tif.json").read_text())
    assert [(r["x"], r["y"], r["w"], r["h"]) for r in side["filled_regions"]] == [hole]
    assert side["tiff"]["tiles_passed_through"] == 5, "the six full tiles of rows 0-1, less the hole"


# ------------------------------------------------------------------ the Snakemake workflow

@pytest.mark.workflow
def test_workflow_fill_and_region(fault_server, tmp_path):  # noqa: F811
    from test_workflow import run_snakemake

    srv, _ = serve_demo(fault_server, tmp_path, HOLE)
    work = tmp_path / "run"
    work.mkdir()
    proc = run_snakemake(work, "--config", f"url={srv.url('demo/demo.dzi')}", "output=part.png",
                         "min_interval=0s", "retries=0", "on_missing=fill", "region=0.25,0.25,0.5,0.5")
    assert proc.returncode != 0, "a filled image is still partial: the run reports it"
    assert (work / "work" / "part" / "fill.json").exists(), "the fill_tiles job ran"
    img = rgb(work / "results" / "part.png")
    ref = rgb(SOURCE)[200:600, 300:900]
    assert img.shape == ref.shape
    hole = (212, 56, 256, 256)  # x 512-767, y 256-511 of the level, seen from the region (300, 200)
    assert cell_diff(img, ref, hole) < 10
    side = json.loads((work / "results" / "part.png.json.partial").read_text())
    assert [(r["x"], r["y"], r["w"], r["h"]) for r in side["filled_regions"]] == [hole]
    assert side["region"] == {"x": 300, "y": 200, "w": 600, "h": 400, "requested": "0.25,0.25,0.5,0.5"}
    counts = tile_counts(srv)
    assert counts.get(HOLE_LOWER) == 1
    assert sorted(k for k in counts if k.startswith("11/")) == sorted(
        f"11/{c}_{r}.jpg" for c in (1, 2, 3) for r in (0, 1, 2)), "only the region's tiles are fetched"


@pytest.mark.workflow
def test_workflow_fail_writes_no_image_and_exits_nonzero(fault_server, tmp_path):  # noqa: F811
    from test_workflow import run_snakemake

    srv, _ = serve_demo(fault_server, tmp_path, HOLE)
    work = tmp_path / "run"
    work.mkdir()
    proc = run_snakemake(work, "--config", f"url={srv.url('demo/demo.dzi')}", "output=strict.png",
                         "min_interval=0s", "retries=0", "on_missing=fail")
    assert proc.returncode != 0
    assert not (work / "results" / "strict.png").exists()
    assert not (work / "work" / "strict" / "fetch" / "shard-0.json").exists(), "a rerun fetches again"
    error = json.loads((work / "work" / "strict" / "error.json").read_text())
    assert error["exit_code"] == 6 and "1 of 20 tiles are missing" in error["error"]
    assert len(list((work / "cache" / "strict").iterdir())) == 19
