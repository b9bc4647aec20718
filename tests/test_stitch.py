"""The stitch step: tiles from a real tile cache pasted onto the canvas, compared with the source pixels."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from dezoom_steps.cache import store
from dezoom_steps.canvas import open_canvas
from dezoom_steps.errors import OutputError
from dezoom_steps.jsonio import read_step_json
from dezoom_steps.model import Level
from dezoom_steps.outmeta import icc_from_json
from dezoom_steps.steps.stitch import TILE_MAX_SIDE, stitch
from tilekit import encode_tile, grid_tiles, make_tileset, read_canvas, smooth, synthetic, write_tiles_json

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def run(tmp: Path, ts, **kw) -> tuple[dict, np.ndarray]:
    """Stitch `ts` into tmp/canvas.tif; returns (stitch.json, canvas pixels)."""
    report = stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=tmp / "canvas.tif",
                    report=tmp / "stitch.json", **kw)
    assert read_step_json(tmp / "stitch.json", "stitch") == report
    return report, read_canvas(tmp / "canvas.tif")


@pytest.mark.parametrize("size,tile,overlap,threads", [
    ((517, 301), 64, 0, 2),       # widths that are multiples of nothing, partial edge tiles
    ((517, 301), (96, 40), 2, 2),  # non-square tiles with DeepZoom-style overlap to crop
    ((256, 256), 256, 1, 1),      # a single tile
    ((1, 1), 64, 0, 1),           # a single pixel
    ((300, 20), 254, 1, 3),       # DeepZoom default 254 + 1
])
def test_png_tiles_reassemble_exactly(tmp_path, size, tile, overlap, threads):
    src = synthetic(*size, seed=3)
    ts = make_tileset(tmp_path, src, tile=tile, overlap=overlap)
    report, canvas = run(tmp_path, ts, threads=threads)
    np.testing.assert_array_equal(canvas, src)
    assert report["placed"] == len(ts.tiles) and report["missing"] == [] and report["size_mismatches"] == []
    assert (report["width"], report["height"]) == size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "canvas.tif", "stitch.json", "tiles.json"]


def test_jpeg_tiles_within_jpeg_noise(tmp_path):
    src = smooth(700, 450)
    ts = make_tileset(tmp_path, src, tile=128, overlap=1, fmt="JPEG", quality=92)
    _, canvas = run(tmp_path, ts)
    diff = np.abs(canvas.astype(int) - src)
    assert diff.mean() < 2 and diff.max() < 40


def test_missing_and_corrupt_tiles_stay_black_and_are_listed(tmp_path):
    src = synthetic(200, 130, seed=5).clip(1, 255)  # no black pixel in the source
    corrupt = 4
    ts = make_tileset(tmp_path, src, tile=50, skip={1},
                      transform=lambda i, px: b"\x89PNG\r\n\x1a\nnot really a png" if i == corrupt else None)
    report, canvas = run(tmp_path, ts)
    by_index = {t["index"]: t for t in ts.tiles}
    assert [m["index"] for m in report["missing"]] == [1, corrupt]
    assert [m["url"] for m in report["missing"]] == [by_index[1]["url"], by_index[corrupt]["url"]]
    assert report["placed"] == len(ts.tiles) - 2
    for i in (1, corrupt):
        t = by_index[i]
        assert not canvas[t["y"]:t["y"] + t["h"], t["x"]:t["x"] + t["w"]].any()
    mask = np.ones(src.shape[:2], bool)
    for i in (1, corrupt):
        t = by_index[i]
        mask[t["y"]:t["y"] + t["h"], t["x"]:t["x"] + t["w"]] = False
    np.testing.assert_array_equal(canvas[mask], src[mask])


def test_smaller_tile_is_pasted_partially_and_reported(tmp_path):
    src = synthetic(160, 100, seed=2).clip(1, 255)
    ts = make_tileset(tmp_path, src, tile=64, overlap=1,
                      transform=lambda i, px: encode_tile(px[:30, :20]) if i == 4 else None)
    t = ts.tiles[4]  # col 1, row 1: crop (1, 1), cell 64x36 at (64, 64)
    report, canvas = run(tmp_path, ts)
    assert report["size_mismatches"] == [{"index": 4, "expected": [65, 37], "got": [20, 30]}]
    assert report["missing"] == [] and report["placed"] == len(ts.tiles)
    x, y = t["x"], t["y"]
    np.testing.assert_array_equal(canvas[y:y + 29, x:x + 19], src[y:y + 29, x:x + 19])
    assert not canvas[y + 29:y + t["h"], x:x + t["w"]].any()
    assert not canvas[y:y + t["h"], x + 19:x + t["w"]].any()


def _stitch_variants(tmp_path, tiles_bytes: list[bytes | None], w: int, h: int):
    """Stitch one row of tiles (None: a tile missing from the cache); returns (report, canvas)."""
    level = Level(width=w * len(tiles_bytes), height=h, tile_width=w, tile_height=h)
    tiles = grid_tiles(level, lambda lv, c, r: f"http://127.0.0.1/t/{c}_{r}")
    for t, data in zip(tiles, tiles_bytes):
        if data is not None:
            store(tmp_path / "cache", t["key"], data)
    write_tiles_json(tmp_path / "tiles.json", level, tiles, "http://127.0.0.1/t/image.dzi")
    report = stitch(tiles_json=tmp_path / "tiles.json", cache_dir=tmp_path / "cache", canvas=tmp_path / "c.tif",
                    report=tmp_path / "s.json")
    with open_canvas(tmp_path / "c.tif") as cv:
        return report, cv.read_rows(0, h)


def _modes(seed: int = 7, h: int = 32, w: int = 32):
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
    grey16 = rng.integers(0, 65536, (h, w)).astype(np.uint16)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    return grey, grey16, rgb, rgba


def test_opaque_tile_modes_make_an_rgb_canvas(tmp_path):
    grey, grey16, rgb, _ = _modes()
    pal = Image.fromarray(rgb).quantize(16)
    bilevel = Image.fromarray(grey).convert("1")
    cmyk = Image.fromarray(rgb).convert("CMYK")
    variants = [  # (tile bytes, expected RGB, tolerance)
        (_png_bytes(Image.fromarray(grey)), np.repeat(grey[:, :, None], 3, 2), 0),
        (_png_bytes(Image.fromarray(grey16)), np.repeat((grey16 >> 8).astype(np.uint8)[:, :, None], 3, 2), 0),
        (_png_bytes(pal), np.asarray(pal.convert("RGB")), 0),
        (_png_bytes(bilevel), np.repeat(np.asarray(bilevel)[:, :, None] * 255, 3, 2), 0),
        (_png_bytes(Image.fromarray(rgb)), rgb, 0),
        (_tiff_bytes(cmyk), np.asarray(cmyk.convert("RGB")), 0),
    ]
    report, canvas = _stitch_variants(tmp_path, [v[0] for v in variants], 32, 32)
    assert report["channels"] == 3 and canvas.shape[2] == 3
    for i, (_, expected, tol) in enumerate(variants):
        got = canvas[:, i * 32:(i + 1) * 32].astype(int)
        assert np.abs(got - np.rint(expected)).max() <= tol, f"variant {i}"


def test_grey_tiles_make_a_grey_canvas(tmp_path):
    grey, grey16, _, _ = _modes(8)
    bilevel = Image.fromarray(grey).convert("1")
    jpeg = io.BytesIO()
    Image.fromarray(grey).save(jpeg, "JPEG", quality=95)
    variants = [
        (_png_bytes(Image.fromarray(grey)), grey, 0),
        (_png_bytes(Image.fromarray(grey16)), (grey16 >> 8).astype(np.uint8), 0),
        (_png_bytes(bilevel), np.asarray(bilevel).astype(np.uint8) * 255, 0),
        (jpeg.getvalue(), np.asarray(Image.open(io.BytesIO(jpeg.getvalue()))), 0),
    ]
    report, canvas = _stitch_variants(tmp_path, [v[0] for v in variants] + [None], 32, 32)
    assert report["channels"] == 1 and canvas.shape[2] == 1
    for i, (_, expected, tol) in enumerate(variants):
        assert np.abs(canvas[:, i * 32:(i + 1) * 32, 0].astype(int) - expected).max() <= tol, f"variant {i}"
    assert not canvas[:, 4 * 32:].any()  # the missing tile stays black


def test_a_tile_with_alpha_makes_an_rgba_canvas(tmp_path):
    grey, _, rgb, rgba = _modes(9)
    la = Image.fromarray(rgba).convert("LA")
    pal = Image.fromarray(rgb).quantize(16)
    pal.info["transparency"] = 3  # palette entry 3 is transparent (a tRNS chunk)
    variants = [
        (_png_bytes(Image.fromarray(rgba)), rgba),
        (_png_bytes(la), np.asarray(la.convert("RGBA"))),
        (_png_bytes(Image.fromarray(rgb)), np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])),
        (_png_bytes(pal, transparency=3), np.asarray(pal.convert("RGBA"))),
    ]
    report, canvas = _stitch_variants(tmp_path, [v[0] for v in variants] + [None], 32, 32)
    assert report["channels"] == 4 and canvas.shape[2] == 4
    for i, (_, expected) in enumerate(variants):
        np.testing.assert_array_equal(canvas[:, i * 32:(i + 1) * 32], expected, err_msg=f"variant {i}")
    assert (canvas[:, 3 * 32:4 * 32, 3] == 0).any()  # the transparent palette entry kept its alpha
    assert not canvas[:, 4 * 32:].any()  # the missing tile is transparent


def _tiff_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "TIFF")
    return buf.getvalue()


def _composite(la: np.ndarray) -> np.ndarray:
    """Grey + alpha over black, as RGB floats."""
    grey = la[:, :, 0].astype(float) * la[:, :, 1] / 255
    return np.repeat(grey[:, :, None], 3, 2)


def _png_bytes(img: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **options)
    return buf.getvalue()


def test_icc_profile_is_recorded(tmp_path):
    src = synthetic(64, 64)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    ts = make_tileset(tmp_path / "a", src, tile=32, icc_profile=icc)
    report = run(tmp_path / "a", ts)[0]
    assert report["icc_profile"] is True and icc_from_json(report["icc"]) == icc
    ts = make_tileset(tmp_path / "b", src, tile=32)
    report = run(tmp_path / "b", ts)[0]
    assert report["icc_profile"] is False and report["icc"] is None


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_oversized_tile_is_missing_not_a_crash(tmp_path):
    side = TILE_MAX_SIDE + 1
    # A PNG header announcing a huge tile (the pixel data is never reached).
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 100))
            + _chunk(b"IEND", b""))
    src = synthetic(64, 32).clip(1, 255)
    ts = make_tileset(tmp_path, src, tile=32, transform=lambda i, px: bomb if i == 1 else None)
    report, canvas = run(tmp_path, ts)
    assert [m["index"] for m in report["missing"]] == [1]
    assert "exceeds" in report["missing"][0]["reason"]
    assert not canvas[:, 32:].any()
    np.testing.assert_array_equal(canvas[:, :32], src[:, :32])
    assert Image.MAX_IMAGE_PIXELS != TILE_MAX_SIDE * TILE_MAX_SIDE  # the process-wide guard was restored


def test_decode_hook_is_applied(tmp_path):
    src = synthetic(96, 64)
    ts = make_tileset(tmp_path, src, tile=32, transform=lambda i, px: encode_tile(px)[::-1])  # "encrypted"
    report, canvas = run(tmp_path, ts, decode=lambda data, tile: data[::-1])
    assert report["missing"] == []
    np.testing.assert_array_equal(canvas, src)


class Interrupted(BaseException):
    """Stands for a kill in the middle of stitching."""


def test_interrupted_stitch_leaves_no_canvas(tmp_path):
    src = synthetic(96, 96)
    ts = make_tileset(tmp_path, src, tile=32)
    calls = []

    def hook(data, tile):
        calls.append(tile.index)
        if len(calls) == 5:
            raise Interrupted()
        return data

    with pytest.raises(Interrupted):
        stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=tmp_path / "out" / "canvas.tif",
               report=tmp_path / "out" / "stitch.json", decode=hook, threads=1)
    assert list((tmp_path / "out").iterdir()) == []


def test_unwritable_canvas_folder_is_an_output_error(tmp_path):
    src = synthetic(40, 40)
    ts = make_tileset(tmp_path, src, tile=32)
    (tmp_path / "plainfile").write_text("not a folder")
    with pytest.raises(OutputError, match="plainfile"):
        stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=tmp_path / "plainfile" / "canvas.tif",
               report=tmp_path / "stitch.json")
    assert not (tmp_path / "stitch.json").exists()


def test_demo_pyramid_reassembles_to_its_source(tmp_path):
    """The embedded demo: its largest DeepZoom level, stitched, is the source within JPEG noise."""
    source = np.asarray(Image.open(DEMO / "source.png").convert("RGB"))
    height, width = source.shape[:2]
    text = (DEMO / "demo.dzi").read_text()
    assert f'Width="{width}"' in text and f'Height="{height}"' in text
    max_level = int(np.ceil(np.log2(max(width, height))))
    level = Level(width=width, height=height, tile_width=256, tile_height=256, overlap=1, format="jpg")
    files = DEMO / "demo_files" / str(max_level)
    assert len(list(files.iterdir())) == level.tile_count
    base = f"file://{DEMO}/demo_files/{max_level}"
    tiles = grid_tiles(level, lambda lv, c, r: f"{base}/{c}_{r}.jpg")
    for t in tiles:
        store(tmp_path / "cache", t["key"], (files / f"{t['col']}_{t['row']}.jpg").read_bytes())
    write_tiles_json(tmp_path / "tiles.json", level, tiles, f"file://{DEMO}/demo.dzi")
    report = stitch(tiles_json=tmp_path / "tiles.json", cache_dir=tmp_path / "cache",
                    canvas=tmp_path / "canvas.tif", report=tmp_path / "stitch.json")
    assert report["missing"] == [] and report["size_mismatches"] == []
    diff = np.abs(read_canvas(tmp_path / "canvas.tif").astype(int) - source)
    assert diff.mean() < 3, diff.mean()
    # Tiles placed one pixel off would leave large errors along the grid lines and shapes' edges.
    assert np.percentile(diff, 99) < 40
