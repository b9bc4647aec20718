"""End to end through `python -m dezoom_steps`: IIPImage against the rig's real iipsrv (behind
nginx FastCGI), krpano against sites cut by tests/krpano_fixture.py and served by the fault
server. Every download is compared with the source pixels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_support import DEMO_SOURCE, EXIT, assert_left_nothing, assert_one_line_error, pixels, run_dezoom
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)
from krpano_fixture import FACE_CELLS, make_flat_multires, make_tour
from rigutil import Rig, compare, label_box, load_rgb, log_offset, read_access_log

IIP = "/fcgi-bin/iipsrv.fcgi"
OBJ = "&obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number"
# iipsrv serves the rig's TIFFs (JPEG Q90) at Q90: measured mean 0.69, worst 32 px cell 0.67
# (tests/test_rig_e2e.py); a misplaced or missing tile moves the worst cell by 13 or more.
Q90_MEAN, Q90_CELL = 1.2, 4.0
# A smaller resolution against Pillow's 2x2 box reduction of the source: vips shrank it
# with its own rounding, so the mean (text edges mostly) measured 1.38; cells stay under 4.
HALVED_MEAN = 2.0


def sidecar(out: Path) -> dict:
    """The provenance sidecar next to an output."""
    return json.loads(out.with_name(out.name + ".json").read_text())


def assert_pixels_equal(out: Path, expected: Image.Image) -> None:
    """The output is exactly `expected` (lossless PNG tiles must stitch without a change)."""
    got, want = pixels(out), np.asarray(expected.convert("RGB")).astype(np.int16)
    assert got.shape == want.shape, f"{out.name} is {got.shape[1]}x{got.shape[0]}, expected {expected.size}"
    diff = np.argwhere(np.abs(got - want).max(axis=2) > 0)
    assert not len(diff), f"{len(diff)} pixels differ, first at (y, x) = {tuple(diff[0])}"


# ================================================================== krpano (fault server)

def test_krpano_flat_multires_is_pixel_exact(fault_server, tmp_path: Path) -> None:  # noqa: F811
    """A flat multires image (BOM, %l/%0v/%0h): the largest level is the source, each tile once."""
    site = make_flat_multires(DEMO_SOURCE, tmp_path / "site")
    srv = fault_server(tmp_path / "site")
    result = run_dezoom(tmp_path / "run", srv.url(site.xml), "out.png")
    assert result.code == 0, result.describe()
    out = tmp_path / "run" / "out.png"
    assert_pixels_equal(out, site.levels["painting"][0])
    side = sidecar(out)
    assert side["complete"] is True and side["tiles_total"] == 5 * 4  # 1200x800 in 256 px tiles
    tiles = [r["path"] for r in srv.requests() if r["path"].endswith(".png")]
    assert len(tiles) == len(set(tiles)) == 20 and all(p.startswith("/demo.tiles/l3/") for p in tiles)


def test_krpano_smaller_level_by_zoom_level(fault_server, tmp_path: Path) -> None:  # noqa: F811
    """--zoom-level 0 is the smallest level listed in multires (l1), as the generator made it."""
    site = make_flat_multires(DEMO_SOURCE, tmp_path / "site")
    srv = fault_server(tmp_path / "site")
    result = run_dezoom(tmp_path / "run", srv.url(site.xml), "small.png", "--zoom-level", "0")
    assert result.code == 0, result.describe()
    assert_pixels_equal(tmp_path / "run" / "small.png", site.levels["painting"][-1])
    assert {r["path"].split("/")[2] for r in srv.requests() if r["path"].endswith(".png")} == {"l1"}


@pytest.mark.parametrize("index,image", [(None, "painting"), (0, "painting"), (1, "room front"),
                                         (3, "room left"), (6, "room down"), (99, "room down")])
def test_krpano_tour_image_index_picks_a_scene_or_a_face(
        fault_server, tmp_path: Path, index: int | None, image: str) -> None:  # noqa: F811
    """Scenes and cube faces are images of one input: default the first, --image-index another
    (clamped to the last); the download is that image's largest level."""
    site = make_tour(DEMO_SOURCE, tmp_path / "site")
    srv = fault_server(tmp_path / "site")
    extra = [] if index is None else ["--image-index", str(index)]
    result = run_dezoom(tmp_path / "run", srv.url(site.xml), "out.png", *extra)
    assert result.code == 0, result.describe()
    assert_pixels_equal(tmp_path / "run" / "out.png", site.levels[image][0])
    if image.startswith("room "):
        gx, gy = FACE_CELLS[image.split()[1]]
        cell = (gx * 400, gy * 400, gx * 400 + 400, gy * 400 + 400)
        with Image.open(DEMO_SOURCE) as src:  # and that is the right 400 px cell of the source
            assert_pixels_equal(tmp_path / "run" / "out.png", src.crop(cell))


