"""The `dezoom` command's one-pass TIFF (steps/render_tiff.py): the same file as stitch + encode,
without a canvas file; and the writer helpers it leans on (edge padding, cell reads)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from dezoom_steps.encoders.tiff import pad_tile
from dezoom_steps.encoders.tiff_passthrough import Plan, plan_passthrough, stitch_plan
from dezoom_steps.fill import TilesMissing
from dezoom_steps.steps.encode import encode
from dezoom_steps.steps.render_tiff import CellCanvas, render_tiff
from dezoom_steps.steps.stitch import Assembly, stitch
from tilekit import encode_tile, make_tileset, smooth


def two_steps(tmp: Path, ts, out: Path, **args) -> dict:
    """The Snakefile's way: stitch (canvas file, plan recorded) then encode; returns the sidecar."""
    plan = stitch_plan(ts.tiles_json, ts.cache, out)
    stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=tmp / "canvas.tif", report=tmp / "stitch.json",
           passthrough=plan.to_json())
    return encode(tiles_json=ts.tiles_json, stitch_json=tmp / "stitch.json", canvas=tmp / "canvas.tif",
                  output=out, cache_dir=ts.cache, **args)


def one_pass(tmp: Path, ts, out: Path, **args) -> dict:
    """The CLI's way: render_tiff with tiles.json and the plan passed in memory; returns the sidecar."""
    doc = json.loads(ts.tiles_json.read_text())
    plan = plan_passthrough(doc, ts.cache)
    assert plan is not None
    side = render_tiff(tiles=doc, cache_dir=ts.cache, plan=plan, output=out, report=tmp / "one.json", **args)
    assert side is not None
    assert not list(tmp.glob("*canvas*")), "no canvas file in one pass"
    return side


