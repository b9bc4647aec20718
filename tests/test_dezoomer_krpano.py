"""krpano dezoomer: fixture cases, templates, multires lists, faces and scenes as images, refusals."""

from __future__ import annotations

import pytest

from dezoomer_cases import case_params, check_case, run_case, tile_urls
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.krpano import Krpano
from dezoom_steps.dezoomers.krpano.document import parse_multires
from dezoom_steps.dezoomers.krpano.template import TemplateError, expand, parse_template
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.steps.list_tiles import choose_image

URL = "https://example.org/panos/pano.xml"


def resolve(doc: str | bytes, url: str = URL):
    """Resolve one krpano document stored at `url`."""
    data = doc.encode() if isinstance(doc, str) else doc
    return Krpano().resolve(url, Documents({url: data}), {})


def groups(levels) -> list[str]:
    """The image names (groups) in listing order."""
    out: list[str] = []
    for lv in levels:
        if lv.group not in out:
            out.append(lv.group)
    return out


@pytest.mark.parametrize("case", case_params("krpano"))
def test_fixture_case(case):
    check_case(case, Krpano())
    if "groups" in case.spec.get("expect", {}):
        assert groups(run_case(case, [Krpano()]).found.levels) == case.spec["expect"]["groups"]


# ------------------------------------------------------------------ templates (spec 4.8)

def test_spec_template_vector():
    assert parse_template("%00x%%%0y%l") == (("column", 3), "%", ("row", 2), ("level", 1))
    assert expand("%00x%%%0y%l", 7, 3, "", 2) == "007%032"


@pytest.mark.parametrize("template,expected", [
    ("%h/%x/%u/%c", "5/5/5/5"), ("%v/%y/%r", "9/9/9"), ("%s_%0l", "f_02"),
    ("a%20b/%C3%A9/%v", "a%20b/%C3%A9/9"),   # percent-escapes stay as written
    ("100%", "100%"), ("%/x", "%/x"), ("%000c", "0005"),
])
def test_template_expansion(template, expected):
    assert expand(template, 5, 9, "f", 2) == expected


@pytest.mark.parametrize("template", ["%t/%v", "l%q", "%0z"])
def test_unknown_letters_are_errors(template):
    with pytest.raises(TemplateError, match="unknown template variable"):
        parse_template(template)


def test_spec_multires_vector():
    assert parse_multires("3,6x7,8x8,9x1x4") == [(6, 7, 3), (8, 8, 3), (9, 1, 4)]
    assert parse_multires(" 512, 640 ,1280x960 ") == [(640, 640, 512), (1280, 960, 512)]
    for bad in ("512", "512,0x4", "512,axb", "x,100", "512,1x2x3x4"):
        with pytest.raises(ValueError):
            parse_multires(bad)


# ------------------------------------------------------------------ spec vectors

def test_spec_cube_vector():
    # Spec 4.8: six levels; level 0 is 1000x100 with tiles .../f/1/1.jpg at (0,0) and
    # .../f/1/2.jpg at (512,0).
    found = resolve('<krpano><image type="cube" tilesize="512"><level tiledimagewidth="1000" '
                    'tiledimageheight="100"><cube url="http://example.com/%s/%r/%c.jpg"/></level></image></krpano>')
    assert len(found.levels) == 6 and groups(found.levels) == ["front", "back", "left", "right", "up", "down"]
    tiles = [(t.url, t.x, t.y) for t in Krpano().tiles(found.levels[0])]
    assert tiles == [("http://example.com/f/1/1.jpg", 0, 0), ("http://example.com/f/1/2.jpg", 512, 0)]
    assert tile_urls(Krpano(), found.levels[5]) == ["http://example.com/d/1/1.jpg", "http://example.com/d/1/2.jpg"]


def test_spec_flat_multires_vector():
    # Spec 4.8: base http://test.com, 2 levels; level 1 is 3x4 with tiles
    # level=2%20x=01%20y=01 at (0,0) and ...y=02 at (0,3).
    found = resolve('<krpano><image><flat url="level=%l x=%0x y=%0y" multires="1,2x3,3x4x3"/></image></krpano>',
                    "http://test.com")
    largest = found.levels[0]
    assert (largest.width, largest.height, largest.tile_width) == (3, 4, 3)
    tiles = [(t.url, t.x, t.y) for t in Krpano().tiles(largest)]
    assert tiles == [("http://test.com/level=2%20x=01%20y=01", 0, 0), ("http://test.com/level=2%20x=01%20y=02", 0, 3)]


@pytest.mark.parametrize("doc,title", [
    ('<krpano><data name="x">{"title": "yyy"}</data><image><flat url="a%v" multires="5,5x5"/></image></krpano>', "yyy"),
    ('<krpano><source_details subject="the subject"/><data>{"title": "no"}</data>'
     '<image><flat url="a%v" multires="5,5x5"/></image></krpano>', "the subject"),
    ('<krpano><data>not json</data><data>{"title": 3}</data><data>{"title": " later "}</data>'
     '<image><flat url="a%v" multires="5,5x5"/></image></krpano>', "later"),
    ('<krpano><scene><data>{"title": "inside a scene"}</data><image><flat url="a%v" multires="5,5x5"/></image>'
     '</scene></krpano>', "pano"),   # only top-level elements count; else the file name
])
def test_title(doc, title):
    assert resolve(doc).title == title


# ------------------------------------------------------------------ images: faces and scenes