@pytest.mark.parametrize("xml,message", [
    ('<krpano><scene name="hall"><image><cube url="hall_%s.jpg" /></image></scene></krpano>',
     "no tiled image levels in this krpano XML (image 'hall' <cube>: missing multires attribute"),
    ("<krpano><include url='skin.xml' /></krpano>", "no <image> element"),
    ("<encrypted>KENCPUPRbm90IGEgcmVhbCBwYXlsb2Fk</encrypted>", "encrypted krpano files are not supported"),
])
def test_krpano_without_levels_is_one_line_exit_3(
        fault_server, tmp_path: Path, xml: str, message: str) -> None:  # noqa: F811
    """krpano XML that holds nothing to download: exit 3, one line naming the input, no file."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "tour.xml").write_text(xml)
    srv = fault_server(tmp_path / "site")
    url = srv.url("tour.xml")
    result = run_dezoom(tmp_path / "run", url, "out.png")
    assert_one_line_error(result, EXIT["metadata"], url, message)
    assert_left_nothing(tmp_path / "run")
    assert [r["path"] for r in srv.requests()] == ["/tour.xml"]


# ================================================================== IIPImage (rig: iipsrv)

@pytest.fixture(scope="module")
def small_ref(rig: Rig) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The rig's lossless 1000x700 reference and its text label's box."""
    return load_rgb(rig.ref_small), label_box(json.loads(rig.ref_small_json.read_text()))


def iip_requests(rig: Rig, since: int) -> list:
    """Requests to iipsrv (through nginx) logged since `since`."""
    return [e for e in read_access_log(rig.access_log, since)
            if e.port == rig.ports["iip"] and e.target.startswith(IIP)]


def assert_close(out: Path, ref: np.ndarray, box=None, mean: float = Q90_MEAN) -> None:
    """Same size as `ref`, JPEG Q90 noise only (no misplaced, missing or shifted tile)."""
    got = load_rgb(out)
    assert got.shape == ref.shape, \
        f"{out.name} is {got.shape[1]}x{got.shape[0]}, expected {ref.shape[1]}x{ref.shape[0]}"
    problems = compare(got, ref, box).problems(mean, Q90_CELL)
    assert not problems, "; ".join(problems)


def test_iipsrv_full_size_matches_reference(rig: Rig, small_ref, tmp_path: Path) -> None:
    """?FIF=small_pyr.tif: one metadata request for exactly the needed objects, then the 12
    JTL tiles of the largest resolution, each once, all 200; the stitch is the reference."""
    ref, box = small_ref
    since = log_offset(rig.access_log)
    result = run_dezoom(tmp_path / "run", f"{rig.iipsrv}?FIF=small_pyr.tif", "out.png")
    assert result.code == 0, result.describe()
    out = tmp_path / "run" / "out.png"
    assert_close(out, ref, box)
    side = sidecar(out)
    assert (side["width"], side["height"], side["complete"], side["tiles_total"]) == (1000, 700, True, 12)
    targets = [e.target for e in iip_requests(rig, since)]
    assert f"{IIP}?FIF=small_pyr.tif{OBJ}" in targets
    tiles = [t for t in targets if "JTL=" in t]
    assert sorted(tiles) == sorted(f"{IIP}?FIF=small_pyr.tif&JTL=2,{i}" for i in range(12))
    assert all(e.status == 200 for e in iip_requests(rig, since) if "JTL=" in e.target)


