"""Zoomify dezoomer: fixture cases, tiers around powers of two, TileGroup numbering, NUMTILES ignored."""

from __future__ import annotations

import re

import pytest

from dezoomer_cases import case_params, check_case, tile_urls
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.zoomify import Zoomify, tiers
from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer

URL = "https://example.org/z/ImageProperties.xml"


def resolve(width: int, height: int, tile: int | None = 256, numtiles: str | None = None):
    """Levels of a hand-made ImageProperties.xml."""
    attrs = f'WIDTH="{width}" HEIGHT="{height}"'
    attrs += f' TILESIZE="{tile}"' if tile is not None else ""
    attrs += f' NUMTILES="{numtiles}"' if numtiles is not None else ""
    doc = f"<IMAGE_PROPERTIES {attrs} NUMIMAGES=\"1\" VERSION=\"1.8\"/>".encode()
    return Zoomify().resolve(URL, Documents({URL: doc}), {})


@pytest.mark.parametrize("case", case_params("zoomify"))
def test_fixture_case(case):
    check_case(case, Zoomify())


# Tier sizes worked out by hand: halve with rounding up until the tier fits in one tile.
@pytest.mark.parametrize("width,height,tile,expected", [
    (1, 1, 256, [(1, 1)]),
    (256, 256, 256, [(256, 256)]),
    (257, 256, 256, [(257, 256), (129, 128)]),
    (512, 512, 256, [(512, 512), (256, 256)]),
    (513, 100, 256, [(513, 100), (257, 50), (129, 25)]),
    (2047, 2047, 256, [(2047, 2047), (1024, 1024), (512, 512), (256, 256)]),
    (2048, 1, 256, [(2048, 1), (1024, 1), (512, 1), (256, 1)]),
    (2049, 2049, 256, [(2049, 2049), (1025, 1025), (513, 513), (257, 257), (129, 129)]),
    (1000, 700, 1000, [(1000, 700)]),
    (3, 5, 1, [(3, 5), (2, 3), (1, 2), (1, 1)]),
])
def test_tiers_around_powers_of_two(width, height, tile, expected):
    assert tiers(width, height, tile) == expected
    levels = resolve(width, height, tile).levels
    assert [(lv.width, lv.height) for lv in levels] == expected
    # tier numbers in URLs count from the smallest tier
    assert [lv.params["level"] for lv in levels] == list(range(len(expected) - 1, -1, -1))


def test_tile_groups_hold_256_tiles_counted_from_the_smallest_tier():
    levels = resolve(10000, 7000, 256).levels
    number = 0
    for level in reversed(levels):  # smallest first, each row by row
        for url in tile_urls(Zoomify(), level):
            assert f"/TileGroup{number // 256}/" in url, (number, url)
            number += 1
    assert number == 1499  # the rig's pyramid (check_layouts.py found 1499 URLs)


def test_numtiles_is_never_used():
    # iipsrv says 1120; the true count is 1499; some files omit it. Same URLs every time.
    reference = [tile_urls(Zoomify(), lv) for lv in resolve(10000, 7000, 256, "1499").levels]
    for numtiles in ("1120", None, "0", "garbage"):
        assert [tile_urls(Zoomify(), lv) for lv in resolve(10000, 7000, 256, numtiles).levels] == reference


def test_spec_vector_12000x9788_level5_group_boundary():
    # Spec 4.3: level 5 holds TileGroup1/5-0-14.jpg and TileGroup2/5-0-15.jpg (same with ceil halving).
    level = next(lv for lv in resolve(12000, 9788, 256).levels if lv.params["level"] == 5)
    urls = tile_urls(Zoomify(), level)
    assert "https://example.org/z/TileGroup1/5-0-14.jpg" in urls
    assert "https://example.org/z/TileGroup2/5-0-15.jpg" in urls


def test_spec_vector_174550x16991_level3():
    # Spec 4.3: 11 levels; level 3 is a single row of six tiles in TileGroup0. dezoomify-rs
    # says 1364x132 (floor-based); halving with rounding up gives 133 rows of pixels.
    levels = resolve(174550, 16991, 256).levels
    assert len(levels) == 11
    level = next(lv for lv in levels if lv.params["level"] == 3)
    assert (level.width, level.height) == (1364, 133)
    assert tile_urls(Zoomify(), level) == [f"https://example.org/z/TileGroup0/3-{x}-0.jpg" for x in range(6)]


def test_missing_tilesize_means_256():
    assert [lv.tile_width for lv in resolve(600, 400, None).levels] == [256, 256, 256]


def test_base_is_cut_before_the_first_image_properties():
    url = "http://h/a/ImageProperties.xml?next=/b/ImageProperties.xml"
    doc = b'<IMAGE_PROPERTIES WIDTH="10" HEIGHT="10" TILESIZE="256"/>'
    level = Zoomify().resolve(url, Documents({url: doc}), {}).levels[0]
    assert tile_urls(Zoomify(), level) == ["http://h/a/TileGroup0/0-0-0.jpg?next=/b/ImageProperties.xml"]


def test_tile_url_asks_for_its_image_properties():
    with pytest.raises(NeedsData) as need:
        Zoomify().resolve("https://example.org/z/TileGroup3/5-10-2.jpg?x=1", Documents(), {})
    assert need.value.url == "https://example.org/z/ImageProperties.xml"


def test_other_urls_are_refused_without_fetching():
    with pytest.raises(WrongDezoomer, match="ImageProperties.xml"):
        Zoomify().resolve("https://example.org/image.dzi", Documents(), {})


@pytest.mark.parametrize("doc,message", [
    (b'<IMAGE_PROPERTIES HEIGHT="10" TILESIZE="256"/>', "WIDTH is missing"),
    (b'<IMAGE_PROPERTIES WIDTH="ten" HEIGHT="10" TILESIZE="256"/>', "WIDTH is not a whole number"),
    (b'<Image TileSize="256"><Size Width="1" Height="1"/></Image>', "expected <IMAGE_PROPERTIES>"),
    (b"", "empty document"),
    (b"\x00\x01binary", "unable to parse"),
])
def test_broken_metadata_is_one_clear_line_naming_the_url(doc, message):
    with pytest.raises(MalformedMetadata) as err:
        Zoomify().resolve(URL, Documents({URL: doc}), {})
    text = str(err.value)
    assert text.startswith(URL + ": ") and message in text and "\n" not in text


def test_huge_document_is_refused():
    doc = b'<IMAGE_PROPERTIES WIDTH="1" HEIGHT="1" TILESIZE="256" X="' + b"a" * (5 << 20) + b'"/>'
    with pytest.raises(MalformedMetadata, match="too large"):
        Zoomify().resolve(URL, Documents({URL: doc}), {})


def test_tile_urls_follow_the_zoomify_pattern():
    pattern = re.compile(r"^https://example\.org/z/TileGroup\d+/\d+-\d+-\d+\.jpg$")
    for level in resolve(3000, 2000, 256).levels:
        assert all(pattern.match(u) for u in tile_urls(Zoomify(), level))
