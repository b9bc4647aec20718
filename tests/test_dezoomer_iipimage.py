"""IIPImage dezoomer: fixture cases, the metadata request, floor level sizes, JTL tile numbers, errors."""

from __future__ import annotations

import pytest

from dezoomer_cases import case_params, check_case, tile_urls
from dezoom_steps.dezoomers import by_name
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.iipimage import IIPImage, metadata_url
from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer

OBJ = "&obj=IIP,1.0&obj=Max-size&obj=Tile-size&obj=Resolution-number"


def resolve(url: str, body: str):
    """Resolve `url` with `body` stored as the answer to its metadata request."""
    meta = metadata_url(url)
    return IIPImage().resolve(url, Documents({meta: body.encode()}), {})


def meta_doc(width: int, height: int, tile: int, count: int) -> str:
    """An iipsrv answer, as iipsrv 1.1 formats it."""
    return f"IIP:1.0\r\nMax-size:{width} {height}\r\nTile-size:{tile} {tile}\r\nResolution-number:{count}\r\n"


@pytest.mark.parametrize("case", case_params("iipimage"))
def test_fixture_case(case):
    check_case(case, IIPImage())


@pytest.mark.parametrize("url,meta", [
    ("http://h/iipsrv.fcgi?FIF=a.tif", "http://h/iipsrv.fcgi?FIF=a.tif" + OBJ),
    # spec 4.9 vector: lower-case fif, the jtl dropped
    ("https://h/iipsrv.fcgi?fif=osci/x/G39094sm2.ptif&jtl=4,11",
     "https://h/iipsrv.fcgi?fif=osci/x/G39094sm2.ptif" + OBJ),
    # FIF anywhere in the query; region parameters and a fragment dropped
    ("http://h/i?WID=800&Fif=b.jp2&CVT=jpeg#view", "http://h/i?Fif=b.jp2" + OBJ),
    # a metadata request is fetched as given, with whatever objects it asks for
    ("http://h/i?FIF=c.tif&OBJ=Max-size&obj=tile-size&obj=Resolution-number&obj=Resolutions",
     "http://h/i?FIF=c.tif&OBJ=Max-size&obj=tile-size&obj=Resolution-number&obj=Resolutions"),
    # ... but not when it lacks one of them, or carries another parameter (a 400 at iipsrv)
    ("http://h/i?FIF=c.tif&obj=Max-size", "http://h/i?FIF=c.tif" + OBJ),
    ("http://h/i?FIF=c.tif&obj=Max-size&obj=Tile-size&obj=Resolution-number&foo=bar", "http://h/i?FIF=c.tif" + OBJ),
    ("http://h/i?FIF=D:/images/x%20y.tif", "http://h/i?FIF=D:/images/x%20y.tif" + OBJ),
])
def test_metadata_request_asks_only_for_what_is_needed(url, meta):
    assert metadata_url(url) == meta
    with pytest.raises(NeedsData) as need:
        IIPImage().resolve(url, Documents(), {})
    assert need.value.url == meta


@pytest.mark.parametrize("url", [
    "http://h/iipsrv.fcgi", "http://h/iipsrv.fcgi?IIIF=a.tif/info.json", "http://h/a?FIF=",
    "http://h/a?xFIF=a.tif", "http://h/a.dzi", "http://h/page#?FIF=a.tif",
])
def test_urls_without_fif_are_refused_without_fetching(url):
    assert metadata_url(url) is None
    with pytest.raises(WrongDezoomer, match="FIF"):
        IIPImage().resolve(url, Documents(), {})


