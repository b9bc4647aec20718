"""Level choice and the list_tiles step (pure; no network)."""

import pytest

from dezoom_steps.errors import InputError, OutputError
from dezoom_steps.jsonio import read_step_json, write_step_json
from dezoom_steps.model import Level
from dezoom_steps.steps.list_tiles import Selection, choose_image, choose_level, list_tiles

LEVELS = [Level(4000, 3000, 256, 256), Level(500, 375, 256, 256), Level(1000, 750, 256, 256),
          Level(2000, 1500, 256, 256)]


def test_largest_by_default_whatever_the_listing_order():
    assert choose_level(LEVELS, Selection())[0].width == 4000


def test_max_width_and_height_keep_levels_that_fit_inclusive():
    assert choose_level(LEVELS, Selection(max_width=2000))[0].width == 2000
    assert choose_level(LEVELS, Selection(max_width=1999))[0].width == 1000
    assert choose_level(LEVELS, Selection(max_height=750))[0].width == 1000
    assert choose_level(LEVELS, Selection(largest=True, max_width=10))[0].width == 4000


def test_no_level_fits_is_an_input_error():
    with pytest.raises(InputError, match="smallest is 500x375"):
        choose_level(LEVELS, Selection(max_width=100))


def test_zoom_level_counts_from_the_smallest_and_clamps():
    assert choose_level(LEVELS, Selection(zoom_level=0))[0].width == 500
    assert choose_level(LEVELS, Selection(zoom_level=2))[0].width == 2000
    assert choose_level(LEVELS, Selection(zoom_level=99))[0].width == 4000


def test_image_index_picks_a_group():
    levels = [Level(10, 10, 5, 5, group="a"), Level(20, 20, 5, 5, group="b"), Level(40, 40, 5, 5, group="b")]
    assert choose_image(levels, None)[0] == "a"
    group, chosen = choose_image(levels, 1)
    assert group == "b" and len(chosen) == 2
    assert choose_image(levels, 7)[0] == "b"


def _resolve_file(tmp_path, width, height, url="http://127.0.0.1:1/x/ImageProperties.xml"):
    path = tmp_path / "resolve.json"
    write_step_json(path, "resolve", {
        "input_url": url, "dezoomer": "zoomify", "title": "t", "headers": {},
        "documents": [], "candidates": [],
        "levels": [{"width": width, "height": height, "tile_width": 256, "tile_height": 256,
                    "overlap": 0, "format": "jpg", "group": "", "name": "",
                    "params": {"base": "http://127.0.0.1:1/x", "tiles_before": 0, "level": 0}}],
    })
    return path


def test_list_tiles_partitions_the_canvas_and_adds_a_referer(tmp_path):
    doc = list_tiles(resolve_json=_resolve_file(tmp_path, 600, 300), output=tmp_path / "tiles.json", image="img")
    assert read_step_json(tmp_path / "tiles.json", "tiles") == doc
    assert doc["estimates"]["tiles"] == len(doc["tiles"]) == 3 * 2
    assert sum(t["w"] * t["h"] for t in doc["tiles"]) == 600 * 300
    assert len({t["key"] for t in doc["tiles"]}) == 6
    assert doc["headers"]["Referer"] == "http://127.0.0.1:1/x/ImageProperties.xml"


def test_pixel_budget_refuses_before_any_tile_is_listed(tmp_path):
    with pytest.raises(OutputError, match="pixel budget"):
        list_tiles(resolve_json=_resolve_file(tmp_path, 100000, 100000), output=tmp_path / "t.json",
                   image="img", pixel_budget=10**9)
    assert not (tmp_path / "t.json").exists()


def test_jpeg_limit_refused_before_download_when_output_known(tmp_path):
    with pytest.raises(OutputError, match="65535"):
        list_tiles(resolve_json=_resolve_file(tmp_path, 70000, 1000), output=None, image="img",
                   output_file=tmp_path / "out.jpg")
