"""Deep Zoom dezoomer: fixture cases, level numbers, the _files base, overlap geometry, tile URLs as input."""

from __future__ import annotations

import pytest

from dezoomer_cases import case_params, check_case, tile_urls
from dezoom_steps.dezoomers.base import Documents, FetchFailure
from dezoom_steps.dezoomers.deepzoom import DeepZoom, default_base, max_level
from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer


def dzi(width: int, height: int, tile: int = 256, overlap: int = 0, fmt: str = "jpg") -> bytes:
    """A hand-made .dzi document."""
    return (f'<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" TileSize="{tile}" '
            f'Overlap="{overlap}" Format="{fmt}"><Size Width="{width}" Height="{height}"/></Image>').encode()


def resolve(url: str, doc: bytes):
    """Resolve one document stored at `url`."""
    return DeepZoom().resolve(url, Documents({url: doc}), {})


@pytest.mark.parametrize("case", case_params("deepzoom"))
def test_fixture_case(case):
    check_case(case, DeepZoom())


@pytest.mark.parametrize("width,height,expected", [
    (1, 1, 0), (2, 1, 1), (3, 3, 2), (256, 256, 8), (257, 1, 9),
    (600, 300, 10), (1000, 700, 10), (5393, 3852, 13), (10000, 7000, 14),
])
def test_max_level_is_ceil_log2_of_the_longest_side(width, height, expected):
    assert max_level(width, height) == expected
    levels = resolve("http://h/a.dzi", dzi(width, height)).levels
    assert levels[0].params["level"] == expected
    assert [lv.params["level"] for lv in levels] == list(range(expected, -1, -1))
    assert (levels[-1].width, levels[-1].height) == (1, 1)


@pytest.mark.parametrize("meta,base", [
    ("http://x.fr/y/test.dzi", "http://x.fr/y/test_files"),
    ("http://h/a.b/c.dzi?x=1.2", "http://h/a.b/c_files"),
    ("http://tiles.example.org/dzi", "http://tiles.example.org/dzi_files"),
    ("http://h/p/image.xml#frag", "http://h/p/image_files"),
    ("http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?DeepZoom=a.b.tif.dzi",
     "http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?DeepZoom=a.b.tif_files"),
    ("file:///data/pyr/img.dzi", "file:///data/pyr/img_files"),
])
def test_default_base_cuts_the_extension_of_the_last_path_segment(meta, base):
    assert default_base(meta) == base


@pytest.mark.parametrize("overlap", [0, 1, 2])
def test_overlap_tiles_start_overlap_pixels_before_their_cell(overlap):
    # 600x300, T=256: tile (c, r) starts at (c*T - O if c else 0, r*T - O if r else 0);
    # a corner tile is T+O wide, an interior one T+2O, the right edge tile (88 px cell) 88+O.
    level = resolve("http://x.fr/y/test.dzi", dzi(600, 300, 256, overlap)).levels[0]
    tiles = list(DeepZoom().tiles(level))
    assert [(t.col, t.row) for t in tiles] == [(c, r) for r in range(2) for c in range(3)]
    for t in tiles:
        assert t.x - t.crop_x == t.col * 256 - (overlap if t.col else 0)
        assert t.y - t.crop_y == t.row * 256 - (overlap if t.row else 0)
        right = overlap if t.col < 2 else 0
        assert t.crop_x + t.w + right == {0: 256 + overlap, 1: 256 + 2 * overlap, 2: 88 + overlap}[t.col]
    assert sum(t.w * t.h for t in tiles) == 600 * 300


def test_a_tile_url_asks_for_the_dzi_then_the_xml():
    tile = "https://example.org/img/photo_files/12/3_4.jpg?token=1"
    docs = Documents()
    with pytest.raises(NeedsData) as need:
        DeepZoom().resolve(tile, docs, {})
    assert need.value.url == "https://example.org/img/photo.dzi"
    docs.put(need.value.url, FetchFailure("404 Not Found"))
    with pytest.raises(NeedsData) as need:
        DeepZoom().resolve(tile, docs, {})
    assert need.value.url == "https://example.org/img/photo.xml"
    docs.put(need.value.url, FetchFailure("404 Not Found"))
    with pytest.raises(WrongDezoomer, match="neither .*photo.dzi nor .*photo.xml"):
        DeepZoom().resolve(tile, docs, {})


def test_any_other_url_is_fetched_as_metadata():
    with pytest.raises(NeedsData) as need:
        DeepZoom().resolve("https://example.org/viewer/config", Documents(), {})
    assert need.value.url == "https://example.org/viewer/config"


def test_overlap_defaults_to_zero_and_json_numbers_may_be_strings():
    doc = b'{"Image": {"TileSize": "254", "Format": "jpeg", "Size": {"Width": "1000", "Height": 700}}}'
    level = resolve("http://h/x/pic.json", doc).levels[0]
    assert (level.overlap, level.tile_width, level.format) == (0, 254, "jpeg")
    assert tile_urls(DeepZoom(), level)[0] == "http://h/x/pic_files/10/0_0.jpeg"


def test_relative_url_attribute_is_resolved_against_the_metadata():
    doc = (b'<Image TileSize="256" Overlap="0" Format="png" Url="tiles/pic_files/">'
           b'<Size Width="10" Height="10"/></Image>')
    found = resolve("http://h/x/meta.xml", doc)
    assert found.title == "pic"
    assert tile_urls(DeepZoom(), found.levels[0]) == ["http://h/x/tiles/pic_files/4/0_0.png"]


@pytest.mark.parametrize("url,doc,error,message", [
    ("http://h/a.dzi", b'<Image TileSize="256" Overlap="0"><Size Width="9" Height="9"/></Image>',
     MalformedMetadata, "Format must name"),
    ("http://h/a.dzi", b'<Image Format="jpg"><Size Width="9" Height="9"/></Image>', MalformedMetadata,
     "TileSize is missing"),
    ("http://h/a.dzi", b'<Image TileSize="256" Format="jpg"/>', MalformedMetadata, "Size Width is missing"),
    ("http://h/a.dzi", b"<html><body>Not here</body></html>", MalformedMetadata, "expected <Image>"),
    ("http://h/a.dzi", b"Not found", MalformedMetadata, "neither XML nor JSON"),
    ("http://h/page", b"<html><body>Not here</body></html>", WrongDezoomer, "expected <Image>"),
    ("http://h/page", b"<html><body><br></body>", WrongDezoomer, "not a Deep Zoom document"),
    ("http://h/info.json", b'{"@context": "http://iiif.io/api/image/2/context.json", "width": 5}',
     WrongDezoomer, "without a Deep Zoom \"Image\" object"),
    ("http://h/x.json", b'{"Image": {"TileSize": "x", "Format": "jpg", "Size": {"Width": 1, "Height": 1}}}',
     MalformedMetadata, "TileSize is not a whole number"),
])
def test_refusals(url, doc, error, message):
    with pytest.raises(error, match=message):
        resolve(url, doc)


def test_malformed_messages_are_one_line_starting_with_the_url():
    with pytest.raises(MalformedMetadata) as err:
        resolve("https://example.org/dz/zero.dzi", dzi(0, 10))
    assert str(err.value) == "https://example.org/dz/zero.dzi: Size Width must be positive, got 0"