def digest(path: Path) -> str:
    """SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("pyramid", [True, False])
@pytest.mark.parametrize("case", ["edges", "missing-edge", "missing-inner", "broken-edge", "unlisted"])
def test_one_pass_writes_the_same_file_as_stitch_and_encode(tmp_path: Path, case: str, pyramid: bool) -> None:
    src = smooth(600, 330)  # 128 px tiles: a 88 px wide right column and a 74 px high bottom row
    skip = {"missing-edge": {4}, "missing-inner": {6}}.get(case, set())
    changed = {"broken-edge": {9: b"\xff\xd8\xff\xdb broken"}, "unlisted": {0: b""}}.get(case, {})
    ts = make_tileset(tmp_path / "ts", src, tile=128, fmt="JPEG", quality=88, skip=skip,
                      transform=lambda i, px: (changed[i] or encode_tile(px, "PNG")) if i in changed else None)
    if case == "unlisted":  # tile 0 decoded (a PNG), then cell (0, 1) listed by no tile: black, not band 0's pixels
        doc = json.loads(ts.tiles_json.read_text())
        doc["tiles"] = [t for t in doc["tiles"] if t["index"] != 5]
        ts.tiles_json.write_text(json.dumps(doc))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    side_a = two_steps(tmp_path / "a", ts, tmp_path / "a" / "out.tif", tiff_pyramid=pyramid)
    side_b = one_pass(tmp_path / "b", ts, tmp_path / "b" / "out.tif", tiff_pyramid=pyramid)
    assert digest(tmp_path / "a" / "out.tif") == digest(tmp_path / "b" / "out.tif")
    assert side_a == side_b
    assert side_b["tiff"]["tiles_encoded"] > 0 and side_b["tiff"]["tiles_passed_through"] > 0
    assert side_b["complete"] == (case in ("edges", "unlisted"))
    two = json.loads((tmp_path / "a" / "stitch.json").read_text())
    one = json.loads((tmp_path / "b" / "one.json").read_text())
    assert one == two, "the stitch report of one pass is the stitch step's"


def test_one_pass_with_fail_publishes_nothing_when_an_edge_tile_does_not_decode(tmp_path: Path) -> None:
    ts = make_tileset(tmp_path, smooth(600, 330), tile=128, fmt="JPEG",
                      transform=lambda i, px: b"\xff\xd8\xff\xdb broken" if i == 4 else None)
    out = tmp_path / "out.tif"
    doc = json.loads(ts.tiles_json.read_text())
    with pytest.raises(TilesMissing, match="cannot decode"):
        render_tiff(tiles=doc, cache_dir=ts.cache, plan=plan_passthrough(doc, ts.cache), output=out,
                    on_missing="fail")
    assert not out.exists() and not out.with_name("out.tif.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temporary file left"


def test_cell_canvas_decodes_each_band_once_and_serves_the_cells_the_plan_leaves(tmp_path: Path) -> None:
    src = smooth(300, 330)
    ts = make_tileset(tmp_path, src, tile=128, fmt="PNG", skip={4})  # lossless: cells compare exactly
    doc = json.loads(ts.tiles_json.read_text())
    copied = {(0, 0): "a", (1, 0): "b", (0, 2): "c"}  # cells the writer copies (PNG tiles cannot be: a made-up plan)
    plan = Plan(128, 128, (2, 2), 300, 330, tiles=copied)
    skip = {t["index"] for t in doc["tiles"] if (t["col"], t["row"]) in copied}
    with Assembly(Path(), ts.cache, skip=skip, tiles_doc=doc) as job:
        job.prepare()
        cells = CellCanvas(job, plan)
        np.testing.assert_array_equal(cells.read_region(256, 0, 44, 128), src[0:128, 256:300])
        with pytest.raises(RuntimeError, match="after the writer's last expected read"):
            cells.read_region(0, 0, 128, 128)  # band 0 had one cell to encode: it is gone
        np.testing.assert_array_equal(cells.read_region(0, 128, 128, 128), src[128:256, 0:128])
        assert not cells.read_region(128, 128, 128, 128).any(), "a missing tile stays black"
        np.testing.assert_array_equal(cells.read_region(256, 128, 44, 128), src[128:256, 256:300])
        assert len(job.results) == 4, "bands 0 and 1 decoded, band 2 not asked for yet"
        cells.finish()  # decodes band 2 for the report
        assert len(job.results) == 6
        report = job.report()
    assert report["placed"] == len(doc["tiles"]) - 1 and [m["index"] for m in report["missing"]] == [4]


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 32), w=st.integers(1, 32), channels=st.sampled_from([1, 3, 4]), seed=st.integers(0, 99))
def test_pad_tile_repeats_the_last_row_and_column_as_numpy_edge_pad(h: int, w: int, channels: int, seed: int) -> None:
    cell = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    expected = np.pad(cell, ((0, 32 - h), (0, 32 - w), (0, 0)), mode="edge")
    np.testing.assert_array_equal(pad_tile(cell, 32, 32), expected)
    np.testing.assert_array_equal(pad_tile(cell[:, ::-1], 32, 32), np.pad(cell[:, ::-1], ((0, 32 - h), (0, 32 - w),
                                                                                           (0, 0)), mode="edge"))


def test_tiff_of_one_pass_reads_as_the_source(tmp_path: Path) -> None:
    src = smooth(600, 330)
    ts = make_tileset(tmp_path, src, tile=128, fmt="JPEG", quality=95)
    out = tmp_path / "out.tif"
    one_pass(tmp_path, ts, out, tiff_pyramid=False)
    with tifffile.TiffFile(out) as tif:
        got = tif.pages[0].asarray()
    assert got.shape == src.shape and np.abs(got.astype(int) - src).mean() < 2.0


def test_memoised_header_parse_agrees_with_a_fresh_parse(tmp_path: Path) -> None:
    """The plan parses each distinct header once; a start-of-scan marker lookalike inside a comment,
    different tables or sizes after the same prefix must not reuse a wrong result."""
    from dezoom_steps.encoders.tiff_passthrough import _memo_parse, parse_header

    px = smooth(64, 48)
    plain = encode_tile(px, "JPEG", quality=80)
    fake_sos = b"\xff\xfe\x00\x08\xff\xda\x00\x0c\x01\x02"  # COM segment holding FF DA ...
    tricky = plain[:2] + fake_sos + plain[2:]
    others = [encode_tile(px, "JPEG", quality=q, subsampling=s) for q in (50, 95) for s in (0, 2)]
    grey = encode_tile(px[:, :, 0], "JPEG", quality=80)
    memo: dict = {}
    for data in [plain, tricky, *others, grey, plain, tricky, *others, grey, plain[:-7] + b"\xff\xd9"]:
        assert _memo_parse(data, memo) == parse_header(data)
    assert 0 < len(memo) <= 7
