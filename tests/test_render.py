"""The render step: one pass from the tile cache into the output, the same bytes as stitch + encode."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dezoom_steps.errors import OutputError
from dezoom_steps.fill import TilesMissing
from dezoom_steps.jsonio import read_step_json
from dezoom_steps.steps.encode import encode
from dezoom_steps.steps.render import render, streams
from dezoom_steps.steps.stitch import stitch
from tilekit import encode_tile, make_tileset, synthetic

REPO = Path(__file__).resolve().parent.parent


def two_ways(tmp: Path, ts, name: str, **options) -> tuple[Path, dict, Path, dict]:
    """The same tiles written by stitch + encode and by render; returns (path, sidecar) of each."""
    work = tmp / "two-steps"
    stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=work / "canvas.tif", report=work / "stitch.json")
    a = tmp / "a" / name
    side_a = encode(tiles_json=ts.tiles_json, stitch_json=work / "stitch.json", canvas=work / "canvas.tif",
                    output=a, **options)
    b = tmp / "b" / name
    side_b = render(tiles_json=ts.tiles_json, cache_dir=ts.cache, output=b, report=tmp / "render" / "stitch.json",
                    **options)
    return a, side_a, b, side_b


@pytest.mark.parametrize("name", ["image.png", "image.jpg", "image.webp", "image.bmp"])
def test_render_writes_the_same_bytes_as_stitch_then_encode(tmp_path, name):
    src = synthetic(700, 530, seed=4)
    ts = make_tileset(tmp_path / "tiles", src, tile=64, overlap=1, skip={7})
    a, side_a, b, side_b = two_ways(tmp_path, ts, name)
    assert b.read_bytes() == a.read_bytes()
    assert side_b["sha256"] == side_a["sha256"] and side_b["missing_tiles"] == side_a["missing_tiles"] != []
    assert read_step_json(tmp_path / "render" / "stitch.json", "stitch")["missing"][0]["index"] == 7
    assert not list((tmp_path / "render").glob("*.tif")), "render must not write a canvas file"


def test_render_of_a_folder_output_matches_too(tmp_path):
    src = synthetic(600, 333, seed=5)
    ts = make_tileset(tmp_path / "tiles", src, tile=128)
    a, side_a, b, side_b = two_ways(tmp_path, ts, "image.iiif")
    assert side_a["sha256"] == side_b["sha256"]  # the digest covers every file of the tree
    assert sorted(p.relative_to(b) for p in b.rglob("*")) == sorted(p.relative_to(a) for p in a.rglob("*"))


def test_on_missing_fail_publishes_nothing_when_a_tile_does_not_decode(tmp_path):
    src = synthetic(300, 200, seed=6)
    ts = make_tileset(tmp_path / "tiles", src, tile=64,  # tile 3: a JPEG header, then garbage
                      transform=lambda i, px: encode_tile(px, "JPEG")[:200] + bytes(300) if i == 3 else None)
    out = tmp_path / "out" / "image.png"
    with pytest.raises(TilesMissing, match="1 of 20 tiles are missing.*cannot decode"):
        render(tiles_json=ts.tiles_json, cache_dir=ts.cache, output=out, report=tmp_path / "stitch.json",
               on_missing="fail")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    assert read_step_json(tmp_path / "stitch.json", "stitch")["missing"][0]["index"] == 3


def test_tiff_is_left_to_stitch_and_encode(tmp_path):
    assert streams("a.png") and streams("a.JPG") and streams("a.iiif") and not streams("a.tif")
    ts = make_tileset(tmp_path / "tiles", synthetic(64, 64), tile=64)
    with pytest.raises(OutputError, match="stitch and encode"):
        render(tiles_json=ts.tiles_json, cache_dir=ts.cache, output=tmp_path / "x.tiff", report=tmp_path / "s.json")


def test_render_script_exit_code_and_one_line_error(tmp_path):
    src = synthetic(200, 150, seed=7)
    ts = make_tileset(tmp_path / "tiles", src, tile=64)
    out = tmp_path / "out.png"
    out.write_bytes(b"already here")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "render.py"), "--tiles", str(ts.tiles_json),
                           "--cache", str(ts.cache), "--report", str(tmp_path / "s.json"), "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 5 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert str(out) in proc.stderr and out.read_bytes() == b"already here"
    ok = tmp_path / "ok.jpg"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "render.py"), "--tiles", str(ts.tiles_json),
                           "--cache", str(ts.cache), "--report", str(tmp_path / "s.json"), "--output", str(ok)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    with Image.open(io.BytesIO(ok.read_bytes())) as img:
        assert np.abs(np.asarray(img).astype(int) - src).mean() < 10  # JPEG noise; a black image: ~100
