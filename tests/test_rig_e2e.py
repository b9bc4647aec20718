"""End to end through the `dezoom` command against real servers on 127.0.0.1 (tests/rig/):
nginx serving vips-made pyramids, and iipsrv serving a pyramidal TIFF. Every download is
stitched to PNG and compared with the lossless reference image of the rig."""

from __future__ import annotations

import io
import json
import math
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rigutil import (Rig, compare, describe, label_box, load_rgb, log_offset, read_access_log,
                     run_dezoom)

pytestmark = pytest.mark.rig

SMALL_W, SMALL_H = 1000, 700
TILE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Limits:
    """How far a correct stitch may differ from the reference (JPEG noise only).

    Measured on correct downloads, then set so that a misplaced, missing or swapped tile, or
    a one-pixel slip, fails (test_limits_catch_broken_stitches checks that).
    """

    mean: float   # mean |diff| over the whole image
    block: float  # worst 32x32 cell outside the text label


# Measured on correct downloads (vips 8.14, iipsrv 1.1): worst case mean / worst cell
#   Q75 (dz254o1, iiif*): 1.78 / 6.2     Q85 (dz256o0q85, zoomify*): 0.97 / 2.8
#   iipsrv (Q90 TIFF, served at Q90): 0.69 / 0.67      PNG tiles: 0 / 0
# Broken stitches on the same image: a swapped 256 tile moves the worst cell by 13-20, a
# black tile by 140+, and a one-pixel slip shows as cells that fit better shifted.
EXACT = Limits(0.0, 0.0)          # mean 0 means pixel-identical
JPEG_Q75 = Limits(2.5, 10.0)
JPEG_Q85 = Limits(1.5, 6.0)
JPEG_Q90 = Limits(1.2, 4.0)


@dataclass(frozen=True)
class Case:
    """One pyramid on one server: where its metadata is and what a download must look like."""

    id: str
    port: str            # rig port name
    path: str            # metadata path on that port
    tile_prefix: str     # the tile requests' targets start with this
    tile_size: int
    limits: Limits

    @property
    def tiles(self) -> int:
        """Tiles of the full-size level: ceil(W / size) * ceil(H / size)."""
        return math.ceil(SMALL_W / self.tile_size) * math.ceil(SMALL_H / self.tile_size)


IIP = "/fcgi-bin/iipsrv.fcgi"
CASES = [
    Case("dzi-254-overlap1", "static", "/small/dz254o1.dzi", "/small/dz254o1_files/", 254, JPEG_Q75),
    Case("dzi-256-q85", "static", "/small/dz256o0q85.dzi", "/small/dz256o0q85_files/", 256, JPEG_Q85),
    Case("dzi-510-png", "static", "/small/dz510o1png.dzi", "/small/dz510o1png_files/", 510, EXACT),
    Case("zoomify-256", "static", "/small/zoomify256/ImageProperties.xml", "/small/zoomify256/TileGroup", 256, JPEG_Q85),
    Case("zoomify-512", "static", "/small/zoomify512/ImageProperties.xml", "/small/zoomify512/TileGroup", 512, JPEG_Q85),
    Case("iiif2-512", "static", "/small/iiif512/info.json", "/small/iiif512/", 512, JPEG_Q75),
    Case("iiif2-256", "static", "/small/iiif256/info.json", "/small/iiif256/", 256, JPEG_Q75),
    Case("iiif3-512", "static", "/small/iiif3_512/info.json", "/small/iiif3_512/", 512, JPEG_Q75),
    Case("iipsrv-iiif2", "iip", f"{IIP}?IIIF=small_pyr.tif/info.json", f"{IIP}?IIIF=small_pyr.tif/", 256, JPEG_Q90),
    Case("iipsrv-deepzoom", "iip", f"{IIP}?DeepZoom=small_pyr.tif.dzi", f"{IIP}?DeepZoom=small_pyr.tif_files/", 256, JPEG_Q90),
    Case("iipsrv-zoomify", "iip", f"{IIP}?Zoomify=small_pyr.tif/ImageProperties.xml", f"{IIP}?Zoomify=small_pyr.tif/TileGroup", 256, JPEG_Q90),
]


