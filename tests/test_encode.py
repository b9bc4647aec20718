"""The encode step and the stitch/encode step scripts: output file, sidecar, refusals, no temp files left."""

from __future__ import annotations

import errno
import hashlib
import io
import resource
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import tifffile
from PIL import Image

from dezoom_steps.errors import InputError, OutputError
from dezoom_steps.jsonio import contract, read_step_json, write_step_json
from dezoom_steps.steps import encode as encode_mod
from dezoom_steps.steps.encode import encode
from dezoom_steps.steps.stitch import stitch
from tilekit import make_tileset, read_canvas, smooth, synthetic

REPO = Path(__file__).resolve().parent.parent


def stitched(tmp: Path, src: np.ndarray, **kw):
    """Tiles of `src` in a cache, stitched into tmp/work; returns (tileset, work folder)."""
    ts = make_tileset(tmp, src, **kw)
    work = tmp / "work"
    stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=work / "canvas.tif", report=work / "stitch.json")
    return ts, work


def run_encode(ts, work: Path, output: Path, **kw) -> dict:
    return encode(tiles_json=ts.tiles_json, stitch_json=work / "stitch.json", canvas=work / "canvas.tif",
                  output=output, **kw)


def leftovers(folder: Path) -> list[str]:
    """Temporary files anywhere under `folder`."""
    return [str(p) for p in folder.rglob("*.part")]


def test_png_output_and_sidecar_with_a_missing_tile(tmp_path):
    src = synthetic(333, 211, seed=9)
    ts, work = stitched(tmp_path, src, tile=64, overlap=1, skip={3})
    out = tmp_path / "results" / "image.png"
    side = run_encode(ts, work, out)
    assert side == read_step_json(out.with_name("image.png.json"), "output")  # schema-valid, as written
    jsonschema.validate(side, contract("output"))
    canvas = read_canvas(work / "canvas.tif")
    np.testing.assert_array_equal(np.asarray(Image.open(out)), canvas)
    data = out.read_bytes()
    assert side["sha256"] == hashlib.sha256(data).hexdigest() and side["bytes"] == len(data)
    assert side["output"] == "image.png" and side["format"] == "png"
    assert side["source"] == "image.dzi"  # a local input: its file name only, no local path
    assert str(tmp_path) not in out.with_name("image.png.json").read_text()
    assert side["complete"] is False and side["tiles_total"] == len(ts.tiles)
    assert side["missing_tiles"] == [{"index": 3, "url": "image_files/0/3_0.png"}]
    assert (side["width"], side["height"], side["dezoomer"], side["title"]) == (333, 211, "deepzoom", "test image")
    for name in ("dezoom-steps", "python", "Pillow", "numpy", "tifffile"):
        assert side["tool_versions"][name]
    assert leftovers(tmp_path) == []


def test_complete_jpeg_and_tiff_outputs(tmp_path):
    src = smooth(300, 200)
    ts, work = stitched(tmp_path, src, tile=128)
    side = run_encode(ts, work, tmp_path / "out.JPG", sidecar=tmp_path / "meta" / "side.json", compression=10)
    assert side["complete"] is True and side["missing_tiles"] == [] and side["format"] == "jpeg"
    assert read_step_json(tmp_path / "meta" / "side.json", "output")["sha256"] == side["sha256"]
    assert not (tmp_path / "out.JPG.json").exists()
    got = np.asarray(Image.open(tmp_path / "out.JPG"))
    assert np.abs(got.astype(int) - src).mean() < 2
    side = run_encode(ts, work, tmp_path / "out.tif")
    assert side["format"] == "tiff"
    got = tifffile.imread(tmp_path / "out.tif")
    assert got.shape == src.shape and np.abs(got.astype(int) - src).mean() < 2


def test_existing_output_is_refused_and_untouched(tmp_path):
    ts, work = stitched(tmp_path, synthetic(50, 40), tile=32)
    out = tmp_path / "exists.png"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match=r"exists\.png: file exists; not overwritten"):
        run_encode(ts, work, out)
    assert out.read_bytes() == b"precious"
    assert not (tmp_path / "exists.png.json").exists() and leftovers(tmp_path) == []


def test_unwritable_output_folder(tmp_path):
    ts, work = stitched(tmp_path, synthetic(50, 40), tile=32)
    (tmp_path / "afile").write_text("a regular file, not a folder")
    with pytest.raises(OutputError, match="afile"):
        run_encode(ts, work, tmp_path / "afile" / "out.png")
    assert leftovers(tmp_path) == []


