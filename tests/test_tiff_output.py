"""TIFF output: tiled (Big)TIFF with pyramid levels as SubIFDs, the four compressions, metadata,
and JPEG passthrough (server tiles copied into the file byte for byte).

Pixels are compared with the source image; lower levels with the source reduced by Pillow's
box filter (an implementation independent of encoders/pyramid.py). Levels are read by
tifffile, by libvips (`vips copy in.tif[subifd=k]`) and, when installed, listed by gdalinfo.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from dezoom_steps.canvas import create_canvas, open_canvas
from dezoom_steps.encoders import tiff
from dezoom_steps.encoders.pyramid import Cascade, cascade, level_sizes, reductions_to
from dezoom_steps.encoders.tiff_passthrough import (NeedMore, StoredTiles, parse_header, plan_passthrough,
                                                    read_tile_header, stitch_plan, stitch_skip, tile_facts)
from dezoom_steps.errors import InputError
from dezoom_steps.jsonio import read_step_json
from dezoom_steps.outmeta import OutputMeta
from dezoom_steps.steps.encode import encode
from dezoom_steps.steps.stitch import stitch
from required import in_ci, need_tool
from rigutil import Rig, compare, describe, label_box, load_rgb, run_dezoom
from tilekit import encode_tile, make_tileset, read_canvas, smooth, synthetic

REPO = Path(__file__).resolve().parent.parent
SMALL_W, SMALL_H = 1000, 700
DZ_LEVEL = 10  # DeepZoom level of the full 1000 px: ceil(log2(1000))


# ------------------------------------------------------------------ references independent of the code

def box_reduce(img: np.ndarray, times: int) -> np.ndarray:
    """`img` halved `times` times by Pillow's box reduction (odd edges average what exists)."""
    pil = Image.fromarray(img if img.shape[2] != 1 else img[:, :, 0])
    for _ in range(times):
        pil = pil.reduce(2)
    out = np.asarray(pil)
    return out if out.ndim == 3 else out[:, :, None]


def numpy_halve(img: np.ndarray) -> np.ndarray:
    """A 2x2 mean, rounded half up, odd edge repeated: the filter the cascade documents."""
    a = img.astype(np.int32)
    if a.shape[0] % 2:
        a = np.concatenate([a, a[-1:]], axis=0)
    if a.shape[1] % 2:
        a = np.concatenate([a, a[:, -1:]], axis=1)
    return ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)


def canvas_from(tmp: Path, pixels: np.ndarray) -> Path:
    """A canvas file holding `pixels` (h, w, channels)."""
    path = tmp / "canvas.tif"
    with create_canvas(path, pixels.shape[1], pixels.shape[0], pixels.shape[2]) as cv:
        cv.write_rows(0, pixels)
    return path


def write(tmp: Path, pixels: np.ndarray, name: str = "out.tif", **kwargs) -> tuple[Path, dict]:
    """Write `pixels` as a TIFF through write_tiff; returns (path, its report)."""
    out = tmp / name
    with open_canvas(canvas_from(tmp, pixels)) as cv, open(out, "wb") as f:
        report = tiff.write_tiff(cv, f, kwargs.pop("compression", 5), **kwargs)
    return out, report


def tifffile_levels(path: Path) -> list[np.ndarray]:
    """Every pyramid level as tifffile reads it, as (h, w, channels)."""
    with tifffile.TiffFile(path) as tif:
        levels = [lv.asarray() for lv in tif.series[0].levels]
    return [a if a.ndim == 3 else a[:, :, None] for a in levels]


