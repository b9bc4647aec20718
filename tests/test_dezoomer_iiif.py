"""IIIF dezoomer: fixture cases, request URLs as input, base URL fallbacks, quality/format, rounding."""

from __future__ import annotations

import json

import pytest

from dezoomer_cases import case_params, check_case, tile_urls
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.iiif import IIIF, _Info, choose_base, info_url_for
from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer


def resolve(url: str, doc: dict):
    """Resolve one info.json stored at `url`."""
    return IIIF().resolve(url, Documents({url: json.dumps(doc).encode()}), {})


@pytest.mark.parametrize("case", case_params("iiif"))
def test_fixture_case(case):
    check_case(case, IIIF())


B = "https://iiif.example.org/iiif/2/abc"


@pytest.mark.parametrize("url,info", [
    (f"{B}/full/max/0/default.jpg", f"{B}/info.json"),
    (f"{B}/0,0,512,512/512,/0/default.jpg", f"{B}/info.json"),
    (f"{B}/full/full/0/native.jpg", f"{B}/info.json"),
    (f"{B}/full/max/0/default.jpg?token=abc&x=1", f"{B}/info.json"),
    (f"{B}/square/!200,200/90/gray.png", f"{B}/info.json"),
    (f"{B}/pct:10,10,50,50/pct:50/!0/color.webp#frag", f"{B}/info.json"),
    (f"{B}/full/^max/0/bitonal.tif", f"{B}/info.json"),
    ("http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?IIIF=a.tif/full/full/0/default.jpg",
     "http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?IIIF=a.tif/info.json"),
    (f"{B}/info.json", f"{B}/info.json"),
    ("https://example.org/photos/full/photo.jpg", "https://example.org/photos/full/photo.jpg"),
])
def test_image_requests_map_to_their_info_json(url, info):
    assert info_url_for(url) == info
    with pytest.raises(NeedsData) as need:
        IIIF().resolve(url, Documents(), {})
    assert need.value.url == info


INFO = f"{B}/info.json"


@pytest.mark.parametrize("declared,base", [
    (B, B),                                                   # the normal case
    (B + "/", B),                                             # trailing slash trimmed
    (B + "/info.json", B),                                    # id that names the info.json
    ("/iiif/2/abc", B),                                       # relative id
    ("http://localhost:8080/iiif/2/abc", B),                  # internal host
    ("https://www.example.com/iiif/2/abc", B),                # placeholder host
    ("https://iiif.example.org:8443/iiif/2/abc", B),          # another port
    ("http://iiif.example.org/iiif/2/abc", B),                # another scheme (TLS proxy)
    ("https://iiif.example.org/other/prefix/abc", "https://iiif.example.org/other/prefix/abc"),
    (None, B), ("", B), (42, B),
])
def test_base_is_the_declared_id_only_on_the_same_origin(declared, base):
    assert choose_base(INFO, declared) == base


def test_a_local_info_json_keeps_its_tiles_local():
    base = choose_base("file:///data/iiif512/info.json", "http://127.0.0.1:8101/small/iiif512")
    assert base == "file:///data/iiif512"


def test_v3_id_and_v2_at_id_are_both_read():
    other = "https://iiif.example.org/elsewhere/abc"
    for key in ("id", "@id"):
        found = resolve(INFO, {key: other, "protocol": "http://iiif.io/api/image", "width": 10, "height": 10})
        assert tile_urls(IIIF(), found.levels[0])[0].startswith(other + "/0,0,10,10/")


@pytest.mark.parametrize("offered,quality", [
    ([], "default"), (["grey"], "grey"), (["zorglub"], "zorglub"), (["zorglub", "color"], "color"),
    (["bitonal", "gray"], "gray"), (["default", "bitonal", "gray", "color"], "default"),
    (["native", "color"], "native"),
])
def test_quality_choice_follows_the_spec_vectors(offered, quality):
    assert _Info({"qualities": offered}, INFO).quality() == quality


def test_quality_defaults_to_native_for_image_api_1_1():
    doc = {"@context": "http://library.stanford.edu/iiif/image-api/1.1/context.json"}
    assert _Info(doc, INFO).quality() == "native"


@pytest.mark.parametrize("doc,fmt", [
    ({}, "jpg"),
    ({"formats": ["png"]}, "png"),
    ({"formats": ["png", "jpg"]}, "jpg"),
    ({"profile": ["http://iiif.io/api/image/2/level2.json", {"formats": ["png", "webp"]}]}, "jpg"),
    ({"profile": [{"formats": ["webp", "gif"]}]}, "webp"),
    ({"extraFormats": ["tif"], "formats": ["tif"]}, "tif"),
    ({"preferredFormats": ["webp", "jpg"], "extraFormats": ["webp"]}, "webp"),
    ({"preferredFormats": ["jp2"], "formats": ["jp2", "png"]}, "png"),
])
def test_format_is_jpg_unless_only_something_else_is_offered(doc, fmt):
    assert _Info(doc, INFO).format() == fmt


