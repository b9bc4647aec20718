"""Zoomify PFF dezoomer: fixture cases, the spec's vectors (§4.7), levels, query handling, detection."""

from __future__ import annotations

import pytest

from dezoomer_cases import case_params, check_case
from dezoom_steps.dezoomers import all_dezoomers
from dezoom_steps.dezoomers.auto import order_candidates
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.pff import PFF, form_encode, level_sizes, parse_header, parse_tile_indices, table_url
from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer


@pytest.mark.parametrize("case", case_params("pff"))
def test_fixture_case(case):
    check_case(case, PFF())


@pytest.mark.parametrize("text,expected", [
    ("10, 1 2 3", [11, 12, 13]),          # spec §4.7 vectors
    ("10,        0       20", [10, 30]),
    ("1,  0  1  2", [1, 2, 3]),
    ("5, 1 2, 99 100", [6, 7]),           # parts after a second comma are ignored
    ("7,", []),
])
def test_tile_indices_vectors(text, expected):
    assert parse_tile_indices(text, "u") == expected


@pytest.mark.parametrize("text,message", [("2204", "Missing a part"), ("x, 1 2", "not whole numbers"),
                                          ("1, 2 three", "not whole numbers")])
def test_bad_tile_indices(text, message):
    with pytest.raises(MalformedMetadata, match=message):
        parse_tile_indices(text, "u")


def test_table_url_vector():
    # Spec §4.7: HEADERSIZE 15331, NUMTILES 5541, VERSION 106, base http://x.com/, file x.
    assert table_url("http://x.com/", "x", 106, 15331, 5541) == \
        "http://x.com/?file=x&vers=106&head=15331&begin=16391&end=60719&requestType=2"


@pytest.mark.parametrize("value,encoded", [
    ("/a/b.pff", "%2Fa%2Fb.pff"),
    ("old maps/atlas 1.pff", "old+maps%2Fatlas+1.pff"),
    ("A-z_0.9*~&=+%", "A-z_0.9*%7E%26%3D%2B%25"),
    ("Göteborg.pff", "G%C3%B6teborg.pff"),
])
def test_form_encoding_keeps_only_alphanumerics_and_star_dash_dot_underscore(value, encoded):
    assert form_encode(value) == encoded


def test_header_fields_default_to_zero_and_are_checked():
    head = parse_header('<PFFHEADER WIDTH="10" HEIGHT="20" TILESIZE="256" NUMTILES="1"/>', "u")
    assert head == {"WIDTH": 10, "HEIGHT": 20, "TILESIZE": 256, "NUMTILES": 1, "HEADERSIZE": 0, "VERSION": 0}
    with pytest.raises(MalformedMetadata, match="u: WIDTH must be positive, got 0"):
        parse_header('<PFFHEADER HEIGHT="20" TILESIZE="256" NUMTILES="1"/>', "u")
    with pytest.raises(MalformedMetadata, match="not a PFF header"):
        parse_header('<IMAGE_PROPERTIES WIDTH="1" HEIGHT="1"/>', "u")


# Worked by hand: emit while both sides reach the tile size (the full level always), halving up.
@pytest.mark.parametrize("size,tile,expected", [
    ((700, 520), 256, [(700, 520, 0), (350, 260, 9)]),
    ((300, 200), 256, [(300, 200, 0)]),
    ((100, 5000), 256, [(100, 5000, 0)]),
    ((1024, 1024), 256, [(1024, 1024, 0), (512, 512, 16), (256, 256, 20)]),
    ((1025, 513), 256, [(1025, 513, 0), (513, 257, 15)]),
])
def test_level_sizes(size, tile, expected):
    assert level_sizes(*size, tile) == expected


def test_a_tile_request_asks_for_the_header_first():
    url = "http://h/servlet?begin=1&end=2&requestType=0&file=a%2Fb+c.pff"
    with pytest.raises(NeedsData) as need:
        PFF().resolve(url, Documents(), {})
    assert need.value.url == "http://h/servlet?file=a/b%20c.pff&requestType=1"


@pytest.mark.parametrize("url", [
    "https://example.org/zoomify/map.pff",
    "https://example.org/servlet?file=a.pff",
    "https://example.org/servlet?requestType=1",
    "https://example.org/a/ImageProperties.xml?file=x",
])
def test_urls_without_file_and_request_type_are_not_pff(url):
    with pytest.raises(WrongDezoomer):
        PFF().resolve(url, Documents(), {})


@pytest.mark.parametrize("kind", ["one", "256", "-1", ""])
def test_a_bad_request_type_is_malformed(kind):
    with pytest.raises(MalformedMetadata, match="requestType must be a number from 0 to 255"):
        PFF().resolve(f"http://h/s?file=a.pff&requestType={kind}", Documents(), {})


def test_examples_are_tried_first_in_auto_mode():
    for url in PFF.examples:
        assert order_candidates(url, all_dezoomers())[0].name == "pff", url
