"""jpegframe (the JPEG frame header reader) and the JPEG fast path of tile validation."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from dezoom_steps import tilecheck
from dezoom_steps.jpegframe import BadJpeg, read_frame


def jpeg(mode: str = "RGB", size: tuple[int, int] = (67, 45), **save: object) -> bytes:
    """A JPEG of a gradient in `mode`, `size` pixels."""
    img = Image.linear_gradient("L").resize(size).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **save)
    return buf.getvalue()


@pytest.mark.parametrize("mode,save", [("RGB", {}), ("L", {}), ("CMYK", {}), ("RGB", {"progressive": True}),
                                       ("RGB", {"subsampling": 0, "quality": 95})])
def test_frame_matches_pillow_and_the_tile_decodes(mode: str, save: dict) -> None:
    data = jpeg(mode, **save)
    frame = read_frame(data)
    with Image.open(io.BytesIO(data)) as img:
        assert (frame.width, frame.height) == img.size
        assert frame.components == len(img.getbands())
    assert frame.adobe == (mode == "CMYK")  # Pillow writes CMYK with an Adobe APP14 segment
    assert tilecheck.check_tile(data) == "jpeg"


@pytest.mark.parametrize("mode,save", [("RGB", {}), ("L", {}), ("CMYK", {}), ("RGB", {"progressive": True})])
def test_a_cut_jpeg_fails_the_decode_check_wherever_it_is_cut(mode: str, save: dict) -> None:
    data = jpeg(mode, (300, 200), **save)
    header_end = data.index(b"\xff\xda")  # start of the first scan
    for cut in (header_end + 20, len(data) // 2, len(data) - 2, len(data) - 1):
        with pytest.raises(tilecheck.TileInvalid, match="does not decode"):
            tilecheck.check_tile(data[:cut])
        assert tilecheck.check_tile(data[:cut], mode="header") == "jpeg"  # the header alone is intact


def test_broken_structures_are_named() -> None:
    data = jpeg()
    sof = data.index(b"\xff\xc0")
    with pytest.raises(BadJpeg, match="start-of-image"):
        read_frame(b"\x00" + data)
    with pytest.raises(BadJpeg, match="ends before its frame header"):
        read_frame(data[:sof])
    with pytest.raises(BadJpeg, match="no marker"):
        read_frame(data[:sof] + b"\x00" + data[sof + 1:])
    with pytest.raises(BadJpeg, match="scan before"):
        read_frame(b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 6)
    with pytest.raises(tilecheck.TileInvalid, match="broken jpeg header"):
        tilecheck.check_tile(data[:sof], mode="header")
    # fill bytes (FF FF ...) before a marker are allowed by T.81 §B.1.1.2
    filled = data[:sof] + b"\xff\xff" + data[sof:]
    assert (read_frame(filled).width, read_frame(filled).height) == (67, 45)


def test_frame_size_limits_apply_before_any_decode() -> None:
    data = bytearray(jpeg())
    sof = data.index(b"\xff\xc0")
    data[sof + 7:sof + 9] = (20000).to_bytes(2, "big")  # samples per line beyond MAX_TILE_SIDE
    with pytest.raises(tilecheck.TileInvalid, match="20000x45 pixels"):
        tilecheck.check_tile(bytes(data), mode="header")
    data[sof + 7:sof + 9] = (0).to_bytes(2, "big")
    with pytest.raises(tilecheck.TileInvalid, match="0x45 pixels"):
        tilecheck.check_tile(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_frame_or_bad_jpeg(tail: bytes) -> None:
    for data in (b"\xff\xd8" + tail, tail):
        try:
            frame = read_frame(data)
        except BadJpeg:
            continue
        assert 0 <= frame.width < 65536 and 0 <= frame.height < 65536


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.binary(min_size=1, max_size=8))
def test_damaged_tiles_raise_only_tile_invalid(at: int, junk: bytes) -> None:
    data = jpeg(size=(40, 30))
    at %= len(data)
    damaged = data[:at] + junk + data[at + len(junk):]
    try:
        tilecheck.check_tile(damaged)
    except tilecheck.TileInvalid:
        pass
