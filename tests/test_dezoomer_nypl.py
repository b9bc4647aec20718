"""NYPL dezoomer: fixture cases, the spec's vectors (§4.10), config.js URLs, levels, detection."""

from __future__ import annotations

import pytest

from dezoomer_cases import case_params, check_case, tile_urls
from dezoom_steps.dezoomers import all_dezoomers
from dezoom_steps.dezoomers.auto import order_candidates
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.nypl import NYPL, build_levels, config_url
from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer

ID = "a28d6e6b-b317-f008-e040-e00a1806635d"
CONFIG = f"https://access.nypl.org/image.php/{ID}/tiles/config.js"


@pytest.mark.parametrize("case", case_params("nypl"))
def test_fixture_case(case):
    check_case(case, NYPL())


@pytest.mark.parametrize("url,expected", [
    (f"https://digitalcollections.nypl.org/items/{ID}", CONFIG),
    # spec §15.3: the id of an item URL with a fragment
    ("https://digitalcollections.nypl.org/items/a14f3200-fac1-012f-f7a4-58d385a7bbd0#item-data",
     "https://access.nypl.org/image.php/a14f3200-fac1-012f-f7a4-58d385a7bbd0/tiles/config.js"),
    (CONFIG, CONFIG),
    (f"https://access.nypl.org/image.php/{ID}/tiles/0/12/3_4.png", CONFIG),
    (f"http://127.0.0.1:8080/items/{ID}?tab=image", f"http://127.0.0.1:8080/image.php/{ID}/tiles/config.js"),
    (f"http://localhost:81/image.php/{ID}/tiles/config.js", f"http://localhost:81/image.php/{ID}/tiles/config.js"),
    (f"https://example.org/items/{ID}", None),                 # another host: not NYPL
    (f"https://example.org/image.php/{ID}/tiles/config.js", None),
    ("http://127.0.0.1:8080/small/zoomify256/ImageProperties.xml", None),
])
def test_config_url(url, expected):
    assert config_url(url) == expected


def test_an_item_url_asks_for_config_js_and_nothing_else():
    with pytest.raises(NeedsData) as need:
        NYPL().resolve(f"https://digitalcollections.nypl.org/items/{ID}", Documents(), {})
    assert need.value.url == CONFIG


def test_spec_vector_last_level_and_first_tile():
    levels = build_levels(CONFIG[: -len("/config.js")], 2422, 3000, 256, 2, "png")
    assert levels[0].params["level"] == 12 and (levels[0].width, levels[0].height) == (2422, 3000)
    assert tile_urls(NYPL(), levels[0])[0] == f"https://access.nypl.org/image.php/{ID}/tiles/0/12/0_0.png"


@pytest.mark.parametrize("size,numbers", [
    ((1, 1), [1]),                    # bit_length(1) = 1: level 1 is 1x1, level 0 is 0x0
    ((2, 1), [2]),                    # level 1 would be 1x0
    ((3000, 3000), list(range(12, 0, -1))),
    ((4096, 4096), list(range(13, 0, -1))),
])
def test_level_numbers(size, numbers):
    levels = build_levels("b", *size, 256, 0, "jpg")
    assert [lv.params["level"] for lv in levels] == numbers
    top = max(size).bit_length()
    assert all((lv.width, lv.height) == (size[0] >> (top - n), size[1] >> (top - n))
               for lv, n in zip(levels, numbers))


@pytest.mark.parametrize("config,message", [
    (b"   \n", "No metadata found"),
    (b"<html>busy</html>", "unable to read config.js"),
    (b'{"configs": {"0": {"size": {"width": 10}, "tile_size": 256, "format": "png"}}}', "size.height"),
    (b'{"configs": {"0": {"size": {"width": 10, "height": 5}, "format": "png"}}}', "tile_size"),
    (b'{"configs": {"0": {"size": {"width": 10, "height": 5}, "tile_size": 256, "format": "../x"}}}', "format"),
    (b'{"configs": {"0": {"size": {"width": 10, "height": 5}, "tile_size": 256, "format": "png", "overlap": -1}}}',
     "overlap must be at least 0"),
])
def test_bad_configs_are_malformed_and_name_the_config_url(config, message):
    with pytest.raises(MalformedMetadata, match=message) as err:
        NYPL().resolve(CONFIG, Documents({CONFIG: config}), {})
    assert str(err.value).startswith(CONFIG)


def test_other_urls_are_refused_without_any_download():
    with pytest.raises(WrongDezoomer):
        NYPL().resolve("https://example.org/iiif/2/abc/info.json", Documents(), {})


def test_examples_are_tried_first_in_auto_mode():
    for url in NYPL.examples:
        assert order_candidates(url, all_dezoomers())[0].name == "nypl", url
