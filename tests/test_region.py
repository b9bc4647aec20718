"""`--region x,y,w,h`: parsing, resolving against a level, cropping tile cells, list_tiles, and
end to end on the rig (pixels compared with the same crop of the lossless reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dezoom_steps.cli import main as dezoom_main
from dezoom_steps.dezoomers.base import grid_tiles
from dezoom_steps.errors import InputError, OutputError
from dezoom_steps.jsonio import read_step_json, write_step_json
from dezoom_steps.model import Level
from dezoom_steps.region import Region, crop_tiles, parse_region, resolve_region
from dezoom_steps.steps.list_tiles import list_tiles
from rigutil import compare, describe, label_box, load_rgb, run_dezoom

# ------------------------------------------------------------------ parsing and resolving


def test_whole_numbers_are_pixels_and_decimals_are_fractions():
    px = parse_region("10, 20,300,400")
    assert not px.fractions and px.values == (10, 20, 300, 400)
    fr = parse_region("0.25,0.25,0.5,0.5")
    assert fr.fractions and fr.values == (0.25, 0.25, 0.5, 0.5)
    assert parse_region("0.,.5,1.0,0.5").fractions


@pytest.mark.parametrize("text", [
    "1,2,3", "1,2,3,4,5", "1,,3,4", "a,b,c,d",   # not four numbers
    "0,0,1.0,1",                                  # mixed: pixels or fractions?
    "0.5,0.5,1.5,0.5",                            # a fraction above 1
    "-1,0,10,10", "0,0,-0.5,0.5",                 # negative
])
def test_bad_region_texts_are_one_input_error_line(text):
    with pytest.raises(InputError) as err:
        parse_region(text)
    assert "\n" not in str(err.value) and repr(text) in str(err.value)


def test_fractions_are_rounded_edges_of_the_level():
    assert resolve_region(parse_region("0.25,0.25,0.5,0.5"), 1000, 700) == Region(250, 175, 500, 350)
    # adjacent fractional regions share their edge, whatever the rounding
    left = resolve_region(parse_region("0.0,0.0,0.333,1.0"), 1001, 7)
    right = resolve_region(parse_region("0.333,0.0,0.667,1.0"), 1001, 7)
    assert left.x + left.w == right.x and right.x + right.w == 1001


def test_a_region_past_the_edge_is_clipped_to_the_level():
    assert resolve_region(parse_region("900,600,500,500"), 1000, 700) == Region(900, 600, 100, 100)
    assert resolve_region(parse_region("0.5,0.5,1.0,1.0"), 1000, 700) == Region(500, 350, 500, 350)


@pytest.mark.parametrize("text,what", [
    ("1000,0,10,10", "outside"), ("0,700,10,10", "outside"), ("1.0,0.0,0.5,0.5", "outside"),
    ("10,10,0,5", "empty"), ("0.5,0.5,0.0,0.5", "empty"), ("0.0,0.0,0.0001,0.5", "empty"),
])
def test_outside_or_empty_regions_are_refused_naming_the_source(text, what):
    with pytest.raises(InputError, match=what) as err:
        resolve_region(parse_region(text), 1000, 700, "http://127.0.0.1:1/info.json")
    assert str(err.value).startswith("http://127.0.0.1:1/info.json: ") and "1000x700" in str(err.value)


# ------------------------------------------------------------------ cropping cells


def _tiles(level: Level) -> list[dict]:
    return [t.to_json() for t in grid_tiles(level, lambda lv, c, r: f"t/{c}_{r}")]


@settings(max_examples=150, deadline=None)
@given(w=st.integers(1, 700), h=st.integers(1, 700), tile=st.integers(1, 300), overlap=st.integers(0, 2),
       data=st.data())
def test_cropped_cells_partition_the_region_and_keep_each_pixels_source(w, h, tile, overlap, data):
    level = Level(w, h, tile, tile, overlap)
    x = data.draw(st.integers(0, w - 1))
    y = data.draw(st.integers(0, h - 1))
    region = Region(x, y, data.draw(st.integers(1, w - x)), data.draw(st.integers(1, h - y)))
    tiles = _tiles(level)
    cropped = crop_tiles(tiles, region)
    cover = np.zeros((region.h, region.w), dtype=np.int32)
    by_index = {t["index"]: t for t in tiles}
    for c in cropped:
        cover[c["y"]:c["y"] + c["h"], c["x"]:c["x"] + c["w"]] += 1
        orig = by_index[c["index"]]
        # the tile's own origin on the level, seen from the cropped cell, has not moved
        assert c["x"] + region.x - c["crop_x"] == orig["x"] - orig["crop_x"]
        assert c["y"] + region.y - c["crop_y"] == orig["y"] - orig["crop_y"]
        assert c["url"] == orig["url"] and c["w"] >= 1 and c["h"] >= 1
    assert (cover == 1).all(), "cropped cells cover the region exactly once"
    # only the tiles meeting the region are kept
    meets = [t for t in tiles if t["x"] < region.x + region.w and t["x"] + t["w"] > region.x
             and t["y"] < region.y + region.h and t["y"] + t["h"] > region.y]
    assert [t["index"] for t in meets] == [c["index"] for c in cropped]


# ------------------------------------------------------------------ list_tiles


def _resolve_file(tmp_path, width=1000, height=700):
    path = tmp_path / "resolve.json"
    write_step_json(path, "resolve", {
        "input_url": "http://127.0.0.1:1/x/ImageProperties.xml", "dezoomer": "zoomify", "title": "t",
        "headers": {}, "documents": [], "candidates": [],
        "levels": [{"width": width, "height": height, "tile_width": 256, "tile_height": 256,
                    "overlap": 0, "format": "jpg", "group": "", "name": "",
                    "params": {"base": "http://127.0.0.1:1/x", "tiles_before": 0, "level": 0}}],
    })
    return path


def test_list_tiles_keeps_only_the_tiles_of_the_region_and_records_it(tmp_path):
    doc = list_tiles(resolve_json=_resolve_file(tmp_path), output=tmp_path / "tiles.json", image="img",
                     region="300,200,300,100")
    assert read_step_json(tmp_path / "tiles.json", "tiles") == doc
    assert doc["canvas"] == {"width": 300, "height": 100}
    assert doc["selection"]["region"] == {"x": 300, "y": 200, "w": 300, "h": 100, "requested": "300,200,300,100"}
    # columns 1 and 2 (256-767) of row 0 (0-255) meet x 300-599, y 200-299; so does row 1 (256-511)
    assert sorted((t["col"], t["row"]) for t in doc["tiles"]) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    first = next(t for t in doc["tiles"] if (t["col"], t["row"]) == (1, 0))
    assert (first["x"], first["y"], first["w"], first["h"], first["crop_x"], first["crop_y"]) == (0, 0, 212, 56, 44, 200)
    assert doc["estimates"]["pixels"] == 300 * 100 and doc["estimates"]["tiles"] == 4


def test_the_pixel_budget_and_format_limits_apply_to_the_region(tmp_path):
    resolve = _resolve_file(tmp_path, 100_000, 100_000)
    with pytest.raises(OutputError, match="level is 100000x100000"):
        list_tiles(resolve_json=resolve, output=None, image="i", pixel_budget=10**9)
    with pytest.raises(OutputError, match="region is 50000x50000"):
        list_tiles(resolve_json=resolve, output=None, image="i", pixel_budget=10**9, region="0.5,0.5,0.5,0.5")
    with pytest.raises(OutputError, match="70000x10"):  # JPEG's size limit applies to the region
        list_tiles(resolve_json=resolve, output=None, image="i", region="0,0,70000,10", output_file=tmp_path / "o.jpg")
    doc = list_tiles(resolve_json=resolve, output=None, image="i", pixel_budget=10**9,
                     region="0.5,0.5,0.01,0.01", output_file=tmp_path / "out.jpg")
    assert doc["canvas"] == {"width": 1000, "height": 1000}
    with pytest.raises(InputError, match="outside the chosen 1000x700 level"):
        list_tiles(resolve_json=_resolve_file(tmp_path), output=None, image="i", region="2000,0,10,10")


def test_the_cli_refuses_a_bad_region_before_any_network(capsys):
    assert dezoom_main(["http://127.0.0.1:9/none.dzi", "x.png", "--region", "1,2,3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected four numbers" in err


# ------------------------------------------------------------------ end to end on the rig

# Limits measured on correct crops (a crop of the busy middle has more JPEG noise than the whole
# image: Q75 DeepZoom 2.82 / 10.05); a black tile differs by 140+, and the misalignment check
# of `compare` catches a one-pixel slip.
REGION_CASES = [
    # (rig metadata path, tile size, region, expected rectangle of the 1000x700 reference, limits)
    ("/small/zoomify256/ImageProperties.xml", 256, "300,200,450,333", (300, 200, 450, 333), (2.0, 8.0)),
    ("/small/dz254o1.dzi", 254, "0.25,0.25,0.5,0.5", (250, 175, 500, 350), (3.5, 13.0)),
    ("/small/dz510o1png.dzi", 510, "511,509,489,191", (511, 509, 489, 191), (0.0, 0.0)),
]


@pytest.mark.parametrize("path,size,region,rect,limits", REGION_CASES,
                         ids=["zoomify-pixels", "dzi-fractions", "dzi-png-corner"])
def test_region_download_matches_the_same_crop_of_the_source(rig, tmp_path, path, size, region, rect, limits):
    url = rig.url("static", path)
    out = tmp_path / "crop.png"
    proc = run_dezoom([url, str(out), "--region", region, "-i", "0ms"], cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    x, y, w, h = rect
    ref = load_rgb(rig.ref_small)[y:y + h, x:x + w]
    got = load_rgb(out)
    assert got.shape == ref.shape, f"got {got.shape}, expected {ref.shape}"
    lx, ly, lw, lh = label_box(json.loads(rig.ref_small_json.read_text()))
    problems = compare(got, ref, (lx - x, ly - y, lw, lh)).problems(*limits)
    assert not problems, problems
    side = json.loads((tmp_path / "crop.png.json").read_text())
    assert side["region"] == {"x": x, "y": y, "w": w, "h": h, "requested": region}
    assert (side["width"], side["height"]) == (w, h) and side["complete"]
    cols = (x + w - 1) // size - x // size + 1
    rows = (y + h - 1) // size - y // size + 1
    assert side["tiles_total"] == cols * rows, "only the tiles meeting the region are listed"


def test_a_region_is_exactly_the_crop_of_the_whole_download(rig, tmp_path):
    """Same tiles, same decoder: the region's pixels equal the whole image's, bit for bit."""
    url = rig.url("static", "/small/dz254o1.dzi")
    for args in (["whole.png"], ["part.png", "--region", "0.25,0.25,0.5,0.5"]):
        proc = run_dezoom([url, *args, "-i", "0ms"], cwd=tmp_path)
        assert proc.returncode == 0, describe(proc)
    whole, part = load_rgb(tmp_path / "whole.png"), load_rgb(tmp_path / "part.png")
    assert part.shape == (350, 500, 3)
    assert np.array_equal(part, whole[175:525, 250:750])