def test_levels_and_edge_tiles_round_up():
    # 1001 x 999 at scale 2 is 500.5 x 499.5 -> 501 x 500; at scale 4 -> 251 x 250.
    doc = {"@context": "http://iiif.io/api/image/3/context.json", "id": B, "type": "ImageService3",
           "width": 1001, "height": 999, "tiles": [{"width": 256, "scaleFactors": [1, 2, 4]}]}
    levels = resolve(INFO, doc).levels
    assert [(lv.width, lv.height) for lv in levels] == [(1001, 999), (501, 500), (251, 250)]
    urls = tile_urls(IIIF(), levels[1])
    # column 1 starts at 512 full-resolution pixels and holds the 489 left: ceil(489/2) = 245
    assert urls[1] == f"{B}/512,0,489,512/245,256/0/default.jpg"
    assert urls[-1] == f"{B}/512,512,489,487/245,244/0/default.jpg"


def test_sizes_are_ignored_when_tiles_are_declared():
    doc = {"protocol": "http://iiif.io/api/image", "width": 1000, "height": 700,
           "sizes": [{"width": 123, "height": 86}], "tiles": [{"width": 512, "scaleFactors": [1, 2]}]}
    assert [(lv.width, lv.height) for lv in resolve(INFO, doc).levels] == [(1000, 700), (500, 350)]


def test_v1_1_without_tile_width_uses_512():
    doc = {"@context": "http://library.stanford.edu/iiif/image-api/1.1/context.json", "@id": B,
           "width": 600, "height": 600, "scale_factors": [1, 2]}
    levels = resolve(INFO, doc).levels
    assert [(lv.tile_width, lv.width) for lv in levels] == [(512, 600), (512, 300)]
    assert tile_urls(IIIF(), levels[0])[-1] == f"{B}/512,512,88,88/88,/0/native.jpg"


def test_options_are_not_required():
    url = INFO
    docs = Documents({url: b'{"protocol": "http://iiif.io/api/image", "width": 5, "height": 5}'})
    assert IIIF().resolve(url, docs, {}).levels[0].width == 5


@pytest.mark.parametrize("doc,error,message", [
    (b"\xef\xbb\xbf{\"protocol\": \"http://iiif.io/api/image\", \"width\": 3, \"height\": 4}", None, None),
    (b"[1, 2]", WrongDezoomer, "not an object"),
    (b"{not json", WrongDezoomer, "invalid JSON"),
    (b'{"protocol": "http://iiif.io/api/image", "width": "wide", "height": 4}', MalformedMetadata,
     "width is not a whole number"),
    (b'{"profile": "level2", "width": 10, "height": 10, "tiles": [5]}', MalformedMetadata,
     "a `tiles` entry is not an object"),
    (b'{"tiles": [{"width": 256, "scaleFactors": [0]}], "width": 10, "height": 10}', MalformedMetadata,
     "scale factor must be positive"),
    (b'{"profile": [{"maxArea": 0}], "width": 10, "height": 10}', MalformedMetadata,
     "maxArea must be positive"),
])
def test_content_checks(doc, error, message):
    docs = Documents({INFO: doc})
    if error is None:
        assert IIIF().resolve(INFO, docs, {}).levels[0].width == 3
        return
    with pytest.raises(error, match=message):
        IIIF().resolve(INFO, docs, {})


@pytest.mark.parametrize("scale,units,dpi", [(0.0025, "in", 400.0), (0.0127, "cm", 200.0), (0.254, "mm", 100.0)])
def test_physical_dimensions_service_gives_each_level_its_dpi(scale, units, dpi):
    doc = {"@context": "http://iiif.io/api/image/2/context.json", "@id": B, "width": 4000, "height": 3000,
           "tiles": [{"width": 512, "scaleFactors": [1, 2, 4]}],
           "service": [{"@context": "http://iiif.io/api/annex/services/physdim/1/context.json",
                        "profile": "http://iiif.io/api/annex/services/physdim", "physicalScale": scale,
                        "physicalUnits": units}]}
    levels = resolve(f"{B}/info.json", doc).levels
    assert [(lv.width, lv.params["dpi"]) for lv in levels] == [(4000, dpi), (2000, dpi / 2), (1000, dpi / 4)]


def test_no_physical_dimensions_no_dpi():
    doc = {"@context": "http://iiif.io/api/image/2/context.json", "@id": B, "width": 400, "height": 300,
           "service": {"profile": "http://iiif.io/api/annex/services/physdim", "physicalScale": "x"}}
    assert all("dpi" not in lv.params for lv in resolve(f"{B}/info.json", doc).levels)
