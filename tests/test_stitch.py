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
from dezoom_steps.errors import OutputError
from dezoom_steps.jsonio import read_step_json
from dezoom_steps.model import Level
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


def test_tile_modes_are_converted_to_rgb(tmp_path):
    rng = np.random.default_rng(7)
    h = w = 32
    grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
    grey16 = rng.integers(0, 65536, (h, w)).astype(np.uint16)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    pal = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).quantize(16)
    bilevel = Image.fromarray(grey).convert("1")
    grey_alpha = Image.fromarray(rgba).convert("LA")
    variants = [  # (tile bytes, expected RGB, tolerance)
        (_png_bytes(Image.fromarray(grey)), np.repeat(grey[:, :, None], 3, 2), 0),
        (_png_bytes(Image.fromarray(grey16)), np.repeat((grey16 >> 8).astype(np.uint8)[:, :, None], 3, 2), 0),
        (_png_bytes(Image.fromarray(rgba)), (rgba[:, :, :3].astype(int) * rgba[:, :, 3:] / 255), 1),
        (_png_bytes(pal), np.asarray(pal.convert("RGB")), 0),
        (_png_bytes(bilevel), np.repeat(np.asarray(bilevel)[:, :, None] * 255, 3, 2), 0),
        (_png_bytes(grey_alpha), _composite(np.asarray(grey_alpha)), 1),
    ]
    level = Level(width=w * len(variants), height=h, tile_width=w, tile_height=h)
    tiles = grid_tiles(level, lambda lv, c, r: f"http://127.0.0.1/t/{c}_{r}")
    for t, (data, _, _) in zip(tiles, variants):
        store(tmp_path / "cache", t["key"], data)
    write_tiles_json(tmp_path / "tiles.json", level, tiles, "http://127.0.0.1/t/image.dzi")
    stitch(tiles_json=tmp_path / "tiles.json", cache_dir=tmp_path / "cache", canvas=tmp_path / "c.tif",
           report=tmp_path / "s.json")
    canvas = read_canvas(tmp_path / "c.tif")
    for i, (_, expected, tol) in enumerate(variants):
        got = canvas[:, i * w:(i + 1) * w].astype(int)
        assert np.abs(got - np.rint(expected)).max() <= tol, f"variant {i}"


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
    assert run(tmp_path / "a", ts)[0]["icc_profile"] is True
    ts = make_tileset(tmp_path / "b", src, tile=32)
    assert run(tmp_path / "b", ts)[0]["icc_profile"] is False


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