def vips_level(path: Path, subifd: int, tmp: Path) -> np.ndarray:
    """Pyramid level `subifd + 1` (or level 0 for -1) as libvips reads it."""
    out = tmp / f"vips-{subifd}.png"
    proc = subprocess.run([need_tool("vips"), "copy", f"{path}[subifd={subifd}]", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    a = np.asarray(Image.open(out))
    return a if a.ndim == 3 else a[:, :, None]


def tile_bytes(path: Path, index: int) -> bytes:
    """The stored bytes of tile `index` of the first page."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        tif.filehandle.seek(page.dataoffsets[index])
        return tif.filehandle.read(page.databytecounts[index])


# ------------------------------------------------------------------ the cascade

@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 140), h=st.integers(1, 140), channels=st.sampled_from([1, 3, 4]),
       block=st.integers(1, 40), base=st.booleans(), cuts=st.lists(st.integers(0, 140), max_size=6),
       seed=st.integers(0, 1000))
def test_cascade_is_the_documented_box_filter_whatever_the_strips(w, h, channels, block, base, cuts, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    edges = sorted({0, h, *(c for c in cuts if c < h)})
    strips = [img[a:b] for a, b in zip(edges, edges[1:])]
    levels = reductions_to(w, h, 1)
    got: dict[int, list[np.ndarray]] = {}
    for b in cascade(strips, w, h, channels, levels, block, include_base=base):
        assert b.y == sum(len(r) for r in got.get(b.level, [])), "blocks of a level come in order"
        got.setdefault(b.level, []).append(b.rows)
    expected = img
    for k in range(levels + 1):
        if k:
            expected = numpy_halve(expected)
        if k == 0 and not base:
            assert 0 not in got
            continue
        blocks = got[k]
        assert all(len(r) == block for r in blocks[:-1]) and 0 < len(blocks[-1]) <= block
        np.testing.assert_array_equal(np.concatenate(blocks), expected)
    assert level_sizes(w, h, levels)[-1] == (1, 1)


def test_cascade_agrees_with_pillow_reduce_up_to_rounding():
    img = synthetic(333, 257, noise=20)
    c = Cascade(333, 257, 3, 3, block_rows=64)
    got: dict[int, list[np.ndarray]] = {}
    for y in range(0, 257, 100):
        for b in c.feed(img[y:y + 100]):
            got.setdefault(b.level, []).append(b.rows)
    for b in c.close():
        got.setdefault(b.level, []).append(b.rows)
    for k in (1, 2, 3):
        mine = np.concatenate(got[k]).astype(int)
        ref = box_reduce(img, k).astype(int)
        assert mine.shape == ref.shape
        assert np.abs(mine - ref).max() <= k, "same filter: only rounding differs"


def test_cascade_refuses_wrong_rows():
    c = Cascade(10, 4, 3, 1)
    with pytest.raises(ValueError):
        list(c.feed(np.zeros((2, 11, 3), np.uint8)))
    list(c.feed(np.zeros((2, 10, 3), np.uint8)))
    with pytest.raises(ValueError, match="2 of 4 rows"):
        list(c.close())


# ------------------------------------------------------------------ the writer, from a canvas

@pytest.mark.parametrize("compression", ["deflate", "zstd", "none"])
def test_lossless_compressions_round_trip_exactly_at_every_level(tmp_path, compression):
    src = synthetic(1100, 620, noise=30)
    out, report = write(tmp_path, src, options=tiff.TiffOptions(compression))
    assert report["compression"] == compression and not report["bigtiff"]
    levels = tifffile_levels(out)
    assert [lv.shape[:2][::-1] for lv in levels] == [(1100, 620), (550, 310), (275, 155), (138, 78)]
    expected = src
    for k, lv in enumerate(levels):
        if k:
            expected = numpy_halve(expected)
        np.testing.assert_array_equal(lv, expected)
        np.testing.assert_array_equal(vips_level(out, k - 1, tmp_path), lv)  # libvips reads the same
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.is_tiled and (page.tilewidth, page.tilelength) == (256, 256)
        assert page.compression == {"deflate": 8, "zstd": 50000, "none": 1}[compression]
        assert [p.subfiletype for p in page.pages] == [1, 1, 1]  # SubIFDs of reduced images


def test_jpeg_round_trips_close_at_every_level(tmp_path):
    src = smooth(900, 500)
    out, report = write(tmp_path, src, compression=10)
    assert report["compression"] == "jpeg" and report["tiles_passed_through"] == 0
    for k, lv in enumerate(tifffile_levels(out)):
        ref = box_reduce(src, k)
        assert lv.shape == ref.shape
        assert np.abs(lv.astype(int) - ref).mean() < 2.0, f"level {k}"
        assert np.abs(vips_level(out, k - 1, tmp_path).astype(int) - ref).mean() < 2.0
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.YCBCR


def test_no_pyramid_writes_one_level(tmp_path):
    out, report = write(tmp_path, smooth(700, 300), options=tiff.TiffOptions("deflate", pyramid=False))
    assert report["levels"] == [[700, 300]]
    with tifffile.TiffFile(out) as tif:
        assert len(tif.pages) == 1 and not tif.pages[0].pages and len(tif.series[0].levels) == 1


def test_grey_and_alpha_images(tmp_path):
    grey = synthetic(300, 200)[:, :, :1].copy()
    out, report = write(tmp_path, grey, name="grey.tif")
    assert report["compression"] == "jpeg"
    got = tifffile_levels(out)
    assert got[0].shape == grey.shape and np.abs(got[0].astype(int) - grey).mean() < 2
    rgba = np.concatenate([synthetic(300, 200), np.full((200, 300, 1), 77, np.uint8)], axis=2)
    out, report = write(tmp_path, rgba, name="rgba.tif")
    assert report["compression"] == "deflate", "JPEG has no alpha: the writer falls back to deflate"
    got = tifffile_levels(out)
    np.testing.assert_array_equal(got[0], rgba)
    np.testing.assert_array_equal(got[1], numpy_halve(rgba))


def test_metadata_is_embedded_and_output_is_reproducible(tmp_path):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    meta = OutputMeta(icc=icc, source="https://example.org/iiif/x/info.json", title="Vue d'Arles — été",
                      dpi=(300.0, 300.0))
    src = smooth(600, 400)
    first, _ = write(tmp_path, src, name="a.tif", meta=meta)
    second, _ = write(tmp_path, src, name="b.tif", meta=meta)
    assert first.read_bytes() == second.read_bytes(), "two runs give the same bytes"
    with tifffile.TiffFile(first) as tif:
        page = tif.pages[0]
        assert page.tags["InterColorProfile"].value == icc
        assert page.description == "Vue d'Arles — été; source: https://example.org/iiif/x/info.json"
        assert page.software.startswith("dezoom-steps")
        assert "DateTime" not in page.tags
        assert b"<dc:source>https://example.org/iiif/x/info.json</dc:source>" in page.tags["XMP"].value
        assert page.tags["XResolution"].value == (300, 1) and page.tags["ResolutionUnit"].value == 2
        assert all("DateTime" not in p.tags for p in page.pages)


def test_bigtiff_only_when_the_size_bound_needs_it(tmp_path, monkeypatch):
    src = smooth(600, 300)
    out, report = write(tmp_path, src, name="classic.tif")
    assert not report["bigtiff"]
    with tifffile.TiffFile(out) as tif:
        assert not tif.is_bigtiff
    # The switch itself: pretend the classic limit is tiny; the file must then be a valid BigTIFF.
    monkeypatch.setattr(tiff, "CLASSIC_LIMIT", 1000)
    out, report = write(tmp_path, src, name="big.tif")
    assert report["bigtiff"]
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff
    assert np.abs(tifffile_levels(out)[1].astype(int) - box_reduce(src, 1)).mean() < 2


def test_unknown_compression_is_a_clear_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown TIFF compression 'lzw'"):
        tiff.check_compression("lzw")


# ------------------------------------------------------------------ passthrough: which tiles

def jpeg(pixels: np.ndarray, **options) -> bytes:
    """Pillow JPEG bytes of `pixels`."""
    return encode_tile(pixels, "JPEG", **options)


def test_jpeg_headers_decide_eligibility():
    px = synthetic(64, 64)
    assert parse_header(jpeg(px, quality=80)).subsampling() == (2, 2)
    assert parse_header(jpeg(px, subsampling=0)).subsampling() == (1, 1)
    assert parse_header(jpeg(px, subsampling=1)).subsampling() is None  # 4:2:2
    assert parse_header(jpeg(px, progressive=True)).subsampling() is None  # SOF2
    assert parse_header(jpeg(px[:, :, 0])).subsampling() is None  # grey
    rgb_coded = imagecodecs.jpeg8_encode(px, level=90, colorspace="RGB", outcolorspace="RGB")
    assert parse_header(rgb_coded).subsampling() is None  # Adobe transform 0: R, G, B components
    assert parse_header(encode_tile(px, "PNG")) is None
    with pytest.raises(NeedMore):  # headers cut short: the caller reads more of the file
        parse_header(jpeg(px)[:40])


@pytest.mark.parametrize("subsampling", [0, 2])
def test_half_decode_gives_the_pixels_of_pillows_half_scale_decode(subsampling):
    """The pyramid's level 1 from each copied tile: libjpeg-turbo's 1/2-scale decode (simplejpeg) where
    it decodes without a warning, the same pixels as Pillow's draft decode; Pillow decides the rest."""
    data = jpeg(synthetic(64, 48), quality=85, subsampling=subsampling)
    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (32, 24))
        expected = np.asarray(img.convert("RGB"))
    assert expected.shape == (24, 32, 3)
    assert np.array_equal(tiff.half_decode(data, 64, 48), expected)
    cut = data[: len(data) // 2]  # simplejpeg refuses it; Pillow fails too: the cell is black
    assert not tiff.half_decode(cut, 64, 48).any()


def test_truncated_tile_is_not_passed_through(tmp_path):
    data = jpeg(synthetic(64, 64))
    (tmp_path / "ok").write_bytes(data)
    (tmp_path / "cut").write_bytes(data[:-100])
    assert read_tile_header(tmp_path / "ok")[0] is not None
    assert read_tile_header(tmp_path / "cut")[0] is None, "no EOI at the end"


def test_plan_takes_full_interior_tiles_of_a_regular_grid(tmp_path):
    src = synthetic(300, 200)
    ts = make_tileset(tmp_path, src, tile=64, fmt="JPEG", quality=90)
    plan = plan_passthrough(json.loads(ts.tiles_json.read_text()), ts.cache)
    full = {t["index"] for t in ts.tiles if t["w"] == 64 and t["h"] == 64}
    assert plan is not None and plan.indices == full and plan.subsampling == (2, 2)
    assert len(full) == 4 * 3 and len(ts.tiles) == 5 * 4


def test_plan_takes_what_the_download_noted_instead_of_reading_the_tiles(tmp_path):
    src = synthetic(300, 200)
    ts = make_tileset(tmp_path, src, tile=64, fmt="JPEG", quality=90)
    doc = json.loads(ts.tiles_json.read_text())
    from_files = plan_passthrough(doc, ts.cache)
    files = {t["key"]: (ts.cache / t["key"]).read_bytes() for t in ts.tiles}
    stored = StoredTiles()
    cut = next(t for t in ts.tiles if t["index"] in from_files.indices)
    for t in ts.tiles:  # one tile noted as truncated: the noted facts, not the file, decide
        stored.note(t["key"], files[t["key"]][:-1] if t is cut else files[t["key"]])
    for t in ts.tiles:
        (ts.cache / t["key"]).unlink()
    noted = plan_passthrough(doc, ts.cache, stored)
    assert noted is not None and noted.indices == from_files.indices - {cut["index"]}
    assert noted.subsampling == from_files.subsampling and noted.copied_bytes < from_files.copied_bytes
    # the bytes of the copied tiles come with the plan, once each; the others were let go
    assert not stored.data and len(noted.held) == len(noted.tiles)
    for path in noted.tiles.values():
        assert noted.tile_bytes(path) == files[Path(path).name]
    assert not noted.held
    with pytest.raises(FileNotFoundError):  # not held any more: read from the (emptied) cache
        noted.tile_bytes(next(iter(noted.tiles.values())))


def test_stored_tiles_hold_bytes_up_to_their_budget_and_facts_of_all():
    bodies = [jpeg(synthetic(32, 32), quality=q) for q in (50, 60, 70, 80)]
    stored = StoredTiles(budget=len(bodies[0]) + len(bodies[1]))
    for i, data in enumerate(bodies):
        stored.note(f"k{i}", data)
    assert list(stored.facts) == ["k0", "k1", "k2", "k3"] and stored.facts["k3"] == tile_facts(bodies[3])
    assert stored.data == {"k0": bodies[0], "k1": bodies[1]}


@pytest.mark.parametrize("case", ["overlap", "tile-not-mcu-multiple", "alpha-tile", "png"])
def test_plan_refuses_what_a_tiff_cannot_hold_as_is(tmp_path, case):
    src = synthetic(300, 200)
    if case == "overlap":
        ts = make_tileset(tmp_path, src, tile=64, overlap=1, fmt="JPEG")
    elif case == "tile-not-mcu-multiple":
        ts = make_tileset(tmp_path, src, tile=40, fmt="JPEG")  # 4:2:0 needs multiples of 16
    elif case == "alpha-tile":  # one RGBA PNG makes the canvas RGBA: no YCbCr JPEG TIFF
        ts = make_tileset(tmp_path, src, tile=64, fmt="JPEG", transform=lambda i, px: encode_tile(
            np.dstack([px, np.full(px.shape[:2], 9, np.uint8)]), "PNG") if i == 7 else None)
    else:
        ts = make_tileset(tmp_path, src, tile=64, fmt="PNG")
    assert plan_passthrough(json.loads(ts.tiles_json.read_text()), ts.cache) is None


def test_plan_keeps_the_majority_sampling_and_444_on_8px_grids(tmp_path):
    src = synthetic(200, 120)
    odd = lambda i, px: jpeg(px, subsampling=0) if i == 0 else None  # noqa: E731
    ts = make_tileset(tmp_path / "a", src, tile=32, fmt="JPEG", transform=odd)
    plan = plan_passthrough(json.loads(ts.tiles_json.read_text()), ts.cache)
    assert plan.subsampling == (2, 2) and 0 not in plan.indices and 1 in plan.indices
    ts = make_tileset(tmp_path / "b", src, tile=40, fmt="JPEG", subsampling=0)
    plan = plan_passthrough(json.loads(ts.tiles_json.read_text()), ts.cache)
    assert plan is not None and plan.subsampling == (1, 1) and (plan.tile_w, plan.tile_h) == (40, 40)


# ------------------------------------------------------------------ passthrough: steps, no network

def run_steps(tmp: Path, ts, output: Path, **encode_args) -> tuple[dict, set[int]]:
    """stitch (skipping what the TIFF copies, plan recorded) then encode, as the CLI does; returns (sidecar, skip)."""
    plan = stitch_plan(ts.tiles_json, ts.cache, output, encode_args.get("tiff_compression", "jpeg"))
    skip = plan.indices if plan is not None else set()
    stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=tmp / "canvas.tif", report=tmp / "stitch.json",
           passthrough=plan.to_json() if plan is not None else None)
    side = encode(tiles_json=ts.tiles_json, stitch_json=tmp / "stitch.json", canvas=tmp / "canvas.tif",
                  output=output, cache_dir=ts.cache, **encode_args)
    return side, skip


@pytest.mark.parametrize("pyramid", [True, False])
def test_passed_tiles_are_not_decoded_and_are_copied_byte_for_byte(tmp_path, pyramid):
    src = smooth(520, 300)
    ts = make_tileset(tmp_path, src, tile=128, fmt="JPEG", quality=88)
    out = tmp_path / "out.tif"
    side, skip = run_steps(tmp_path, ts, out, tiff_pyramid=pyramid)
    full = [t for t in ts.tiles if t["w"] == 128 and t["h"] == 128]
    assert skip == {t["index"] for t in full}
    canvas = read_canvas(tmp_path / "canvas.tif")
    for t in full:  # stitch left those cells alone: the TIFF cannot have taken them from the canvas
        assert not canvas[t["y"]:t["y"] + 128, t["x"]:t["x"] + 128].any()
    assert side["tiff"]["tiles_passed_through"] == len(full) == 8
    assert side["tiff"]["tiles_encoded"] == len(ts.tiles) - len(full)
    cols = 5
    for t in full:
        cached = (ts.cache / t["key"]).read_bytes()
        assert tile_bytes(out, t["row"] * cols + t["col"]) == cached
    got = tifffile_levels(out)
    assert (len(got) > 2) if pyramid else (len(got) == 1)
    assert np.abs(got[0].astype(int) - src).mean() < 1.5
    for k in range(1, min(len(got), 3)):
        assert np.abs(got[k].astype(int) - box_reduce(src, k)).mean() < 2.0, f"level {k}"
    assert read_step_json(tmp_path / "stitch.json", "stitch")["passthrough"]["indices"] == sorted(skip)
    # a PNG output does not skip anything
    assert stitch_skip(ts.tiles_json, ts.cache, tmp_path / "x.png") == set()
    assert stitch_skip(ts.tiles_json, ts.cache, out, "deflate") == set()


def test_other_compressions_with_skipped_stitch_would_be_wrong_so_none_are_skipped(tmp_path):
    src = smooth(300, 260)
    ts = make_tileset(tmp_path, src, tile=128, fmt="JPEG", quality=95)
    out = tmp_path / "out.tif"
    side, skip = run_steps(tmp_path, ts, out, tiff_compression="zstd")
    assert skip == set() and side["tiff"]["tiles_passed_through"] == 0
    stitched = read_canvas(tmp_path / "canvas.tif")
    np.testing.assert_array_equal(tifffile_levels(out)[0], stitched)


# ------------------------------------------------------------------ on the rig

@pytest.fixture(scope="module")
def reference(rig: Rig) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The rig's small source image and its text label's box."""
    return load_rgb(rig.ref_small), label_box(json.loads(rig.ref_small_json.read_text()))


def dezoom_tif(rig: Rig, tmp_path: Path, path: str, *extra: str, name: str = "out.tif") -> tuple[Path, dict]:
    """Download rig `path` to a TIFF with the dezoom command; returns (output, sidecar)."""
    proc = run_dezoom([rig.url("static", path), name, "--largest", *extra], cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, describe(proc)
    out = tmp_path / name
    return out, json.loads(out.with_name(name + ".json").read_text())


def fetch(url: str) -> bytes:
    """GET a rig URL (loopback only)."""
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def test_rig_passthrough_is_bit_exact_and_edges_are_close(rig: Rig, reference, tmp_path):
    ref, box = reference
    out, side = dezoom_tif(rig, tmp_path, "/small/dz256o0q85.dzi")
    cols, rows = 4, 3  # 1000 x 700 in 256 px tiles
    assert side["tiff"]["tiles_passed_through"] == 3 * 2 and side["tiff"]["tiles_encoded"] == 6
    got = load_rgb(out)
    assert not compare(got, ref, box).problems(1.5, 6.0), "TIFF differs from the source beyond JPEG q85 noise"
    for r in range(rows):
        for c in range(cols):
            server = fetch(rig.url("static", f"/small/dz256o0q85_files/{DZ_LEVEL}/{c}_{r}.jpg"))
            stored = tile_bytes(out, r * cols + c)
            decoded = np.asarray(Image.open(io.BytesIO(server)).convert("RGB")).astype(int)
            h, w = decoded.shape[:2]
            if c < cols - 1 and r < rows - 1:
                assert stored == server, f"tile {c},{r} is not the server's bytes"
            else:  # edge tile: decoded, padded and re-encoded with the server's tables
                assert stored != server and (w, h) != (256, 256)
                assert np.abs(got[r * 256:r * 256 + h, c * 256:c * 256 + w] - decoded).max() <= 3
    assert np.array_equal(load_rgb(out), vips_level(out, -1, tmp_path).astype(np.int16))


@pytest.mark.parametrize("path,tile,passed", [
    ("/small/zoomify256/ImageProperties.xml", 256, 6),
    ("/small/iiif512/info.json", 512, 1),
])
def test_rig_passthrough_other_formats(rig: Rig, reference, tmp_path, path, tile, passed):
    ref, box = reference
    out, side = dezoom_tif(rig, tmp_path, path)
    assert side["tiff"]["tile"] == [tile, tile] and side["tiff"]["tiles_passed_through"] == passed
    assert not compare(load_rgb(out), ref, box).problems(2.5, 10.0)


def test_rig_pyramid_levels_for_tifffile_libvips_and_gdal(rig: Rig, reference, tmp_path):
    ref, _ = reference
    out, side = dezoom_tif(rig, tmp_path, "/small/dz256o0q85.dzi")
    assert side["tiff"]["levels"] == [[1000, 700], [500, 350], [250, 175]]
    levels = tifffile_levels(out)
    src = ref.astype(np.uint8)
    for k in (1, 2):
        expected = box_reduce(src, k).astype(int)
        assert levels[k].shape == expected.shape
        # JPEG noise of the q85 tiles and of the level's own encoding; a shifted or wrong level is > 10
        assert np.abs(levels[k].astype(int) - expected).mean() < 3.5, f"level {k}"
        np.testing.assert_array_equal(vips_level(out, k - 1, tmp_path), levels[k])
    if shutil.which("gdalinfo") or in_ci():
        info = subprocess.run([need_tool("gdalinfo"), str(out)], capture_output=True, text=True, timeout=60)
        assert "Overviews: 500x350, 250x175" in info.stdout, info.stdout[-1500:]
    out2, side2 = dezoom_tif(rig, tmp_path, "/small/dz256o0q85.dzi", "--no-tiff-pyramid", name="flat.tif")
    assert side2["tiff"]["levels"] == [[1000, 700]] and len(tifffile_levels(out2)) == 1


@pytest.mark.parametrize("compression", ["jpeg", "deflate", "zstd", "none"])
def test_rig_each_compression_round_trips(rig: Rig, reference, tmp_path, compression):
    ref, box = reference
    # PNG tiles with 1 px overlap: nothing to pass through, every tile is encoded from the canvas
    out, side = dezoom_tif(rig, tmp_path, "/small/dz510o1png.dzi", "--tiff-compression", compression)
    assert side["tiff"]["compression"] == compression and side["tiff"]["tiles_passed_through"] == 0
    got = load_rgb(out)
    if compression == "jpeg":
        assert not compare(got, ref, box).problems(1.5, 6.0)
    else:
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(tifffile_levels(out)[1], numpy_halve(ref.astype(np.uint8)))


def snakemake(workdir: Path, *config: str) -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow in `workdir` with `--config KEY=VALUE...`."""
    env = dict(os.environ, XDG_CACHE_HOME=str(workdir / ".xdg-cache"))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--config", *config]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=workdir)


@pytest.mark.workflow
def test_rig_workflow_writes_a_passthrough_tiff(rig: Rig, reference, tmp_path):
    ref, box = reference
    url = rig.url("static", "/small/dz256o0q85.dzi")
    proc = snakemake(tmp_path, f"url={url}", "output=wf.tif", "min_interval=0s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "wf.tif"
    side = json.loads((tmp_path / "results" / "wf.tif.json").read_text())
    assert side["tiff"]["tiles_passed_through"] == 6 and side["tiff"]["compression"] == "jpeg"
    assert len(side["tiff"]["levels"]) == 3
    assert not compare(load_rgb(out), ref, box).problems(1.5, 6.0)
    server = fetch(rig.url("static", f"/small/dz256o0q85_files/{DZ_LEVEL}/1_1.jpg"))
    assert tile_bytes(out, 1 * 4 + 1) == server
    # the config keys reach the encode step
    proc = snakemake(tmp_path, f"url={url}", "output=wf2.tif", "min_interval=0s", "tiff_compression=zstd",
                     "tiff_pyramid=False")  # snakemake --config: True/False
    assert proc.returncode == 0, proc.stderr[-3000:]
    side = json.loads((tmp_path / "results" / "wf2.tif.json").read_text())
    assert side["tiff"]["compression"] == "zstd" and side["tiff"]["levels"] == [[1000, 700]]
    assert side["tiff"]["tiles_passed_through"] == 0


def test_a_passed_tile_with_broken_scan_data_does_not_stop_the_pyramid(tmp_path):
    src = smooth(300, 260)

    def broken(index: int, px: np.ndarray) -> bytes | None:
        if index != 0:
            return None
        data = jpeg(px, quality=90)
        sos = data.index(b"\xff\xda")
        return data[:sos + 40] + b"\xff\xc0\x00\x02" + data[sos + 40:]  # headers and EOI fine; scan broken

    ts = make_tileset(tmp_path, src, tile=128, fmt="JPEG", quality=90, transform=broken)
    out = tmp_path / "out.tif"
    side, skip = run_steps(tmp_path, ts, out)
    assert 0 in skip and side["tiff"]["tiles_passed_through"] == 4
    assert tile_bytes(out, 0) == (ts.cache / ts.tiles[0]["key"]).read_bytes(), "copied as the server sent it"
    with tifffile.TiffFile(out) as tif:  # level 0 holds the broken tile: read the lower levels only
        levels = [lv.asarray() if k else None for k, lv in enumerate(tif.series[0].levels)]
    with pytest.raises(OSError):  # the tile cannot be decoded...
        Image.open(io.BytesIO(tile_bytes(out, 0))).load()
    assert len(levels) == 3  # ...yet the pyramid is complete: that cell black, the rest as the source
    assert levels[1][:64, :64].mean() < 8
    assert np.abs(levels[1][64:, 64:].astype(int) - box_reduce(src, 1)[64:, 64:]).mean() < 2