def test_each_face_and_scene_is_an_image_and_image_index_picks_one():
    doc = """<krpano>
      <scene name="hall"><image><flat url="hall/%l/%v_%h.jpg" multires="256,300x200,600x400"/></image></scene>
      <scene name="roof"><image tilesize="256" cubelabels="L|F|R|B|U|D">
        <level tiledimagewidth="512" tiledimageheight="512"><cube url="roof/%s/%v_%h.jpg"/></level>
        <level tiledimagewidth="256" tiledimageheight="256"><cube url="roof/%s/small.jpg"/></level>
      </image></scene></krpano>"""
    levels = resolve(doc).levels
    assert groups(levels) == ["hall flat", "roof front", "roof back", "roof left", "roof right", "roof up", "roof down"]
    group, chosen = choose_image(levels, None)  # the default: the first image
    assert group == "hall flat" and [(lv.width, lv.height) for lv in chosen] == [(600, 400), (300, 200)]
    group, chosen = choose_image(levels, 3)
    assert group == "roof left" and [(lv.width, lv.height) for lv in chosen] == [(512, 512), (256, 256)]
    assert tile_urls(Krpano(), chosen[0])[0] == "https://example.org/panos/roof/L/1_1.jpg"  # cubelabels


def test_level_numbers_count_up_from_the_smallest_level():
    doc = """<krpano><image tilesize="100" baseindex="0">
      <level tiledimagewidth="400" tiledimageheight="400"><flat url="t/%l/%v_%h.jpg"/></level>
      <level tiledimagewidth="100" tiledimageheight="100"><flat url="t/%l/%v_%h.jpg"/></level>
      <level tiledimagewidth="200" tiledimageheight="200"><flat url="t/%l/%v_%h.jpg"/></level>
    </image></krpano>"""
    levels = resolve(doc).levels
    assert [(lv.width, lv.params["level"]) for lv in levels] == [(400, 2), (200, 1), (100, 0)]
    assert tile_urls(Krpano(), levels[2]) == ["https://example.org/panos/t/0/0_0.jpg"]


def test_mobile_and_tablet_substitutes_are_ignored():
    doc = """<krpano><image>
      <flat url="big/%l/%v_%h.jpg" multires="512,1024x768"/>
      <mobile><flat url="m/%v_%h.jpg" multires="256,512x384"/></mobile>
      <tablet><level tiledimagewidth="700" tiledimageheight="500"><flat url="t/%v_%h.jpg"/></level></tablet>
    </image></krpano>"""
    levels = resolve(doc).levels
    assert [(lv.width, lv.height) for lv in levels] == [(1024, 768)]


def test_two_unnamed_images_get_distinct_names():
    doc = ('<krpano><image><flat url="a/%v_%h.jpg" multires="256,300x300"/></image>'
           '<image><flat url="b/%v_%h.jpg" multires="256,500x500"/></image></krpano>')
    assert groups(resolve(doc).levels) == ["flat", "flat #2"]


def test_a_broken_shape_is_skipped_when_others_work():
    doc = ('<krpano><image><flat url="%SWFPATH%/x/%v_%h.jpg" multires="256,300x300"/></image>'
           '<scene name="ok"><image><flat url="ok/%v_%h.jpg" multires="256,500x500"/></image></scene></krpano>')
    levels = resolve(doc).levels
    assert groups(levels) == ["ok flat"] and levels[0].width == 500


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("doc,why", [
    (b'<Image TileSize="256" Overlap="1" Format="jpg"><Size Width="10" Height="10"/></Image>',
     "root element is <Image>"),
    (b'<IMAGE_PROPERTIES WIDTH="10" HEIGHT="10" TILESIZE="256"/>', "root element is <IMAGE_PROPERTIES>"),
    (b'{"@context": "http://iiif.io/api/image/2/context.json"}', "not XML"),
    (b"<!DOCTYPE html><html><body><p>Hello &nbsp; world<br></body></html>", "unable to parse"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "not XML"),
])
def test_other_documents_are_refused_as_another_format(doc, why):
    with pytest.raises(WrongDezoomer, match=why):
        resolve(doc, "https://example.org/viewer/data.xml")


@pytest.mark.parametrize("doc,message", [
    ("<krpano><image/></krpano>", "no <level> or multires shape in <image>"),
    ("<krpano></krpano>", "no <image> element"),
    ('<krpano><image><level tiledimagewidth="100" tiledimageheight="100"><flat url="a.jpg"/></level></image></krpano>',
     "no tilesize on the level or its image"),
    ('<krpano><image tilesize="-4"><flat url="a" multires="2,4x4"/></image></krpano>', "tilesize='-4' is not positive"),
    ('<krpano><image><flat url="%HTMLPATH%/t/%v.jpg" multires="2,4x4"/></image></krpano>', "%HTMLPATH%"),
    ('<krpano><encrypted>KENCPUPRabc</encrypted></krpano>', "encrypted krpano files are not supported"),
    ("\ufeff  KENCRUZRabcdef", "encrypted krpano files are not supported"),
])
def test_krpano_without_usable_levels_is_one_line_naming_the_input(doc, message):
    with pytest.raises(MalformedMetadata) as err:
        resolve(doc)
    text = str(err.value)
    assert text.startswith(URL + ": ") and message in text and "\n" not in text


def test_broken_xml_at_a_krpano_url_is_malformed_elsewhere_another_format():
    broken = b"<krpano><image><flat url='a' multires='2,4x4'></image>"
    with pytest.raises(MalformedMetadata, match="unable to parse the krpano XML"):
        resolve(broken, "https://example.org/a/tour.xml")
    with pytest.raises(WrongDezoomer, match="unable to parse"):
        resolve(broken, "https://example.org/a/other.xml")


def test_entities_are_still_refused_after_escaping_ampersands():
    doc = b'<!DOCTYPE k [<!ENTITY a "aaaa">]><krpano>&a;&a;</krpano>'
    with pytest.raises(MalformedMetadata, match="entity declarations are not allowed"):
        resolve(doc, "https://example.org/a/krpano.xml")
