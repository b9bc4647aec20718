"""Geometry properties: the tiles of every level of every grid dezoomer cover the canvas exactly once.

Random sizes (1..5000 px), tile sizes (1..1024, bounded so a level has at most ~2,500
tiles), DZI overlap 0..2 and IIIF scale factors go through each dezoomer's own `resolve`
on a generated metadata document; then for every level:
- cells lie inside the canvas, their areas add up to W*H and none overlaps (a numpy
  coverage count on small canvases; rows x columns interval checks on all of them);
- tile URLs are unique;
- what the URL asks for matches the cell: DZI tiles start `overlap` pixels before their
  cell (c*T - O for c > 0), IIIF output sizes equal the cell size and IIIF regions tile
  the full-resolution image exactly once.
"""

from __future__ import annotations

import json
import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.deepzoom import DeepZoom
from dezoom_steps.dezoomers.iiif import IIIF
from dezoom_steps.dezoomers.zoomify import Zoomify
from dezoom_steps.model import Level, TileRef

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_SIDE_TILES = 50
COVERAGE_PIXELS = 1_000_000  # numpy coverage count up to this canvas area


@st.composite
def sizes(draw) -> tuple[int, int, int]:
    """(width, height, tile size) with at most MAX_SIDE_TILES tiles along a side."""
    w, h = draw(st.integers(1, 5000)), draw(st.integers(1, 5000))
    smallest = max(1, -(-max(w, h) // MAX_SIDE_TILES))
    return w, h, draw(st.integers(min(smallest, 1024), 1024))


def check_partition(level: Level, tiles: list[TileRef]) -> None:
    """The cells of `tiles` cover the level's canvas exactly once."""
    W, H = level.width, level.height
    assert len(tiles) == level.tile_count
    assert all(t.w > 0 and t.h > 0 and t.x >= 0 and t.y >= 0 and t.x + t.w <= W and t.y + t.h <= H
               for t in tiles)
    assert sum(t.w * t.h for t in tiles) == W * H
    # Same interval for every cell of a column (row); columns (rows) end to end from 0 to W (H).
    cols = {t.col: (t.x, t.w) for t in tiles}
    rows = {t.row: (t.y, t.h) for t in tiles}
    assert all(cols[t.col] == (t.x, t.w) and rows[t.row] == (t.y, t.h) for t in tiles)
    for spans, total in ((cols, W), (rows, H)):
        edge = 0
        for i in range(len(spans)):
            start, length = spans[i]
            assert start == edge
            edge += length
        assert edge == total
    assert len({(t.col, t.row) for t in tiles}) == len(tiles)
    if W * H <= COVERAGE_PIXELS:
        count = np.zeros((H, W), dtype=np.uint16)
        for t in tiles:
            count[t.y:t.y + t.h, t.x:t.x + t.w] += 1
        assert count.min() == 1 and count.max() == 1


def check_levels(dezoomer: Dezoomer, levels: list[Level]) -> list[list[TileRef]]:
    """Partition and URL uniqueness for every level; returns the tiles of each level."""
    assert levels and all(a.width * a.height >= b.width * b.height for a, b in zip(levels, levels[1:]))
    out = []
    for level in levels:
        tiles = list(dezoomer.tiles(level))
        check_partition(level, tiles)
        assert len({t.url for t in tiles}) == len(tiles)
        assert [t.index for t in tiles] == list(range(len(tiles)))
        out.append(tiles)
    return out


@SETTINGS
@given(sizes())
def test_zoomify_levels_partition_the_canvas(size):
    w, h, t = size
    url = "http://127.0.0.1:9/z/ImageProperties.xml"
    doc = f'<IMAGE_PROPERTIES WIDTH="{w}" HEIGHT="{h}" TILESIZE="{t}" NUMTILES="1" />'.encode()
    found = Zoomify().resolve(url, Documents({url: doc}), {})
    assert (found.levels[0].width, found.levels[0].height) == (w, h)
    assert found.levels[-1].tile_count == 1
    all_tiles = check_levels(Zoomify(), found.levels)
    every = [tile.url for tiles in all_tiles for tile in tiles]
    assert len(set(every)) == len(every)  # unique across levels too


@SETTINGS
@given(sizes(), st.integers(0, 2), st.sampled_from(["jpg", "jpeg", "png"]))
def test_deepzoom_levels_partition_the_canvas(size, overlap, fmt):
    w, h, t = size
    url = "http://127.0.0.1:9/d/img.dzi"
    doc = (f'<Image TileSize="{t}" Overlap="{overlap}" Format="{fmt}">'
           f'<Size Width="{w}" Height="{h}"/></Image>').encode()
    found = DeepZoom().resolve(url, Documents({url: doc}), {})
    assert (found.levels[0].width, found.levels[0].height) == (w, h)
    assert (found.levels[-1].width, found.levels[-1].height) == (1, 1)
    for level, tiles in zip(found.levels, check_levels(DeepZoom(), found.levels)):
        assert level.overlap == overlap
        for tile in tiles:
            # where the tile image starts on the canvas: c*T - O for c > 0 (spec 4.5)
            assert tile.x - tile.crop_x == tile.col * t - (overlap if tile.col else 0)
            assert tile.y - tile.crop_y == tile.row * t - (overlap if tile.row else 0)
            assert tile.url.endswith(f"/{level.params['level']}/{tile.col}_{tile.row}.{fmt}")


_IIIF_URL = re.compile(r"/(\d+),(\d+),(\d+),(\d+)/(\d+),(\d*)/0/default\.jpg$")


@st.composite
def iiif_docs(draw) -> dict:
    """An info.json (v2 or v3) with random size, tile size and scale factors."""
    w, h, tw = draw(sizes())
    th = draw(st.integers(min(tw, 1024), 1024)) if draw(st.booleans()) else tw
    factors = draw(st.lists(st.integers(1, 64), min_size=1, max_size=5, unique=True))
    v3 = draw(st.booleans())
    doc = {"@context": f"http://iiif.io/api/image/{3 if v3 else 2}/context.json",
           "id" if v3 else "@id": "http://127.0.0.1:9/i/img", "protocol": "http://iiif.io/api/image",
           "width": w, "height": h, "tiles": [{"width": tw, "height": th, "scaleFactors": factors}]}
    if draw(st.booleans()):  # sometimes no tiles at all: the default pyramid
        del doc["tiles"]
    return doc


@SETTINGS
@given(iiif_docs())
def test_iiif_levels_partition_the_canvas_and_ask_for_the_cell_size(doc):
    url = "http://127.0.0.1:9/i/img/info.json"
    found = IIIF().resolve(url, Documents({url: json.dumps(doc).encode()}), {})
    W, H, v3 = doc["width"], doc["height"], "/3/" in doc["@context"]
    for level, tiles in zip(found.levels, check_levels(IIIF(), found.levels)):
        s = level.params["scale"]
        assert (level.width, level.height) == (-(-W // s), -(-H // s))
        regions = np.zeros((H, W), dtype=np.uint16) if W * H <= COVERAGE_PIXELS else None
        area = 0
        for tile in tiles:
            x, y, w, h, ow, oh = _IIIF_URL.search(tile.url).groups()
            x, y, w, h = int(x), int(y), int(w), int(h)
            assert int(ow) == tile.w and (oh == str(tile.h) if v3 else oh == "")
            assert (x, y) == (tile.col * level.tile_width * s, tile.row * level.tile_height * s)
            area += w * h
            if regions is not None:
                regions[y:y + h, x:x + w] += 1
        assert area == W * H  # regions tile the full-resolution image ...
        if regions is not None:
            assert regions.min() == 1 and regions.max() == 1  # ... exactly once
