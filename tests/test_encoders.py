"""Output encoders: each one reads a real canvas file and must give back its pixels."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from dezoom_steps import encoders
from dezoom_steps.canvas import Canvas, create_canvas, open_canvas
from dezoom_steps.encoders import jpeg, png, tiff
from dezoom_steps.errors import OutputError
from tilekit import smooth, synthetic


def make_canvas(tmp: Path, pixels: np.ndarray) -> Canvas:
    """A canvas file holding `pixels`, opened for reading."""
    path = tmp / f"canvas-{pixels.shape[1]}x{pixels.shape[0]}.tif"
    with create_canvas(path, pixels.shape[1], pixels.shape[0]) as cv:
        cv.write_rows(0, pixels)
    return open_canvas(path)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (333, 97), (1001, 2), (2, 600)])
@pytest.mark.parametrize("threads", [1, 2])
def test_png_decodes_bit_exactly(tmp_path, size, threads):
    src = synthetic(*size, seed=sum(size), noise=30)
    out = io.BytesIO()
    with make_canvas(tmp_path, src) as cv:
        # Small blocks and IDAT chunks so that several deflate blocks and chunks are exercised.
        png.write_png(cv, out, 5, threads=threads, block_bytes=5000, idat_bytes=3000)
    data = out.getvalue()
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), src)
    chunks = png_chunks(data)
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    assert struct.unpack(">IIBB", chunks[0][1][:10]) == (size[0], size[1], 8, 2)
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    raw = zlib.decompress(idat)  # one valid zlib stream (Adler-32 checked)
    assert len(raw) == size[1] * (1 + 3 * size[0])
    assert set(raw[:: 1 + 3 * size[0]]) == {png.UP_FILTER}


@pytest.mark.parametrize("compression", [0, 5, 30, 80, 100])
def test_png_compression_levels_roundtrip(tmp_path, compression):
    src = synthetic(200, 150, seed=1)
    out = io.BytesIO()
    with make_canvas(tmp_path, src) as cv:
        png.write_png(cv, out, compression)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(out.getvalue()))), src)


def test_png_compression_tiers():
    assert [png.zlib_level(c) for c in (0, 5, 19, 20, 60, 61, 100)] == [1, 1, 1, 6, 6, 9, 9]


@pytest.mark.parametrize("size,strip", [((300, 500), 128), ((1, 1), None), ((17, 129), 128),
                                        ((333, 257), 256), ((640, 128), 128), ((90, 1000), None)])
def test_jpeg_strips_are_byte_identical_to_a_whole_image_encode(tmp_path, size, strip):
    src = smooth(*size)
    out = io.BytesIO()
    with make_canvas(tmp_path, src) as cv:
        jpeg.write_jpeg(cv, out, 5, rows_per_strip=strip)
    reference = io.BytesIO()
    Image.fromarray(src).save(reference, "JPEG", quality=95, optimize=False, subsampling=2, restart_marker_rows=1)
    assert out.getvalue() == reference.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(out.getvalue())))
    assert decoded.shape == src.shape
    assert np.abs(decoded.astype(int) - src).mean() < 2


def test_jpeg_quality_follows_compression(tmp_path):
    src = synthetic(256, 256, noise=20)
    sizes = []
    for compression in (0, 5, 50):
        out = io.BytesIO()
        with make_canvas(tmp_path, src) as cv:
            jpeg.write_jpeg(cv, out, compression)
        reference = io.BytesIO()
        Image.fromarray(src).save(reference, "JPEG", quality=100 - compression, subsampling=2, restart_marker_rows=1)
        assert out.getvalue() == reference.getvalue()
        sizes.append(len(out.getvalue()))
    assert sizes[0] > sizes[1] > sizes[2]


def test_jpeg_refuses_more_than_65535_pixels_per_side(tmp_path):
    for w, h in ((65536, 10), (10, 70000)):
        message = r"big\.jpg: JPEG cannot hold more than 65535 pixels per side; use \.png or \.tif"
        with pytest.raises(OutputError, match=message):
            encoders.check_output_feasible(tmp_path / "big.jpg", w, h)
    encoders.check_output_feasible(tmp_path / "ok.jpg", 65535, 65535)
    with create_canvas(tmp_path / "wide.tif", 65536, 1) as cv:  # sparse: costs nothing
        pass
    with open_canvas(tmp_path / "wide.tif") as cv, pytest.raises(OutputError, match="65535"):
        jpeg.write_jpeg(cv, io.BytesIO())


def test_output_feasibility_by_format(tmp_path):
    encoders.check_output_feasible(tmp_path / "a.PNG", 10**6, 10**6)  # streamed: no limit that matters
    encoders.check_output_feasible(tmp_path / "a.tiff", 10**6, 10**6)
    encoders.check_output_feasible(tmp_path / "a.webp", 16383, 1000)
    with pytest.raises(OutputError, match=r"a\.webp: WebP cannot hold more than 16383"):
        encoders.check_output_feasible(tmp_path / "a.webp", 16384, 1000)
    with pytest.raises(OutputError, match=r"a\.bmp: .*needs the whole image in memory"):
        encoders.check_output_feasible(tmp_path / "a.bmp", 60000, 60000)
    with pytest.raises(OutputError, match=r"a\.bmp: .*budget"):
        encoders.check_output_feasible(tmp_path / "a.bmp", 2000, 2000, memory_budget=10_000_000)
    with pytest.raises(OutputError, match=r"picture\.xyz: unknown output format '\.xyz'"):
        encoders.check_output_feasible(tmp_path / "picture.xyz", 10, 10)
    with pytest.raises(OutputError, match="picture: no file extension"):
        encoders.check_output_feasible(tmp_path / "picture", 10, 10)
    with pytest.raises(OutputError, match=r"a\.xbm: Pillow cannot write an RGB image"):
        encoders.check_output_feasible(tmp_path / "a.xbm", 10, 10)


def test_format_choice_is_case_insensitive(tmp_path):
    assert encoders.output_format(tmp_path / "X.PNG").name == "png"
    assert encoders.output_format(tmp_path / "x.JPEG").name == "jpeg"
    assert encoders.output_format(tmp_path / "x.Tif").name == "tiff"
    assert encoders.output_format(tmp_path / "x.WebP") == encoders.OutputFormat("webp", "WEBP")


def test_tiff_is_tiled_compressed_bigtiff_with_the_pixels(tmp_path):
    src = smooth(600, 333)
    with make_canvas(tmp_path, src) as cv, open(tmp_path / "out.tif", "wb") as f:
        tiff.write_tiff(cv, f, 5)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        page = tif.pages[0]
        assert page.is_tiled and (page.tilewidth, page.tilelength) == (tiff.TILE, tiff.TILE)
        assert page.compression != tifffile.COMPRESSION.NONE
        got = page.asarray()
    assert got.shape == src.shape
    if tiff.has_imagecodecs():  # JPEG tiles
        assert page.compression == tifffile.COMPRESSION.JPEG
        assert np.abs(got.astype(int) - src).mean() < 3
    else:  # lossless deflate
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        np.testing.assert_array_equal(got, src)
        assert (tmp_path / "out.tif").stat().st_size < src.nbytes


@pytest.mark.parametrize("ext,exact", [(".bmp", True), (".webp", False), (".ppm", True)])
def test_pillow_formats_hold_the_pixels(tmp_path, ext, exact):
    src = smooth(123, 45)
    fmt = encoders.output_format(tmp_path / f"x{ext}")
    out = io.BytesIO()
    with make_canvas(tmp_path, src) as cv:
        encoders.write_image(cv, out, fmt, 5)
    got = np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
    if exact:
        np.testing.assert_array_equal(got, src)
    else:
        assert np.abs(got.astype(int) - src).mean() < 3