def test_iipsrv_lowercase_tile_url_and_a_smaller_level(rig: Rig, small_ref, tmp_path: Path) -> None:
    """A lower-case tile URL as input; --zoom-level 1 is the 500x350 resolution (2x2 tiles),
    close to the reference halved; the input's jtl never reaches a request."""
    ref, box = small_ref
    halved = np.asarray(Image.fromarray(ref.astype(np.uint8)).reduce(2)).astype(np.int16)
    half_box = tuple(v // 2 + (v % 2) * (i >= 2) for i, v in enumerate(box))  # the label, halved
    since = log_offset(rig.access_log)
    result = run_dezoom(tmp_path / "run", f"{rig.iipsrv}?fif=small_pyr.tif&jtl=2,5", "half.png", "--zoom-level", "1")
    assert result.code == 0, result.describe()
    assert_close(tmp_path / "run" / "half.png", halved, half_box, HALVED_MEAN)
    targets = [e.target for e in iip_requests(rig, since)]
    assert sorted(t for t in targets if "JTL=" in t) == sorted(f"{IIP}?fif=small_pyr.tif&JTL=1,{i}" for i in range(4))
    assert f"{IIP}?fif=small_pyr.tif{OBJ}" in targets


ODD = (1025, 769)  # 1025/2 = 512.5: rounding up would give 513 px, 3 tile columns, not 2


@pytest.fixture(scope="module")
def odd_tiff(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray]:
    """A 1025x769 pyramidal TIFF (vips, as the rig's) beside the rig's, and its source pixels.

    Its resolutions are 1025x769, 512x384 and 256x192 (vips halves rounding down, and iipsrv
    serves what the file holds): a client rounding up asks for tiles that do not exist.
    """
    h, w = ODD[1], ODD[0]
    y, x = np.mgrid[0:h, 0:w]
    source = np.stack([x & 255, y & 255, (37 * (x >> 8) + 101 * (y >> 8)) & 255], axis=-1).astype(np.uint8)
    name = "iip_odd_1025x769_pyr.tif"
    target = rig.data_dir / "tiff" / name
    if not target.is_file():
        work = tmp_path_factory.mktemp("oddtiff")
        Image.fromarray(source).save(work / "odd.png")
        vips = shutil.which("vips") or "vips"
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp.tif")
        subprocess.run([vips, "tiffsave", str(work / "odd.png"), str(tmp), "--tile", "--pyramid",
                        "--compression", "jpeg", "--Q", "90", "--tile-width", "256", "--tile-height", "256"],
                       check=True, capture_output=True, timeout=120)
        os.replace(tmp, target)
    return name, source.astype(np.int16)


def test_iipsrv_level_sizes_are_rounded_down(rig: Rig, odd_tiff, tmp_path: Path) -> None:
    """The 512x384 resolution of a 1025x769 image: 2x2 tiles, all found, no black edge."""
    name, source = odd_tiff
    since = log_offset(rig.access_log)
    result = run_dezoom(tmp_path / "run", f"{rig.iipsrv}?FIF={name}", "mid.png", "--zoom-level", "1")
    assert result.code == 0, result.describe()
    out = tmp_path / "run" / "mid.png"
    side = sidecar(out)
    assert (side["width"], side["height"], side["complete"], side["tiles_total"]) == (512, 384, True, 4)
    tiles = [e for e in iip_requests(rig, since) if "JTL=" in e.target]
    assert sorted(e.target for e in tiles) == sorted(f"{IIP}?FIF={name}&JTL=1,{i}" for i in range(4))
    assert all(e.status == 200 for e in tiles)
    halved = np.asarray(Image.fromarray(source[:768, :1024].astype(np.uint8)).reduce(2)).astype(np.int16)
    assert_close(out, halved, mean=HALVED_MEAN)

    full = run_dezoom(tmp_path / "run", f"{rig.iipsrv}?FIF={name}", "full.png")
    assert full.code == 0, full.describe()
    assert_close(tmp_path / "run" / "full.png", source)


def test_iipsrv_unknown_image_is_one_line(rig: Rig, tmp_path: Path) -> None:
    """A FIF naming no file (iipsrv answers 404): one line naming the URL, no traceback, no file."""
    url = f"{rig.iipsrv}?FIF=no_such_image.tif"
    result = run_dezoom(tmp_path / "run", url, "out.png", "-r", "0")
    assert result.code in (EXIT["metadata"], EXIT["network"]), result.describe()
    assert_one_line_error(result, result.code, url, "404")
    assert_left_nothing(tmp_path / "run")


def test_iip_metadata_missing_a_key_is_one_line(fault_server, tmp_path: Path) -> None:  # noqa: F811
    """An IIP answer without Tile-size (served as a file): exit 3, one line naming URL and key."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "iipsrv.fcgi").write_text("IIP:1.0\nMax-size:1000 700\nResolution-number:3\n")
    srv = fault_server(tmp_path / "site")
    url = srv.url("iipsrv.fcgi?FIF=a.tif")
    result = run_dezoom(tmp_path / "run", url, "out.png")
    assert_one_line_error(result, EXIT["metadata"], url + OBJ, "missing key 'Tile-size'")
    assert_left_nothing(tmp_path / "run")
    assert not [r for r in srv.requests() if "JTL=" in r["path"]]

