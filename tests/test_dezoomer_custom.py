"""Custom tiles.yaml: fixture cases, the spec's vectors (4.1, 15.3), canvas cells, recognition,
and bad files reported in one line, quickly."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
import yaml
from PIL import Image

from dezoomer_cases import case_params, check_case, run_case
from dezoom_steps.dezoomers import by_name
from dezoom_steps.dezoomers.auto import run_rounds
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.custom import MAX_TILES, Custom, Tile, TileSet, Variable, cells, list_tiles
from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer

URL = "https://example.org/c/tiles.yaml"


@pytest.mark.parametrize("case", case_params("custom"))
def test_fixture_case(case):
    check_case(case, Custom())


def read(doc: dict, url: str = URL, extra: dict[str, bytes] | None = None):
    """Resolve a tiles.yaml given as a dict with Custom alone."""
    docs = Documents({url: yaml.safe_dump(doc).encode(), **(extra or {})})
    return Custom().resolve(url, docs, {})


def tileset(template: str, *variables: Variable, x: str = "x", y: str = "y") -> TileSet:
    return TileSet(URL, template, x, y, tuple(variables))


# ------------------------------------------------------------------ spec vectors

def test_variable_values_in_either_direction():
    assert list(Variable("x", 0, 3).values()) == [0, 1, 2, 3]
    assert list(Variable("x", 3, -3, -3).values()) == [3, 0, -3]
    assert list(Variable("x", 0, 10, 4).values()) == [0, 4, 8]
    assert list(Variable("x", 0, 3, -1).values()) == [0]  # "a step of the wrong sign yields only from"
    assert list(Variable("x", 5, 5).values()) == [5]


def test_product_order_last_variable_fastest_and_positions():
    # spec 15.3: {{x*tile_size}}/{{y*tile_size}} -> 0/0, 0/100, 100/0, 100/100 at (0,0),(0,1),(1,0),(1,1)
    ts = tileset("https://h/{{x*tile_size}}/{{y*tile_size}}", Variable("x", 0, 1), Variable("y", 0, 1),
                 Variable("tile_size", 100, 100))
    tiles = list_tiles(ts)
    assert [(t.url, t.x, t.y) for t in tiles] == [
        ("https://h/0/0", 0, 0), ("https://h/0/100", 0, 1), ("https://h/100/0", 1, 0), ("https://h/100/100", 1, 1)]


def test_template_vectors():
    ts = tileset("a {{x}} b {{y}} c", Variable("x", 0, 0), Variable("y", 10, 10))
    assert list_tiles(ts)[0].url.endswith("a%200%20b%2010%20c")  # relative: resolved against the file
    ts = tileset("https://h/{{x:03}}-{{ x + y/2 :02}}", Variable("x", 0, 0), Variable("y", 10, 10))
    assert list_tiles(ts)[0].url == "https://h/000-05"


def test_headers_title_and_size_are_returned():
    found = read({"url_template": "https://h/{{x}}_{{y}}.jpg", "title": "A Palace", "width": 878, "height": 1153,
                  "headers": {"Referer": "https://h/viewer", "X-Token": 42},
                  "variables": [{"name": "x", "from": 0, "to": 3}, {"name": "y", "from": 0, "to": 4}],
                  "x_template": "x * 256", "y_template": "y * 256"})
    assert found.title == "A Palace"
    assert found.headers == {"Referer": "https://h/viewer", "X-Token": "42"}
    (level,) = found.levels
    assert (level.width, level.height, level.tile_width, level.tile_height, level.format) == (878, 1153, 256, 256, "jpg")


def test_one_of_width_and_height_alone_is_ignored():
    doc = {"url_template": "https://h/{{x}}.png", "width": 50, "variables": [{"name": "x", "from": 0, "to": 1}],
           "x_template": "x * 10", "y_template": "0"}
    with pytest.raises(NeedsData):  # the size comes from the edge tiles instead
        read(doc)


# ------------------------------------------------------------------ canvas size from edge tiles

def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_edge_tiles_are_asked_for_one_at_a_time():
    doc = {"url_template": "https://h/{{x}}_{{y}}.png", "x_template": "x * 100", "y_template": "y * 100",
           "variables": [{"name": "x", "from": 0, "to": 2}, {"name": "y", "from": 0, "to": 1}]}
    with pytest.raises(NeedsData) as need:
        read(doc)
    assert need.value.url == "https://h/2_0.png"
    with pytest.raises(NeedsData) as need:
        read(doc, extra={"https://h/2_0.png": png(60, 100)})
    assert need.value.url == "https://h/0_1.png"
    level = read(doc, extra={"https://h/2_0.png": png(60, 100), "https://h/0_1.png": png(100, 45)}).levels[0]
    assert (level.width, level.height) == (260, 145)


def test_unreadable_edge_tile_falls_back_to_the_spacing():
    doc = {"url_template": "https://h/{{x}}.png", "x_template": "x * 100", "y_template": "0",
           "variables": [{"name": "x", "from": 0, "to": 2}]}

    def fetch(url: str) -> bytes:
        if url == "https://h/0.png":
            return png(100, 70)
        raise ConnectionError(f"{url}: HTTP 404")
    out = run_rounds(URL, [Custom()], Documents({URL: yaml.safe_dump(doc).encode()}), fetch, {})
    assert (out.found.levels[0].width, out.found.levels[0].height) == (300, 70)


def test_single_column_without_size_and_without_edge_tile_is_one_clear_line():
    doc = {"url_template": "https://h/{{y}}.png", "x_template": "0", "y_template": "y * 100",
           "variables": [{"name": "y", "from": 0, "to": 2}]}
    with pytest.raises(MalformedMetadata) as err:
        run_rounds(URL, [Custom()], Documents({URL: yaml.safe_dump(doc).encode()}),
                   lambda u: (_ for _ in ()).throw(ConnectionError("HTTP 404")), {})
    text = str(err.value)
    assert text.startswith(URL + ": cannot tell the image width") and "give width and height" in text


# ------------------------------------------------------------------ cells

def test_cells_partition_the_canvas_with_overlapping_tiles():
    # DeepZoom-like: 256 px tiles with 1 px of overlap, tile c starting at c*256 - 1
    ts = tileset("https://h/{{x}}_{{y}}.jpg", Variable("x", 0, 4), Variable("y", 0, 3),
                 x="max(x * 256 - 1, 0)", y="if(y > 0, y * 256 - 1, 0)")
    refs = list(cells(list_tiles(ts), 1200, 800))
    covered = np.zeros((800, 1200), dtype=np.int32)
    for r in refs:
        assert r.w > 0 and r.h > 0 and (r.crop_x, r.crop_y) == (0, 0)
        covered[r.y:r.y + r.h, r.x:r.x + r.w] += 1
    assert (covered == 1).all()
    # the tile at column c starts at c*256 - 1 and owns the canvas up to the next one
    assert [(r.x, r.w) for r in refs[:5]] == [(0, 255), (255, 256), (511, 256), (767, 256), (1023, 177)]
    assert [(r.col, r.row) for r in refs[:6]] == [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (0, 1)]
    assert [r.index for r in refs] == list(range(20))


def test_cells_leave_out_duplicates_and_tiles_outside_the_canvas():
    tiles = [Tile("https://h/a", 0, 0), Tile("https://h/b", 0, 0), Tile("https://h/c", 100, 0), Tile("https://h/d", 500, 0)]
    refs = list(cells(tiles, 300, 50))
    assert [(r.url, r.x, r.w, r.h) for r in refs] == [("https://h/a", 0, 100, 50), ("https://h/c", 100, 200, 50)]


def test_levels_survive_json_and_list_the_same_tiles():
    found = read({"url_template": "../t/{{x}}.png", "variables": [{"name": "x", "from": 0, "to": 3}],
                  "x_template": "x * 64", "y_template": "0", "width": 256, "height": 64})
    level = found.levels[0]
    urls = [t.url for t in Custom().tiles(level)]
    assert urls == [f"https://example.org/t/{i}.png" for i in range(4)]


# ------------------------------------------------------------------ recognition

def test_hint_and_accepted_names():
    c = Custom()
    for url in ("https://h/tiles.yaml", "https://h/a/TILES.YML?v=1", "file:///d/tiles.yml"):
        assert c.hinted(url)
    for url in ("https://h/mytiles.yaml", "https://h/tiles.yaml.bak", "https://h/info.json"):
        assert not c.hinted(url)
    with pytest.raises(WrongDezoomer, match="not a .yaml or .yml"):
        c.resolve("https://h/info.json", Documents(), {})
    with pytest.raises(NeedsData):  # any .yaml/.yml is read (with -d custom, or when nothing else fits)
        c.resolve("https://h/layout.yml", Documents(), {})


def test_forced_custom_on_any_yaml_name():
    doc = {"url_template": "https://h/{{x}}.png", "variables": [{"name": "x", "from": 0, "to": 1}],
           "x_template": "x * 10", "y_template": "0", "width": 20, "height": 10}
    url = "https://h/harvest-7.yaml"
    out = run_rounds(url, [by_name("custom")], Documents({url: yaml.safe_dump(doc).encode()}), lambda u: b"", {})
    assert out.dezoomer.name == "custom" and out.found.levels[0].width == 20


# ------------------------------------------------------------------ bad files: one line, fast

BAD = [
    ({"variables": []}, "no url_template"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "from": 0, "to": 3, "step": 0}]},
     "the range of values for x is incorrect: step must not be 0"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "from": 0, "to": 10**12}]},
     "the range of values for x is too wide"),
    ({"url_template": "https://h/{{x}}{{y}}", "variables": [{"name": "x", "from": 0, "to": 999_999},
                                                           {"name": "y", "from": 0, "to": 999_999}]},
     f"more than {MAX_TILES:,} combinations"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x y", "from": 0, "to": 1}]}, "invalid variable name: 'x y'"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "from": 0}]}, "x needs both from and to"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "from": "a", "to": 3}]}, "x.from must be a whole number"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "from": 0, "to": 2**64}]}, "Number too large"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "value": 1}, {"name": "x", "value": 2}]},
     "x is defined twice"),
    ({"url_template": "https://h/{{x}}", "variables": "x"}, "variables must be a list"),
    ({"url_template": "https://h/{{ x + }}", "variables": [{"name": "x", "value": 1}]},
     "url_template: 'x +' is not a valid expression"),
    ({"url_template": "https://h/{{z}}", "variables": [{"name": "x", "value": 1}]},
     "url_template uses the undefined variable 'z'"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "value": 1}], "x_template": "x * 2.5"},
     "x_template 'x * 2.5' gives 2.5 for x=1"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "value": 1}], "x_template": "\"a\""},
     "positions must be whole numbers"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "value": 1}], "x_template": "x * 2^40"},
     "positions must be whole numbers from 0 to 4294967295"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "value": 1}], "headers": {"Bad Name": "v"}},
     "Invalid header name"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "value": 1}], "width": 0, "height": 5},
     "width must be positive"),
    ({"url_template": "https://h/{{x}}", "variables": [{"name": "x", "value": 1}], "x_template": "1" + " + 1" * 400},
     "longer than 1000 characters"),
]


@pytest.mark.parametrize("doc,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_files_are_one_line_naming_the_file(doc, message):
    t0 = time.monotonic()
    with pytest.raises(MalformedMetadata) as err:
        read({"y_template": "0", **doc})
    text = str(err.value)
    assert text.startswith(URL + ": ") and message in text and "\n" not in text, text
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("data,message", [
    (b"url_template: [unclosed\n", "Invalid YAML configuration file:"),
    (b"- just\n- a list\n", "no url_template"),
    (b"\x00\x01\x02", "Invalid YAML configuration file:"),
    (b"url_template: x\nvariables: []\n" + b"#" * (2 << 20), "too large"),
])
def test_unreadable_yaml(data, message):
    with pytest.raises(MalformedMetadata) as err:
        Custom().resolve(URL, Documents({URL: data}), {})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_yaml_of_another_kind_is_declined_unless_named_tiles_yaml():
    url = "https://h/docker-compose.yml"
    with pytest.raises(WrongDezoomer, match="no url_template"):
        Custom().resolve(url, Documents({url: b"services:\n  web:\n    image: nginx\n"}), {})


def test_large_valid_tile_sets_are_listed_quickly():
    t0 = time.monotonic()
    ts = tileset("https://h/{{z}}/{{x}}_{{y}}.jpg", Variable("x", 0, 399), Variable("y", 0, 249), Variable("z", 12, 12),
                 x="x * 254 - if(x > 0, 1, 0)", y="y * 254 - if(y > 0, 1, 0)")
    tiles = list_tiles(ts)
    assert len(tiles) == 100_000 and tiles[-1].url == "https://h/12/399_249.jpg"
    assert time.monotonic() - t0 < 20


def test_errors_of_bad_cases_name_the_file():
    for case in (c.values[0] for c in case_params("custom")):
        if case.error == "malformed":
            with pytest.raises(MalformedMetadata) as err:
                run_case(case, [Custom()])
            assert str(err.value).startswith(case.input + ": ")
            assert re.fullmatch(r"[^\n]+", str(err.value))