# ------------------------------------------------------------------ helpers

@pytest.fixture(scope="module")
def reference(rig: Rig) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The small reference image and its text label's box."""
    return load_rgb(rig.ref_small), label_box(json.loads(rig.ref_small_json.read_text()))


def download(tmp_path: Path, url: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `dezoom URL out.png --largest EXTRA...` in tmp_path; returns (process, output path)."""
    proc = run_dezoom([url, "out.png", "--largest", *extra], cwd=tmp_path)
    assert "Traceback" not in proc.stderr, describe(proc)
    return proc, tmp_path / "out.png"


def sidecar(out: Path) -> dict:
    """The provenance sidecar written next to an output (OUTFILE + ".json")."""
    side = out.with_name(out.name + ".json")
    assert side.is_file(), f"no sidecar {side.name} next to {out.name}"
    return json.loads(side.read_text())


def assert_matches(out: Path, ref: np.ndarray, box: tuple[int, int, int, int], limits: Limits) -> None:
    """The output has the reference's size and differs from it by JPEG noise only."""
    got = load_rgb(out)
    assert got.shape == ref.shape, f"{out.name} is {got.shape[1]}x{got.shape[0]}, expected {SMALL_W}x{SMALL_H}"
    problems = compare(got, ref, box).problems(limits.mean, limits.block)
    assert not problems, f"{out.name} does not match the reference: " + "; ".join(problems)


def tile_requests(rig: Rig, port: str, prefix: str, since: int) -> list:
    """Tile requests (image suffixes) logged on `port` under `prefix` since a log offset."""
    return [e for e in read_access_log(rig.access_log, since)
            if e.port == rig.ports[port] and e.target.startswith(prefix) and e.target.endswith(TILE_SUFFIXES)]


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    """HTTP status of a GET on the rig (loopback only)."""
    assert url.startswith("http://127.0.0.1:"), url
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def dzi_tiles(base: str, tile: int, ext: str) -> list[tuple[str, int, int, int, int]]:
    """(url, x, y, w, h) of every full-size tile of an overlap-0 DZI of the small image.

    DeepZoom: the full-size level is ceil(log2(max(W, H))); tiles are {level}/{col}_{row}.
    """
    level = math.ceil(math.log2(max(SMALL_W, SMALL_H)))
    out = []
    for row in range(math.ceil(SMALL_H / tile)):
        for col in range(math.ceil(SMALL_W / tile)):
            x, y = col * tile, row * tile
            out.append((f"{base}_files/{level}/{col}_{row}.{ext}", x, y,
                        min(tile, SMALL_W - x), min(tile, SMALL_H - y)))
    return out


def missing_urls(side: dict) -> set[str]:
    """The URLs of the sidecar's missing_tiles (entries may be URLs or tile objects)."""
    urls = set()
    for entry in side["missing_tiles"]:
        urls.add(entry if isinstance(entry, str) else entry["url"])
    return urls


# ------------------------------------------------------------------ the rig itself

def test_rig_serves_what_the_cases_assume(rig: Rig) -> None:
    """The servers behave as the cases below expect, so a failure there is the command's."""
    for port in ("static", "holes"):  # IIIF ids are rewritten to the port asked
        info = json.load(urllib.request.urlopen(rig.url(port, "/small/iiif512/info.json"), timeout=10))
        assert info["@id"] == rig.url(port, "/small/iiif512")
    info = json.load(urllib.request.urlopen(rig.url("iip", f"{IIP}?IIIF=small_pyr.tif/info.json"), timeout=10))
    assert info["@id"].startswith(rig.iip + "/"), info["@id"]  # the HTTP_HOST:port fix
    assert (info["width"], info["height"]) == (SMALL_W, SMALL_H)
    assert http_status(rig.url("referer", "/small/dz254o1.dzi")) == 403
    assert http_status(rig.url("referer", "/small/dz254o1.dzi"), {"Referer": rig.viewer_url}) == 200
    assert http_status(rig.url("headers", "/small/dz254o1.dzi"), {"Cookie": "session=s3cret"}) == 403
    assert http_status(rig.url("headers", "/small/dz254o1.dzi"),
                       {"Cookie": "session=s3cret", "User-Agent": "Mozilla/5.0"}) == 200
    assert Image.open(rig.ref_small).size == (SMALL_W, SMALL_H)


# ------------------------------------------------------------------ every format, every server

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_download_matches_reference(rig: Rig, reference, tmp_path: Path, case: Case) -> None:
    """The largest level, stitched, is the source image; each of its tiles fetched once."""
    ref, box = reference
    since = log_offset(rig.access_log)
    proc, out = download(tmp_path, rig.url(case.port, case.path))
    assert proc.returncode == 0, describe(proc)
    assert out.is_file(), describe(proc)
    assert_matches(out, ref, box, case.limits)

    side = sidecar(out)
    assert (side["width"], side["height"], side["complete"]) == (SMALL_W, SMALL_H, True)
    assert side["missing_tiles"] == [] and side["tiles_total"] == case.tiles

    tiles = tile_requests(rig, case.port, case.tile_prefix, since)
    targets = [e.target for e in tiles]
    assert all(e.status == 200 for e in tiles), [(e.target, e.status) for e in tiles if e.status != 200]
    assert len(set(targets)) == case.tiles, f"expected {case.tiles} distinct tiles, got {sorted(set(targets))}"
    assert len(targets) == len(set(targets)), "some tiles were downloaded twice"


# ------------------------------------------------------------------ protected servers

def test_referer_protected_needs_user_header(rig: Rig, reference, tmp_path: Path) -> None:
    """The referer port serves only to the viewer's Referer: -H makes it work, and without
    it the command fails with a network error naming the URL."""
    ref, box = reference
    url = rig.url("referer", "/small/dz256o0q85.dzi")
    assert http_status(url) == 403  # the server really is protected

    since = log_offset(rig.access_log)
    proc, out = download(tmp_path, url, "-H", f"Referer: {rig.viewer_url}")
    assert proc.returncode == 0, describe(proc)
    assert_matches(out, ref, box, JPEG_Q85)
    tiles = tile_requests(rig, "referer", "/small/dz256o0q85_files/", since)
    assert len(tiles) == 12 and all(e.referer == rig.viewer_url for e in tiles)

    bare = tmp_path / "without"
    bare.mkdir()
    proc = run_dezoom([url, "out.png"], cwd=bare)
    # the metadata document could not be downloaded: a network error (4), naming URL and status
    assert proc.returncode == 4, describe(proc)
    assert url in proc.stderr and "403" in proc.stderr, describe(proc)
    assert not (bare / "out.png").exists()


def test_cookie_protected_with_browser_user_agent(rig: Rig, reference, tmp_path: Path) -> None:
    """The headers port wants a cookie and a browser User-Agent: the cookie comes from -H,
    the User-Agent is the command's default (a browser's, as in dezoomify-rs)."""
    ref, box = reference
    url = rig.url("headers", "/small/zoomify256/ImageProperties.xml")
    proc, out = download(tmp_path, url, "-H", "Cookie: session=s3cret")
    assert proc.returncode == 0, describe(proc)
    assert_matches(out, ref, box, JPEG_Q85)

    bare = tmp_path / "without"
    bare.mkdir()
    proc = run_dezoom([url, "out.png"], cwd=bare)
    assert proc.returncode == 4 and "403" in proc.stderr, describe(proc)


# ------------------------------------------------------------------ faults

def test_holes_give_partial_download(rig: Rig, reference, tmp_path: Path) -> None:
    """Tiles that always 404: exit code 6, the image is still written, the sidecar lists the
    missing tiles, their cells are black and everything else is the source image."""
    ref, box = reference
    base = rig.url("holes", "/small/dz256o0q85")
    tiles = dzi_tiles(base, 256, "jpg")
    holes = [t for t in tiles if http_status(t[0]) == 404]
    assert 0 < len(holes) < len(tiles), "the holes port should lose some, not all, of these tiles"

    proc, out = download(tmp_path, base + ".dzi", "--retries", "1", "--retry-delay", "50ms")
    assert proc.returncode == 6, describe(proc)
    assert out.is_file(), "a partial download must still write the image"
    side = sidecar(out)
    assert side["complete"] is False and side["tiles_total"] == len(tiles)
    assert missing_urls(side) == {t[0] for t in holes}

    got = load_rgb(out)
    expected = ref.copy()
    for _, x, y, w, h in holes:
        assert not got[y:y + h, x:x + w].any(), f"missing tile at x={x} y={y} is not black"
        expected[y:y + h, x:x + w] = 0
    problems = compare(got, expected, box).problems(JPEG_Q85.mean, JPEG_Q85.block)
    assert not problems, "; ".join(problems)


def test_flaky_server_completes_with_retries(rig: Rig, reference, tmp_path: Path) -> None:
    """About half the tile requests fail (503, 429, dropped connection); retries get them all."""
    ref, box = reference
    since = log_offset(rig.access_log)
    proc, out = download(tmp_path, rig.url("flaky", "/small/dz254o1.dzi"),
                         "--retries", "20", "--retry-delay", "50ms", "-n", "4")
    assert proc.returncode == 0, describe(proc)
    assert_matches(out, ref, box, JPEG_Q75)
    assert sidecar(out)["complete"] is True

    tiles = tile_requests(rig, "flaky", "/small/dz254o1_files/", since)
    failed = [e for e in tiles if e.status != 200]
    ok = {e.target for e in tiles if e.status == 200}
    assert failed, "no request failed, so retries were not exercised (is the flaky port configured?)"
    assert len(ok) == 12
    assert {e.target for e in failed} <= ok, "a failed tile was never fetched successfully"


# ------------------------------------------------------------------ the limits themselves

def _jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """`img` encoded as a JPEG by Pillow and decoded again: realistic compression noise."""
    buf = io.BytesIO()
    Image.fromarray(img.astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.int16)


@pytest.mark.parametrize("limits,quality", [(JPEG_Q75, 75), (JPEG_Q85, 85), (JPEG_Q90, 90)],
                         ids=["q75", "q85", "q90"])
def test_limits_catch_broken_stitches(rig: Rig, reference, limits: Limits, quality: int) -> None:
    """The pixel limits above pass JPEG noise (the reference through Pillow's encoder) but
    fail a swapped tile, a tile moved by one tile, a one-pixel slip at a seam and a black tile."""
    ref, box = reference
    noisy = _jpeg_roundtrip(ref, quality)
    assert not compare(noisy, ref, box).problems(limits.mean, limits.block)

    swapped = noisy.copy()
    swapped[0:256, 0:256], swapped[0:256, 256:512] = noisy[0:256, 256:512], noisy[0:256, 0:256]
    moved = noisy.copy()
    moved[:, 256:] = noisy[:, :-256]
    slip_x = noisy.copy()
    slip_x[:, 255:] = noisy[:, 254:-1]
    slip_y = noisy.copy()
    slip_y[255:, :] = noisy[254:-1, :]
    hole = noisy.copy()
    hole[256:512, 512:768] = 0
    broken = {"swapped tiles": swapped, "shifted by a tile": moved, "one-pixel slip across": slip_x,
              "one-pixel slip down": slip_y, "black tile": hole}
    for what, img in broken.items():
        assert compare(img, ref, box).problems(limits.mean, limits.block), f"{what} passed the limits"