def test_bad_requests_fail_before_writing(tmp_path):
    ts, work = stitched(tmp_path, synthetic(50, 40), tile=32)
    with pytest.raises(OutputError, match=r"out\.xyz: unknown output format"):
        run_encode(ts, work, tmp_path / "out.xyz")
    with pytest.raises(InputError, match="compression"):
        run_encode(ts, work, tmp_path / "out.png", compression=101)
    with pytest.raises(InputError, match="nothing.tif"):
        encode(tiles_json=ts.tiles_json, stitch_json=work / "stitch.json", canvas=tmp_path / "nothing.tif",
               output=tmp_path / "out.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "tiles.json", "work"]


def test_disk_full_is_an_output_error():
    err = encode_mod._output_error(Path("x.png"), OSError(errno.ENOSPC, "No space left on device"))
    assert isinstance(err, OutputError) and str(err).startswith("x.png: disk full")


def script(name: str, *args: str, fsize: int | None = None) -> subprocess.CompletedProcess:
    """Run scripts/NAME from the repository root, as the workflow does (no installation needed)."""
    limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))) if fsize else None
    return subprocess.run([sys.executable, f"scripts/{name}", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, preexec_fn=limit)


def test_step_scripts(tmp_path):
    src = synthetic(120, 90, seed=1)
    ts = make_tileset(tmp_path, src, tile=50, skip={0})
    work = tmp_path / "work"
    p = script("stitch.py", "--tiles", str(ts.tiles_json), "--cache", str(ts.cache),
               "--canvas", str(work / "canvas.tif"), "--report", str(work / "stitch.json"))
    assert p.returncode == 0, p.stderr
    args = ["--tiles", str(ts.tiles_json), "--stitch", str(work / "stitch.json"), "--canvas", str(work / "canvas.tif"),
            "--output", str(tmp_path / "out.png")]
    p = script("encode.py", *args)
    assert p.returncode == 0, p.stderr
    assert read_step_json(tmp_path / "out.png.json", "output")["missing_tiles"][0]["index"] == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), read_canvas(work / "canvas.tif"))
    p = script("encode.py", *args)
    assert p.returncode == OutputError.exit_code
    assert p.stderr.strip().splitlines() == [f"encode: error: {tmp_path / 'out.png'}: file exists; not overwritten"]
    p = script("stitch.py", "--tiles", str(tmp_path / "none.json"), "--cache", str(ts.cache),
               "--canvas", str(work / "c2.tif"), "--report", str(work / "s2.json"))
    assert p.returncode == InputError.exit_code and p.stderr.startswith("stitch: error: ")
    assert len(p.stderr.strip().splitlines()) == 1


def test_write_failure_leaves_no_file(tmp_path):
    """A real write error in the middle of the image (file size limit) -> exit 5, nothing left behind."""
    src = synthetic(400, 300, noise=60)
    ts, work = stitched(tmp_path, src, tile=100)
    out = tmp_path / "results" / "big.bmp"
    out.parent.mkdir()
    p = script("encode.py", "--tiles", str(ts.tiles_json), "--stitch", str(work / "stitch.json"),
               "--canvas", str(work / "canvas.tif"), "--output", str(out), fsize=100_000)
    assert p.returncode == OutputError.exit_code, p.stderr
    assert p.stderr.startswith(f"encode: error: {out}: cannot write")
    assert list(out.parent.iterdir()) == []


def test_sidecar_of_http_source_keeps_the_url(tmp_path):
    src = synthetic(40, 30)
    ts, work = stitched(tmp_path, src, tile=32)
    doc = read_step_json(ts.tiles_json, "tiles")
    doc["input_url"] = "http://127.0.0.1:8080/img/x.dzi"
    write_step_json(ts.tiles_json, "tiles", {k: v for k, v in doc.items() if k != "schema"})
    side = run_encode(ts, work, tmp_path / "o.bmp")
    assert side["source"] == "http://127.0.0.1:8080/img/x.dzi" and side["format"] == "bmp"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO((tmp_path / "o.bmp").read_bytes()))), src)


def test_folder_formats_known_without_importing_their_writers() -> None:
    from dezoom_steps.encoders import folders

    assert set(encode_mod.FOLDER_FORMATS) == folders.FORMATS
