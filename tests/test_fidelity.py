"""Fidelity of the outputs: grey, RGB and RGBA kept; ICC profile, XMP and EXIF embedded; same bytes every run."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from dezoom_steps.canvas import create_canvas
from dezoom_steps.encoders import jpeg
from dezoom_steps.outmeta import OutputMeta
from dezoom_steps.steps.encode import encode
from dezoom_steps.steps.stitch import stitch
from required import need_tool
from tilekit import make_tileset, synthetic

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _tool(name: str) -> str:
    """The path of a command-line tool; skipped locally, a failure under CI=true, when it is missing."""
    return need_tool(name, "scripts/setup.sh --test installs it")


def source(channels: int, width: int = 300, height: int = 190) -> np.ndarray:
    """A test image with 1, 3 or 4 channels (alpha varies across the image, fully transparent in a corner)."""
    rgb = synthetic(width, height, seed=channels)
    if channels == 1:
        return rgb[:, :, 1].copy()
    if channels == 3:
        return rgb
    alpha = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    alpha[:40, :40] = 0
    return np.dstack([rgb, alpha])


def pipeline(tmp: Path, src: np.ndarray, name: str, **tile_options) -> tuple[Path, dict]:
    """Tiles of `src` (PNG unless told) stitched and encoded to tmp/out/name; returns (path, sidecar)."""
    ts = make_tileset(tmp / "tiles", src, tile=64, **tile_options)
    work = tmp / "work"
    stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=work / "canvas.tif", report=work / "stitch.json")
    out = tmp / "out" / name
    side = encode(tiles_json=ts.tiles_json, stitch_json=work / "stitch.json", canvas=work / "canvas.tif",
                  output=out, overwrite=True)
    return out, side


def vips_pixels(path: Path, tmp: Path) -> np.ndarray:
    """The pixels of `path` as libvips decodes them (through an uncompressed TIFF)."""
    target = tmp / f"vips-{path.stem}.tif"
    subprocess.run([_tool("vips"), "copy", str(path), str(target)], check=True, capture_output=True, timeout=60)
    return tifffile.imread(target)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_keeps_grey_rgb_and_rgba(tmp_path, channels):
    src = source(channels)
    out, side = pipeline(tmp_path, src, "image.png")
    with Image.open(out) as img:
        assert img.mode == {1: "L", 3: "RGB", 4: "RGBA"}[channels]
        np.testing.assert_array_equal(np.asarray(img), src)
    np.testing.assert_array_equal(vips_pixels(out, tmp_path), src)
    check = subprocess.run([_tool("pngcheck"), "-q", str(out)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_jpeg_of_grey_tiles_is_a_one_component_jpeg(tmp_path):
    src = source(1, 700, 300)
    out, _ = pipeline(tmp_path, src, "image.jpg")
    with Image.open(out) as img:
        assert img.mode == "L" and img.size == (700, 300)
        assert np.abs(np.asarray(img).astype(int) - src).mean() < 3


def test_grey_jpeg_strips_are_byte_identical_to_a_whole_image_encode(tmp_path):
    src = source(1, 517, 300)
    with create_canvas(tmp_path / "c.tif", 517, 300, channels=1) as cv:
        cv.write_rows(0, src[:, :, None])
    from dezoom_steps.canvas import open_canvas

    buf = io.BytesIO()
    with open_canvas(tmp_path / "c.tif") as cv:
        jpeg.write_jpeg(cv, buf, 10, rows_per_strip=64)
    whole = io.BytesIO()
    Image.fromarray(src, "L").save(whole, "JPEG", **jpeg.save_options(90))
    assert buf.getvalue() == whole.getvalue()


def test_rgba_to_jpeg_is_composited_on_black(tmp_path):
    src = source(4)
    out, _ = pipeline(tmp_path, src, "image.jpg")
    expected = src[:, :, :3].astype(float) * src[:, :, 3:] / 255
    with Image.open(out) as img:
        assert img.mode == "RGB"
        assert np.abs(np.asarray(img).astype(float) - expected).mean() < 4
        assert np.asarray(img)[:30, :30].max() < 16  # the transparent corner is black


@pytest.mark.parametrize("name", ["image.png", "image.jpg", "image.webp"])
def test_the_tiles_icc_profile_and_xmp_reach_the_output(tmp_path, name):
    src = source(3)
    out, side = pipeline(tmp_path, src, name, icc_profile=SRGB)
    with Image.open(out) as img:
        assert img.info.get("icc_profile") == SRGB
        xmp = img.info.get("xmp") or b""
        if isinstance(xmp, str):
            xmp = xmp.encode()
        if name != "image.webp":
            assert b"test image" in xmp and b"image.dzi" in xmp  # dc:title and dc:source
    assert side["complete"] is True


def test_without_a_profile_none_is_invented(tmp_path):
    out, _ = pipeline(tmp_path, source(3), "image.png")
    with Image.open(out) as img:
        assert "icc_profile" not in img.info


def test_png_and_jpeg_text_fields(tmp_path):
    src = source(3)
    png, _ = pipeline(tmp_path / "p", src, "image.png")
    with Image.open(png) as img:
        assert img.text["Title"] == "test image"
        assert "image.dzi" in img.text["Description"] and img.text["Software"].startswith("dezoom-steps")
    jpg, _ = pipeline(tmp_path / "j", src, "image.jpg")
    with Image.open(jpg) as img:
        exif = img.getexif()
        assert exif[0x0131].startswith("dezoom-steps") and "image.dzi" in exif[0x010E]


@pytest.mark.parametrize("name", ["image.png", "image.jpg", "image.tif", "image.webp"])
def test_outputs_are_byte_identical_across_runs(tmp_path, name):
    src = source(3)
    first, side1 = pipeline(tmp_path / "a", src, name, icc_profile=SRGB)
    data = first.read_bytes()
    second, side2 = pipeline(tmp_path / "b", src, name, icc_profile=SRGB)
    assert second.read_bytes() == data and side1["sha256"] == side2["sha256"]


def test_xmp_packet_escapes_markup():
    meta = OutputMeta(source="https://example.org/a?b=1&c=<2>", title='A "title" & <more>')
    packet = meta.xmp().decode("utf-8")
    assert "&amp;c=&lt;2&gt;" in packet and "&lt;more&gt;" in packet
    from lxml import etree

    root = etree.fromstring(packet.split("?>", 1)[1].rsplit("<?xpacket", 1)[0].encode())
    ns = {"dc": "http://purl.org/dc/elements/1.1/", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#"}
    assert root.findtext(".//dc:source", namespaces=ns) == "https://example.org/a?b=1&c=<2>"
    assert root.findtext(".//dc:title/rdf:Alt/rdf:li", namespaces=ns) == 'A "title" & <more>'


def test_odd_sized_and_corrupt_tiles_are_reported_in_the_sidecar(tmp_path):
    src = source(3)

    def damage(index: int, pixels: np.ndarray) -> bytes | None:
        if index == 2:  # decodes to 20x30 instead of its 64x64 cell
            return encode_png(pixels[:30, :20])
        if index == 5:  # not an image any more: counts as missing
            return encode_png(pixels)[:60]
        return None

    out, side = pipeline(tmp_path, src, "image.png", transform=damage)
    assert side["size_mismatches"] == [{"index": 2, "expected": [64, 64], "got": [20, 30]}]
    assert [m["index"] for m in side["missing_tiles"]] == [5] and side["complete"] is False
    with Image.open(out) as img:
        got = np.asarray(img)
    np.testing.assert_array_equal(got[:30, 128:148], src[:30, 128:148])  # placed at its request position
    assert not got[30:64, 128:192].any()  # the rest of its cell is black
    assert not got[64:128, 0:64].any()  # the corrupt tile's cell (column 0, row 1) too


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an array."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def test_dpi_from_the_metadata_reaches_png_and_jpeg(tmp_path):
    from dezoom_steps.jsonio import read_step_json, write_step_json

    src = source(3)
    for name in ("image.png", "image.jpg"):
        ts = make_tileset(tmp_path / name / "tiles", src, tile=64)
        doc = read_step_json(ts.tiles_json, "tiles")
        doc["level"]["params"]["dpi"] = 300.0  # as the IIIF dezoomer records a physdim service
        write_step_json(ts.tiles_json, "tiles", {k: v for k, v in doc.items() if k != "schema"})
        work = tmp_path / name / "work"
        stitch(tiles_json=ts.tiles_json, cache_dir=ts.cache, canvas=work / "c.tif", report=work / "s.json")
        out = tmp_path / name / name
        encode(tiles_json=ts.tiles_json, stitch_json=work / "s.json", canvas=work / "c.tif", output=out)
        with Image.open(out) as img:
            assert [round(d) for d in img.info["dpi"]] == [300, 300]
