"""Tile validation (dezoom_steps/tilecheck.py): pure checks, then the downloader and the cache on a real server."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from dezoom_steps import cache, net, tilecheck, tiledownload
from dezoom_steps.model import TileRef
from dezoom_steps.steps.fetch_tiles import fetch_tiles
from dezoom_steps.tilecheck import TileInvalid, check_tile
from faultserver_fixture import fault_server  # noqa: F401
from test_politeness import write_tiles


def encoded(fmt: str, size: tuple[int, int] = (256, 256)) -> bytes:
    """A noisy image of `size` encoded as `fmt` (noise keeps JPEG bodies realistic in size)."""
    img = Image.effect_noise(size, 60).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` (a decompression bomb by its header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt, name", [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"),
                                       ("BMP", "bmp"), ("TIFF", "tiff")])
def test_valid_images_pass_in_both_modes(fmt: str, name: str) -> None:
    data = encoded(fmt, (64, 48))
    assert check_tile(data) == name and check_tile(data, mode="header") == name


@pytest.mark.parametrize("body, ctype, needle", [
    (b"", "image/jpeg", "empty body"),
    (b"<!DOCTYPE html><html><body>Error</body></html>", "text/html", "got an HTML page"),
    (b"  <html><title>x</title>", "", "got an HTML page"),
    (b'{"error": "not found"}', "application/json", "got JSON"),
    (b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>", "application/xml", "got XML"),
    (b"GARBAGE\x00\x01", "image/jpeg", "not an image"),
])
def test_non_images_are_refused(body: bytes, ctype: str, needle: str) -> None:
    for mode in tilecheck.CHECK_MODES:
        with pytest.raises(TileInvalid, match=needle):
            check_tile(body, ctype, mode=mode)


def test_truncated_jpeg_fails_decode_but_passes_header_mode() -> None:
    data = encoded("JPEG")
    cut = data[: len(data) // 2]
    with pytest.raises(TileInvalid, match="jpeg tile does not decode"):
        check_tile(cut)
    assert check_tile(cut, mode="header") == "jpeg"
    with pytest.raises(TileInvalid, match=f"truncated body: got {len(cut)} of {len(data)} bytes"):
        check_tile(cut, expected_length=len(data), mode="header")


def _noise_jpeg(fmt: str) -> bytes:
    """A JPEG of seeded noise: its scan is long and dense, so a damaged stretch in it shows."""
    channels = len(fmt)
    pixels = random.Random(7).randbytes(256 * 192 * channels)
    buf = io.BytesIO()
    Image.frombytes(fmt, (256, 192), pixels).save(buf, "JPEG", quality=85)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["L", "RGB"])
def test_the_fast_jpeg_check_says_yes_only_when_pillow_would(fmt: str) -> None:
    """simplejpeg's strict 1/8-scale decode is a fast yes; its no leaves the verdict to Pillow."""
    clean = _noise_jpeg(fmt)
    assert tilecheck._turbo_accepts(clean)  # the fast path is taken for a clean tile
    assert check_tile(clean) == "jpeg"
    mid = len(clean) // 2
    damaged = clean[:mid] + bytes(40) + clean[mid + 40:]  # forty bytes of the scan zeroed
    assert not tilecheck._turbo_accepts(damaged)  # libjpeg warns ("corrupt JPEG data"): no fast yes...
    assert check_tile(damaged) == "jpeg"  # ...and Pillow, which lets warnings pass, accepts it as before
    for cut in (clean[: len(clean) // 2], clean[:-40]):
        assert not tilecheck._turbo_accepts(cut)
        with pytest.raises(TileInvalid, match="jpeg tile does not decode"):
            check_tile(cut)


@pytest.mark.parametrize("width, height", [(20000, 20000), (16385, 8), (8, 100000), (0, 10)])
def test_oversized_or_empty_headers_are_refused_before_decoding(width: int, height: int) -> None:
    for mode in tilecheck.CHECK_MODES:
        with pytest.raises(TileInvalid, match="larger than|pixels|broken"):
            check_tile(png_with_size(width, height), mode=mode)


def test_the_tile_limit_holds_even_when_pillow_limit_is_disabled_elsewhere() -> None:
    """Pillow's limit is process-wide; tilecheck sets its own explicitly and restores the caller's value."""
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # as some other code may have done
        with pytest.raises(TileInvalid, match="larger than 16384x16384"):
            check_tile(png_with_size(30000, 30000))
        assert Image.MAX_IMAGE_PIXELS is None
        Image.MAX_IMAGE_PIXELS = 1000  # a stricter caller value does not refuse normal tiles
        assert check_tile(encoded("PNG", (64, 64))) == "png"
        assert Image.MAX_IMAGE_PIXELS == 1000
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    assert tilecheck.MAX_TILE_SIDE == 16384


@pytest.fixture
def broken_site(tmp_path: Path, fault_server):  # noqa: F811
    """A server with a good JPEG, a JPEG cut in half (served as a whole file), a bomb header and JSON."""
    root = tmp_path / "site"
    root.mkdir()
    good = encoded("JPEG")
    files = {"good.jpg": good, "cut.jpg": good[: len(good) // 2], "bomb.png": png_with_size(40000, 40000),
             "error.jpg": b'{"error": "quota"}'}
    for name, data in files.items():
        (root / name).write_bytes(data)
    return fault_server(root), files


@pytest.mark.parametrize("workers", [0, 2], ids=["in-loop", "helpers"])
def test_invalid_tiles_are_retried_then_missing_and_never_cached(broken_site, tmp_path: Path, workers: int) -> None:
    """The same verdicts whether the download loop checks the tiles or check helper processes do
    (which also write the cache themselves)."""
    srv, files = broken_site
    urls = [srv.url(p) for p in ("good.jpg", "cut.jpg", "bomb.png", "error.jpg", "m/html=1/good.jpg", "m/empty=1/good.jpg")]
    tiles_json, cache_dir = tmp_path / "tiles.json", tmp_path / "cache"
    write_tiles(tiles_json, srv.url("ImageProperties.xml"), urls)
    opts = net.NetOptions(parallelism=2, retries=2, retry_delay=0.02, min_interval=0, timeout=5, check_workers=workers)
    report = fetch_tiles(tiles_json=tiles_json, cache_dir=cache_dir, report=tmp_path / "r.json", options=opts)
    failed = {f["url"].rsplit("/", 1)[-1]: f for f in report["failed"]}
    assert set(failed) == {"cut.jpg", "bomb.png", "error.jpg"}
    assert "does not decode" in failed["cut.jpg"]["error"] and failed["cut.jpg"]["attempts"] == 3
    assert "larger than" in failed["bomb.png"]["error"] and "got JSON" in failed["error.jpg"]["error"]
    assert srv.count("cut.jpg") == 3 and srv.count("m/html=1/good.jpg") == 2 and srv.count("m/empty=1/good.jpg") == 2
    stored = {p.name: p.read_bytes() for p in cache_dir.iterdir() if not p.name.startswith(".")}
    assert stored == {cache.cache_key(u): files["good.jpg"] for u in (urls[0], urls[4], urls[5])}
    for data in stored.values():
        check_tile(data)  # everything in the cache decodes


@pytest.mark.parametrize("workers", [0, 1], ids=["in-loop", "helper"])
def test_header_mode_skips_the_decode(broken_site, workers: int) -> None:
    srv, files = broken_site
    tiles = [TileRef(index=i, col=0, row=0, url=srv.url(p), x=0, y=0, w=1, h=1) for i, p in enumerate(("cut.jpg", "bomb.png"))]
    opts = net.NetOptions(retries=0, min_interval=0, timeout=5, tile_check="header", check_workers=workers)
    cut, bomb = sorted(tiledownload.download_tiles(tiles, opts, {}), key=lambda r: r.tile.index)
    assert cut.ok and cut.data == files["cut.jpg"]
    assert not bomb.ok and "larger than" in bomb.error


def test_a_check_helper_loads_the_fast_check_in_the_background(tmp_path: Path) -> None:
    """In a process without numpy (a check helper), simplejpeg loads in a thread while Pillow checks."""
    (tmp_path / "tile.jpg").write_bytes(_noise_jpeg("RGB"))
    code = (
        "import sys, time\n"
        "from dezoom_steps import tilecheck\n"
        "assert 'numpy' not in sys.modules\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "tilecheck.load_turbo_in_background()\n"
        "assert tilecheck.check_tile(data) == 'jpeg'  # checked meanwhile, by Pillow or simplejpeg\n"
        "deadline = time.monotonic() + 60\n"
        "while tilecheck._turbo is tilecheck._LOADING and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print(getattr(tilecheck._turbo, '__name__', tilecheck._turbo), tilecheck._turbo_accepts(data))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "tile.jpg")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["simplejpeg", "True"]
