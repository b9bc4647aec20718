"""Folder outputs from the tile tree: `.iiif` (IIIF Image API 3.0 level-0 tree + viewer.html) and `.dzi`.

Every level is reassembled here from the written tiles, with file names computed by the test
from the formats' own rules (Image API 3.0 implementation notes §3; DeepZoom levels), and
compared with the source pixels (full size) or a box-downsampled source (lower levels). The
IIIF tree is checked by the IIIF validator (PyPI `iiif-validator`) against a real HTTP server
on 127.0.0.1, and the viewer is opened in headless Chromium and its screenshot compared with
the image. Under CI=true a missing validator or Chromium fails the test.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from lxml import etree
from PIL import Image

from dezoom_steps.canvas import create_canvas, open_canvas
from dezoom_steps.encoders import folders, tiletree
from dezoom_steps.errors import OutputError
from dezoom_steps.outmeta import OutputMeta
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from rigutil import describe, mean_abs_diff, run_dezoom

import required

unavailable = functools.partial(required.unavailable, need='it is required')  # skip locally, fail under CI=true

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo"
Image.MAX_IMAGE_PIXELS = None


def write_canvas(tmp: Path, pixels: np.ndarray) -> Path:
    """A canvas file holding `pixels` ((h, w, channels) uint8)."""
    path = tmp / "canvas.tif"
    h, w, c = pixels.shape
    with create_canvas(path, w, h, channels=c) as cv:
        cv.write_rows(0, pixels)
    return path


def write_output(tmp: Path, pixels: np.ndarray, name: str, **kw) -> tuple[Path, tuple[str, int]]:
    """Write `pixels` as the folder output `tmp/out/name`; returns its path and (sha256, bytes)."""
    canvas = write_canvas(tmp, pixels)
    out = tmp / "out" / name
    out.parent.mkdir(exist_ok=True)
    fmt = name.rsplit(".", 1)[1]
    with open_canvas(canvas) as cv:
        return out, folders.write_folder_output(cv, out, fmt, **kw)


def read_pixels(path: Path, channels: int) -> np.ndarray:
    """A tile file as (h, w, channels) uint8."""
    with Image.open(path) as im:
        mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        assert im.mode == mode, f"{path}: mode {im.mode}, expected {mode}"
        arr = np.asarray(im)
    return arr[:, :, None] if channels == 1 else arr


def downsampled(pixels: np.ndarray, factor: int) -> np.ndarray:
    """The source reduced `factor` times: each output pixel is the mean of its factor x factor
    block of source pixels (of the pixels that exist, at the right and bottom edges)."""
    h, w = pixels.shape[:2]
    ys, xs = np.arange(0, h, factor), np.arange(0, w, factor)
    sums = np.add.reduceat(np.add.reduceat(pixels.astype(np.float64), ys, axis=0), xs, axis=1)
    counts = np.minimum(factor, h - ys)[:, None, None] * np.minimum(factor, w - xs)[None, :, None]
    return (sums / counts).round().astype(np.uint8)


# ----------------------------------------------------------------- reading the trees back

def iiif_tile_request(width: int, height: int, tw: int, th: int, s: int, n: int, m: int):
    """Region and size of tile (n, m) at scale factor s: Image API 3.0 implementation notes §3."""
    xr, yr = n * tw * s, m * th * s
    wr = tw * s if xr + tw * s <= width else width - xr
    hr = th * s if yr + th * s <= height else height - yr
    ws = tw if xr + tw * s <= width else (width - xr + s - 1) // s
    hs = th if yr + th * s <= height else (height - yr + s - 1) // s
    return (xr, yr, wr, hr), (ws, hs)


def iiif_levels(root: Path, channels: int) -> dict[int, np.ndarray]:
    """Every scale factor's level reassembled from the tiles named as a IIIF client names them."""
    info = json.loads((root / "info.json").read_text())
    width, height = info["width"], info["height"]
    tiles = info["tiles"][0]
    tw, th = tiles["width"], tiles.get("height", tiles["width"])
    ext = (info.get("preferredFormats") or ["jpg"])[0]
    levels = {}
    for s in tiles["scaleFactors"]:
        lw, lh = -(-width // s), -(-height // s)
        level = np.zeros((lh, lw, channels), np.uint8)
        for m in range(-(-lh // th)):
            for n in range(-(-lw // tw)):
                (xr, yr, wr, hr), (ws, hs) = iiif_tile_request(width, height, tw, th, s, n, m)
                full = (xr, yr, wr, hr) == (0, 0, width, height)
                region = "full" if full else f"{xr},{yr},{wr},{hr}"
                # canonical size (3.0 §4.8): max for the full image at full size, else w,h
                size = "max" if full and (ws, hs) == (width, height) else f"{ws},{hs}"
                tile = read_pixels(root / region / size / "0" / f"default.{ext}", channels)
                assert tile.shape[:2] == (hs, ws), f"tile {region}/{size}: {tile.shape[1]}x{tile.shape[0]}"
                level[m * th:m * th + hs, n * tw:n * tw + ws] = tile
        levels[s] = level
    return levels


def dzi_levels(dzi: Path, channels: int) -> dict[int, np.ndarray]:
    """Every DeepZoom level reassembled from NAME_files/L/c_r tiles, overlap cropped, by level number."""
    doc = etree.parse(str(dzi)).getroot()
    ns = {"d": "http://schemas.microsoft.com/deepzoom/2008"}
    size = doc.find("d:Size", ns)
    width, height = int(size.get("Width")), int(size.get("Height"))
    t, o, ext = int(doc.get("TileSize")), int(doc.get("Overlap")), doc.get("Format")
    top = math.ceil(math.log2(max(width, height)))
    files = dzi.with_name(dzi.stem + "_files")
    levels = {}
    for lvl in range(top + 1):
        lw, lh = math.ceil(width / 2 ** (top - lvl)), math.ceil(height / 2 ** (top - lvl))
        level = np.zeros((lh, lw, channels), np.uint8)
        for r in range(math.ceil(lh / t)):
            for c in range(math.ceil(lw / t)):
                tile = read_pixels(files / str(lvl) / f"{c}_{r}.{ext}", channels)
                x0, y0 = c * t - (o if c else 0), r * t - (o if r else 0)
                x1, y1 = min((c + 1) * t + o, lw), min((r + 1) * t + o, lh)
                assert tile.shape[:2] == (y1 - y0, x1 - x0), f"level {lvl} tile {c}_{r}"
                cw, ch = min(t, lw - c * t), min(t, lh - r * t)
                ox, oy = c * t - x0, r * t - y0
                level[r * t:r * t + ch, c * t:c * t + cw] = tile[oy:oy + ch, ox:ox + cw]
        levels[lvl] = level
    assert set(levels[0].shape[:2]) == {1}, "DeepZoom level 0 is one pixel"
    return levels


def assert_level_close(level: np.ndarray, src: np.ndarray, factor: int, exact: bool, what: str) -> None:
    """Full size: the source pixels (exactly for lossless tiles); lower levels: a downsampled source."""
    h, w = level.shape[:2]
    if (w, h) == (src.shape[1], src.shape[0]):
        if exact:
            np.testing.assert_array_equal(level, src, err_msg=what)
        else:
            assert mean_abs_diff(level, src) < 2.0, what
        return
    if w < 8 or h < 8:  # a few pixels: rounding at the edges dominates
        return
    ref = downsampled(src, factor)
    tolerance = 2.5 if min(w, h) >= 64 else 8  # JPEG's 4:2:0 chroma costs more on tiny levels
    assert mean_abs_diff(level, ref) < tolerance, f"{what}: differs from the downsampled source"


# ----------------------------------------------------------------- round trips of the encoder

CASES = [  # (width, height, channels): odd sizes, one-tile images, tall/wide, grey and RGBA
    (1200, 800, 3), (777, 1301, 3), (300, 200, 3), (1025, 1, 3), (613, 509, 1), (530, 270, 4),
]


def source(width: int, height: int, channels: int) -> np.ndarray:
    """A test picture with 1, 3 or 4 channels, smooth at every level (waves scale with the image),
    so that JPEG's chroma subsampling of the small levels keeps them comparable."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(1, width - 1), y / max(1, height - 1)
    rgb = np.stack([40 + 180 * u, 60 + 150 * v, 128 + 90 * np.sin(2 * np.pi * (1.5 * u + v))], axis=-1)
    rgb = rgb.round().clip(0, 255).astype(np.uint8)
    if channels == 1:
        return rgb[:, :, 1:2].copy()
    if channels == 4:
        alpha = np.linspace(40, 255, width, dtype=np.float64).round().astype(np.uint8)
        return np.concatenate([rgb, np.broadcast_to(alpha[None, :, None], (height, width, 1))], axis=2)
    return rgb


@pytest.mark.parametrize("width,height,channels", CASES)
def test_iiif_tree_round_trip(tmp_path, width, height, channels):
    src = source(width, height, channels)
    out, (digest, size) = write_output(tmp_path, src, "img.iiif", compression=5)
    info = json.loads((out / "info.json").read_text())
    assert info["@context"] == "http://iiif.io/api/image/3/context.json" and info["profile"] == "level0"
    assert (info["type"], info["width"], info["height"]) == ("ImageService3", width, height)
    assert info["id"] == "."  # no base URL given: relative to the folder (documented)
    ext = "png" if channels == 4 else "jpg"
    assert (info.get("preferredFormats") or ["jpg"]) == [ext]
    levels = iiif_levels(out, channels)
    assert levels[1].shape == src.shape
    for s, level in levels.items():
        assert_level_close(level, src, s, exact=channels == 4, what=f"scale factor {s}")
    # a coarsest level fits in one tile; every listed size is there as full/w,h, the largest as full/max
    tw = info["tiles"][0]["width"]
    assert max(levels[max(levels)].shape[:2]) <= tw
    for sz in info["sizes"]:
        path = out / "full" / f"{sz['width']},{sz['height']}" / "0" / f"default.{ext}"
        assert read_pixels(path, channels).shape[:2] == (sz["height"], sz["width"])
    biggest = max(info["sizes"], key=lambda sz: sz["width"])
    with Image.open(out / "full" / "max" / "0" / f"default.{ext}") as im:
        assert im.size == (biggest["width"], biggest["height"])
    if (biggest["width"], biggest["height"]) != (width, height):
        assert info["maxWidth"] >= biggest["width"] and info["maxHeight"] >= biggest["height"]
    assert (out / "viewer.html").read_text().count('"scaleFactors"') == 1  # info.json embedded
    assert size == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


@pytest.mark.parametrize("width,height,channels", CASES)
def test_dzi_round_trip(tmp_path, width, height, channels):
    src = source(width, height, channels)
    out, _ = write_output(tmp_path, src, "img.dzi", compression=5)
    assert sorted(p.name for p in out.parent.iterdir()) == ["img.dzi", "img_files"]
    levels = dzi_levels(out, channels)
    top = max(levels)
    assert levels[top].shape == src.shape
    for lvl, level in levels.items():
        assert_level_close(level, src, 2 ** (top - lvl), exact=channels == 4, what=f"DeepZoom level {lvl}")


def test_compression_sets_jpeg_quality_and_icc_goes_into_every_tile(tmp_path):
    src = source(600, 400, 3)
    icc = _srgb_profile()
    fine, _ = write_output(tmp_path / "a", src, "fine.iiif", compression=0, meta=OutputMeta(icc=icc))
    coarse, _ = write_output(tmp_path / "b", src, "coarse.dzi", compression=60)
    fine_tiles = list(fine.rglob("default.jpg"))
    for tile in fine_tiles:
        with Image.open(tile) as im:
            assert im.info.get("icc_profile") == icc, tile
    fine_bytes = sum(p.stat().st_size for p in fine.rglob("*.jpg"))
    coarse_bytes = sum(p.stat().st_size for p in coarse.with_name("coarse_files").rglob("*.jpg"))
    assert fine_bytes > 2 * coarse_bytes  # quality 100 vs 40


def _srgb_profile() -> bytes:
    """An sRGB ICC profile made by Pillow's ImageCms."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_same_input_gives_byte_identical_trees_and_the_documented_digest(tmp_path):
    src = source(900, 700, 3)
    for fmt in ("iiif", "dzi"):
        a, (digest_a, size_a) = write_output(tmp_path / f"a-{fmt}", src, f"same.{fmt}", threads=1)
        b, (digest_b, size_b) = write_output(tmp_path / f"b-{fmt}", src, f"same.{fmt}", threads=2)
        assert (digest_a, size_a) == (digest_b, size_b)
        files_a = sorted(p.relative_to(a.parent) for p in a.parent.rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(b.parent) for p in b.parent.rglob("*") if p.is_file())
        assert files_a == files_b
        for rel in files_a:
            assert (a.parent / rel).read_bytes() == (b.parent / rel).read_bytes(), rel
        # the digest is what `sha256sum` over the sorted file list gives (README's recipe)
        parts = " ".join(folders.parts(a, fmt))
        shell = f"find {parts} -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum"
        proc = subprocess.run(["sh", "-c", shell], cwd=a.parent, capture_output=True, text=True, check=True)
        assert proc.stdout.split()[0] == digest_a


def test_existing_output_is_refused_then_replaced_with_overwrite(tmp_path):
    src = source(300, 300, 3)
    out, _ = write_output(tmp_path, src, "x.iiif")
    marker = out / "extra.txt"
    marker.write_text("old")
    with pytest.raises(OutputError, match="exists"):
        write_output(tmp_path, src, "x.iiif")
    assert marker.exists()
    write_output(tmp_path, src, "x.iiif", overwrite=True)
    assert not marker.exists() and (out / "info.json").exists()
    # a leftover x_files folder counts as an existing DeepZoom output
    (out.parent / "y_files").mkdir()
    with pytest.raises(OutputError, match="y_files"):
        write_output(tmp_path, src, "y.dzi")
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.iiif", "y_files"]


def test_disk_full_leaves_no_tree_under_the_final_name(tmp_path, monkeypatch):
    src = source(1200, 900, 3)
    calls = {"n": 0}
    real = tiletree._write_file

    def fill_up(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(tiletree, "_write_file", fill_up)
    for name in ("full.iiif", "full.dzi"):
        calls["n"] = 0
        with pytest.raises(OSError):
            write_output(tmp_path, src, name)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []  # no final name, no temporary


# ----------------------------------------------------------------- the CLI and the workflow

def test_cli_writes_iiif_and_dzi_from_the_demo(tmp_path):
    ref = np.asarray(Image.open(DEMO / "source.png").convert("RGB"))
    for args, name in ((["demo.iiif"], "demo.iiif"), (["demo-dz", "--format", "dzi"], "demo-dz.dzi")):
        proc = run_dezoom([str(DEMO / "demo.dzi"), *args], tmp_path)
        assert proc.returncode == 0, describe(proc)
        side = json.loads((tmp_path / f"{name}.json").read_text())
        assert side["format"] == name.rsplit(".", 1)[1] and side["complete"] and len(side["sha256"]) == 64
        out = tmp_path / name
        level = iiif_levels(out, 3)[1] if name.endswith(".iiif") else dzi_levels(out, 3)[11]
        assert mean_abs_diff(level, ref) < 4, f"{name}: differs from the demo's source"
    again = run_dezoom([str(DEMO / "demo.dzi"), "demo.iiif"], tmp_path)
    assert again.returncode == 5 and "exists" in again.stderr
    # published elsewhere: info.json's id is the given folder URL + the output's name
    proc = run_dezoom([str(DEMO / "demo.dzi"), "my pub.iiif", "--iiif-base-url", "https://example.org/iiif/"], tmp_path)
    assert proc.returncode == 0, describe(proc)
    info = json.loads((tmp_path / "my pub.iiif" / "info.json").read_text())
    assert info["id"] == "https://example.org/iiif/my%20pub.iiif"  # the name percent-encoded (3.0 §3)
    bad = run_dezoom([str(DEMO / "demo.dzi"), "bad.iiif", "--iiif-base-url", "ftp://example.org/"], tmp_path)
    assert bad.returncode == 2 and "--iiif-base-url" in bad.stderr and not (tmp_path / "bad.iiif").exists()


@pytest.mark.workflow
def test_snakemake_writes_folder_outputs(tmp_path):
    config = {"inputs": [{"url": str(DEMO / "demo.dzi"), "name": "as_iiif", "format": "iiif"},
                         {"url": str(DEMO / "demo.dzi"), "name": "as_dzi", "format": "dzi"}],
              "iiif_base_url": "https://example.org/pub"}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--cores", "2", "--configfile", str(tmp_path / "run.yaml")]
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / ".xdg-cache"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "results"
    assert (results / "as_iiif.iiif" / "info.json").is_file() and (results / "as_iiif.iiif" / "viewer.html").is_file()
    assert (results / "as_dzi.dzi").is_file() and (results / "as_dzi_files" / "11" / "0_0.jpg").is_file()
    info = json.loads((results / "as_iiif.iiif" / "info.json").read_text())
    assert info["id"] == "https://example.org/pub/as_iiif.iiif"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["complete"] == summary["images"] == 2
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


# ----------------------------------------------------------------- the IIIF validator

def validator_squares() -> np.ndarray:
    """The validator's own 1000 x 1000 test image: 10 x 10 squares of its known colours."""
    try:
        from iiif_validator.validator import ValidationInfo
    except ImportError:
        unavailable("the IIIF validator is not installed (pip install iiif-validator)")
    colours = ValidationInfo().colorInfo  # colorInfo[x][y]: the square at column x, row y
    img = np.zeros((1000, 1000, 3), np.uint8)
    for x in range(10):
        for y in range(10):
            img[y * 100:(y + 1) * 100, x * 100:(x + 1) * 100] = colours[x][y]
    return img


def run_validator(server: str, identifier: str) -> dict[str, str]:
    """Run every level-0 test of the validator for Image API 3.0; returns failures by test name."""
    from iiif_validator.validator import ImageAPI, TestSuite, ValidationInfo

    names = sorted(n for n, d in TestSuite(ValidationInfo()).list_tests("3.0").items() if d["level"] == 0)
    assert {"info_json", "id_basic", "id_squares", "format_jpg", "size_nofull"} <= set(names)
    failures = {}
    for name in names:
        result = ImageAPI(identifier, server, "", "http", "", "3.0", debug=False)
        TestSuite(ValidationInfo()).run_test(name, result)
        if result.exception is not None:
            failures[name] = str(result.exception)
    return failures


def test_iiif_validator_level0(fault_server, tmp_path):  # noqa: F811
    """The validator's level-0 tests for 3.0 are info_json (the document, its `id` equal to the
    URL it was fetched from), id_basic and format_jpg (`full/max/0/default.jpg` is a JPEG),
    id_squares (that image is the validator's own colour-square picture: so ours is made of it)
    and size_nofull (`full/full` must not answer, 3.0 renamed it `max`). Its other tests are
    level 1-2 features (regions and sizes on demand, rotation, qualities, CORS...)."""
    squares = validator_squares()
    site = tmp_path / "site"
    site.mkdir()
    srv = fault_server(site)
    canvas = write_canvas(tmp_path, squares)
    with open_canvas(canvas) as cv:
        folders.write_folder_output(cv, site / "squares.iiif", "iiif", compression=5, iiif_base_url=srv.base)
    # a larger image: full/max is then a reduced level, announced by maxWidth/maxHeight
    (tmp_path / "big").mkdir()
    big = write_canvas(tmp_path / "big", source(2600, 1700, 3))
    with open_canvas(big) as cv:
        folders.write_folder_output(cv, site / "big.iiif", "iiif", iiif_base_url=srv.base + "/")
    host = srv.base.split("://", 1)[1]
    assert run_validator(host, "squares.iiif") == {}
    failures = run_validator(host, "big.iiif")
    assert set(failures) == {"id_squares"}, failures  # not the validator's picture
    assert json.loads((site / "big.iiif" / "info.json").read_text())["id"] == srv.url("big.iiif")


# ----------------------------------------------------------------- the viewer in Chromium

def chromium() -> str:
    """The Chromium command (Debian package `chromium`)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    unavailable("chromium is not installed (apt-get install chromium; tests/rig/install_packages.sh)")
    raise AssertionError("unreachable")


def screenshot(page: str, tmp: Path, size: tuple[int, int]) -> np.ndarray:
    """Open `page` (a file: URL) in headless Chromium and return its screenshot as RGB pixels."""
    shot = tmp / "shot.png"
    shot.unlink(missing_ok=True)
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp / 'profile'}",
           f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=10000",
           f"--screenshot={shot}", page]
    env = dict(os.environ, HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "xdg"), XDG_CACHE_HOME=str(tmp / "xdg"))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert shot.exists(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return np.asarray(Image.open(shot).convert("RGB"))


BUTTONS = (0, 0, 140, 50)  # the zoom buttons' corner (x, y, w, h), left out of comparisons


def without_buttons(img: np.ndarray) -> np.ndarray:
    """A copy with the button corner blanked (compare images with both blanked)."""
    out = img.astype(np.int16).copy()
    x, y, w, h = BUTTONS
    out[y:y + h, x:x + w] = 0
    return out


def test_viewer_shows_the_image_offline_in_chromium(tmp_path):
    ref = np.asarray(Image.open(DEMO / "source.png").convert("RGB"))  # 1200 x 800
    proc = run_dezoom([str(DEMO / "demo.dzi"), "demo.iiif"], tmp_path)
    assert proc.returncode == 0, describe(proc)
    page = (tmp_path / "demo.iiif" / "viewer.html").as_uri()
    work = tmp_path / "chromium"
    work.mkdir()

    # whole image in a 1000 x 600 window: scale 0.75, 900 x 600 centred, 50 px of background each side
    shot = screenshot(page, work, (1000, 600))
    assert shot.shape == (600, 1000, 3)
    assert shot.std() > 20, "blank screenshot"
    inside = shot[:, 50:950]
    expected = np.asarray(Image.fromarray(ref).resize((900, 600), Image.BOX))
    assert mean_abs_diff(without_buttons(inside), without_buttons(expected)) < 8
    for margin in (shot[BUTTONS[3]:, :48], shot[:, 952:]):
        assert np.abs(margin.astype(int) - (30, 30, 30)).max() <= 2, "image not where the fit puts it"

    # zoomed in on a 300 x 200 region: full-resolution tiles (scale factor 1) drawn at 3x
    shot = screenshot(page + "#region=100,100,300,200", work, (900, 600))
    expected = np.asarray(Image.fromarray(ref[100:300, 100:400]).resize((900, 600), Image.BILINEAR))
    assert mean_abs_diff(without_buttons(shot), without_buttons(expected)) < 8
    coarse = np.asarray(Image.fromarray(ref[100:300, 100:400]).resize((75, 50), Image.BOX)
                        .resize((900, 600), Image.BILINEAR))
    assert mean_abs_diff(without_buttons(shot), without_buttons(expected)) < \
        mean_abs_diff(without_buttons(shot), without_buttons(coarse)), "zoomed view is not sharp"


# ----------------------------------------------------------------- memory bounded by the width

CHILD = r"""
import json, resource, sys
from pathlib import Path
import numpy as np
from dezoom_steps.canvas import create_canvas, open_canvas
from dezoom_steps.encoders.folders import write_folder_output
width, height, fmt, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
with create_canvas(folder / "canvas.tif", width, height) as cv:
    x = np.arange(width)
    for y in range(0, height, 256):
        n = min(256, height - y)
        yy = np.arange(y, y + n)[:, None]
        cv.write_rows(y, np.stack([(x * 7 + yy) % 256, (yy * 3 + x // 5) % 256, (x // 9 ^ yy) % 256], -1)
                      .astype(np.uint8))
with open_canvas(folder / "canvas.tif") as cv:
    write_folder_output(cv, folder / f"out.{fmt}", fmt, 5)
# VmHWM: the peak of this program's own memory (ru_maxrss would also count the parent's
# resident size at fork time, which Linux carries across exec)
status = Path("/proc/self/status")
hwm = [int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:")] \
    if status.exists() else [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]
print(json.dumps({"maxrss": hwm[0] * 1024}))
"""


def peak_rss(tmp: Path, width: int, height: int, fmt: str) -> int:
    """Peak RSS (bytes) of a fresh process that writes a width x height canvas as `fmt`."""
    tmp.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(width), str(height), fmt, str(tmp)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["maxrss"]


@pytest.mark.parametrize("fmt", ["iiif", "dzi"])
def test_peak_memory_does_not_grow_with_the_image_height(tmp_path, fmt):
    width = 3000
    short = peak_rss(tmp_path / "short", width, 2000, fmt)
    tall = peak_rss(tmp_path / "tall", width, 40000, fmt)  # 360 MB of raw pixels
    assert tall - short < 24 << 20, f"peak RSS grew from {short >> 20} MB to {tall >> 20} MB"
    assert tall < 200 << 20, f"peak RSS {tall >> 20} MB"