def test_level_sizes_are_rounded_down_like_iipsrv():
    # iipsrv 1.1 on the rig's 10000x7000 pyramidal TIFF, obj=Resolutions (smallest first):
    observed = "156 109,312 218,625 437,1250 875,2500 1750,5000 3500,10000 7000"
    levels = resolve("http://h/i?FIF=medium_pyr.tif", meta_doc(10000, 7000, 256, 7)).levels
    got = ",".join(f"{lv.width} {lv.height}" for lv in reversed(levels))
    assert got == observed
    assert [lv.params["res"] for lv in levels] == [6, 5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("width,height,count,expected", [
    (1, 1, 1, [(1, 1)]),
    (1025, 769, 3, [(1025, 769), (512, 384), (256, 192)]),   # ceil would say 513x385: 3 columns
    (257, 3, 2, [(257, 3), (128, 1)]),
    (100, 10, 5, [(100, 10), (50, 5), (25, 2), (12, 1)]),   # 6x0 cannot exist: dropped
])
def test_floor_sizes_by_hand(width, height, count, expected):
    levels = resolve("http://h/i?FIF=x.tif", meta_doc(width, height, 256, count)).levels
    assert [(lv.width, lv.height) for lv in levels] == expected


def test_spec_vector_tile_numbers_are_row_major():
    # Spec 4.9: Max-size 512 512, Tile-size 256 256, 2 resolutions: res 0 tile (0,0) is
    # JTL=0,0; res 1 tile (0,1) is JTL=1,2 (row 1 of a 2-column grid).
    levels = resolve("http://test.com/iip?FIF=t.tif", meta_doc(512, 512, 256, 2)).levels
    full, small = levels
    assert tile_urls(IIPImage(), small) == ["http://test.com/iip?FIF=t.tif&JTL=0,0"]
    tiles = {(t.col, t.row): t.url for t in IIPImage().tiles(full)}
    assert tiles[(0, 1)] == "http://test.com/iip?FIF=t.tif&JTL=1,2"
    assert tiles[(1, 1)] == "http://test.com/iip?FIF=t.tif&JTL=1,3"


def test_rectangular_tiles_and_every_index_once():
    levels = resolve("http://h/i?FIF=x.tif", "Max-size:1000 600\nTile-size:300 200\nResolution-number:2\n").levels
    full = levels[0]
    assert (full.tile_width, full.tile_height, full.cols, full.rows) == (300, 200, 4, 3)
    numbers = [int(u.rsplit(",", 1)[1]) for u in tile_urls(IIPImage(), full)]
    assert numbers == list(range(12))


def test_keys_are_case_insensitive_and_the_first_occurrence_wins():
    body = "iip:1.0\nmax-SIZE : 800 600 \nTILE-SIZE:256 256\nresolution-number:2\nMax-size:1 1\n"
    levels = resolve("http://h/i?FIF=x.tif", body).levels
    assert [(lv.width, lv.height) for lv in levels] == [(800, 600), (400, 300)]


@pytest.mark.parametrize("body,message", [
    ("IIP:1.0\nTile-size:256 256\nResolution-number:3\n", "missing key 'Max-size' in the IIPImage metadata"),
    ("Max-size:10 10\nResolution-number:3\n", "missing key 'Tile-size' in the IIPImage metadata"),
    ("Max-size:10 10\nTile-size:256 256\n", "missing key 'Resolution-number' in the IIPImage metadata"),
    ("Max-size:10 ten\nTile-size:256 256\nResolution-number:1\n", "Max-size is not a whole number"),
    ("Max-size:10 10\nTile-size:256\nResolution-number:1\n", "'Tile-size' needs 2 numbers"),
    ("Max-size:10 10\nTile-size:0 256\nResolution-number:1\n", "Tile-size must be positive"),
    ("Max-size:10 10\nTile-size:256 256\nResolution-number:2\nResolutions:5 5\n", "'Resolutions' lists 1 sizes"),
    ("<html><body>Service unavailable</body></html>", "missing key 'Max-size'"),
    ("", "missing key 'Max-size'"),
])
def test_broken_metadata_is_one_line_naming_the_url_and_key(body, message):
    url = "http://iip.example.org/iipsrv.fcgi?FIF=x.tif&JTL=0,0"
    with pytest.raises(MalformedMetadata) as err:
        resolve(url, body)
    text = str(err.value)
    assert text.startswith(metadata_url(url) + ": ") and message in text and "\n" not in text


def test_by_name_accepts_the_incumbents_spelling():
    assert type(by_name("IIPImage")) is IIPImage
    assert IIPImage().hinted("http://h/iipsrv.fcgi?fif=a.tif") and IIPImage().hinted("http://h/x?A=1&FIF=a")
