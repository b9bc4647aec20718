"""HTML pages: what dezoom_steps.pagescan finds in hand-written viewer pages, and the resolve
driver (dezoomers.discover) following it offline, with its one-line diagnoses.

The pages live in tests/fixtures/pages/pages/; tests/test_e2e_normalize.py serves the same
files over HTTP next to real pyramids.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dezoom_steps.dezoomers import all_dezoomers
from dezoom_steps.dezoomers.auto import order_candidates
from dezoom_steps.dezoomers.base import Documents
from dezoom_steps.dezoomers.discover import resolve_input
from dezoom_steps.errors import MalformedMetadata, NetworkError, NoDezoomerFits
from dezoom_steps.pagescan import classify, is_html, presentation_kind, scan_page

PAGES = Path(__file__).parent / "fixtures" / "pages"
SITE = "https://museum.example.org"


def scan(name: str, url: str | None = None):
    """The findings of one fixture page served at `url` (default: SITE/pages/<name>)."""
    return scan_page((PAGES / "pages" / name).read_bytes(), url or f"{SITE}/pages/{name}")


def refs(findings) -> list[tuple[str, str]]:
    """(url, kind) of every reference, in ranking order."""
    return [(r.url, r.kind) for r in findings.all()]


# --------------------------------------------------------------------- scanning pages

def test_openseadragon_page_with_tile_sources():
    found = scan("osd.html")  # also holds &copy;, &nbsp; in a script, unclosed tags, `a && b`
    assert refs(found) == [(f"{SITE}/demo/demo.dzi", "tilesource")]
    assert found.metadata[0].where == "OpenSeadragon tileSources"
    assert found.title == "Harbour at dawn \u2013 Collection Online"


def test_iiif_viewer_page_referencing_an_info_json():
    assert refs(scan("iiif.html")) == [(f"{SITE}/iiif/demo/info.json", "iiif")]


def test_page_linking_an_image_properties_file():
    # the link comes first; the thumbnail tile is kept as a lower-ranked candidate
    assert refs(scan("zoomify.html")) == [(f"{SITE}/zoomify/demo/ImageProperties.xml", "zoomify"),
                                          (f"{SITE}/zoomify/demo/TileGroup0/0-0-0.jpg", "tile")]


def test_zoomify_viewer_folder_gets_its_image_properties():
    assert refs(scan("zoomify_viewer.html")) == [(f"{SITE}/zoomify/demo/ImageProperties.xml", "zoomify")]


def test_krpano_embed_page():
    assert refs(scan("krpano.html")) == [(f"{SITE}/krpano/tour.xml", "krpano")]


def test_page_with_only_manifest_links():
    # the Mirador link and the IIIF logo link name the same manifest; the PWA <link rel=manifest> is no IIIF
    found = scan("manifest.html")
    assert refs(found) == [(f"{SITE}/iiif/book/manifest.json", "manifest")]
    assert not found.metadata and not found.tiles


def test_page_with_nothing():
    # `"/info.json"`, `".dzi"` and `{"manifest": "x"}` in a script are pieces, not URLs
    found = scan("nothing.html")
    assert refs(found) == [] and found.title == "Opening hours"


def test_frames_are_kept_for_a_second_look():
    assert refs(scan("frame.html")) == [("https://www.youtube.com/embed/abc", "frame"),
                                        (f"{SITE}/pages/osd.html", "frame")]


def test_json_escaped_urls_and_base_href():
    # Next.js-style page data: `https:\/\/...`, `\u002F`, `\u0026`; relative URLs follow <base href>
    assert refs(scan("escaped.html")) == [
        ("https://iiif.example.org/iiif/3/obj42/info.json", "iiif"),
        (f"{SITE}/objects/tiles/obj42.dzi?sig=a1&exp=9", "deepzoom"),
        ("https://iiif.example.org/iiif/3/obj42/full/200,/0/default.jpg", "tile"),
    ]


@pytest.mark.parametrize("html,expected", [
    (b'<html><body><div data-manifest="/m/42"></div></body></html>', [(f"{SITE}/m/42", "manifest")]),
    (b'<html><body><div data-tilesource="/x/plan.xml"></div></body></html>', [(f"{SITE}/x/plan.xml", "tilesource")]),
    (b"<html><body><div onclick=\"zoom('/x/a.dzi')\"></div></body></html>", [(f"{SITE}/x/a.dzi", "deepzoom")]),
    (b'<html><script>new OpenSeadragon({tileSources: ["/p/1/info.json", "/p/2/info.json"]})</script></html>',
     [(f"{SITE}/p/1/info.json", "tilesource"), (f"{SITE}/p/2/info.json", "iiif")]),
    (b'<html><script>{type: "zoomifytileservice", tilesUrl: "/z/pic/"}</script></html>',
     [(f"{SITE}/z/pic/ImageProperties.xml", "zoomify")]),
    (b'<html><embed flashvars="zoomifyImagePath=/z/old&zoomifyNavigator=0"></html>',
     [(f"{SITE}/z/old/ImageProperties.xml", "zoomify")]),
    (b'<html><script>var m = new Mirador.viewer({windows: [{manifestId: "https://x.org/iiif/7/manifest"}]})'
     b'</script></html>',
     [("https://x.org/iiif/7/manifest", "manifest")]),
])
def test_viewer_configurations(html, expected):
    assert refs(scan_page(html, f"{SITE}/pages/p.html")) == expected


@pytest.mark.parametrize("ref", [
    "file:///etc/ImageProperties.xml",  # a remote page never yields local files
    "javascript:void(0)//a.dzi",
    "data:text/plain,x.dzi",
    "mailto:someone@example.org?subject=info.json",
])
def test_unsafe_or_foreign_schemes_are_dropped(ref):
    html = f'<html><body><a href="{ref}">x</a></body></html>'.encode()
    assert refs(scan_page(html, f"{SITE}/pages/p.html")) == []


def test_a_local_page_may_reference_local_files():
    html = b'<html><body><a href="tiles/pic.dzi">x</a></body></html>'
    assert refs(scan_page(html, "file:///data/site/page.html")) == [("file:///data/site/tiles/pic.dzi", "deepzoom")]


@pytest.mark.parametrize("data,expected", [
    (b"<!DOCTYPE html><html><body></body></html>", True),
    (b"\xef\xbb\xbf\n  <html lang=en>", True),
    (b'<?xml version="1.0"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x"><html>', True),
    (b"<head><title>x</title></head>", True),
    (b'<?xml version="1.0"?><Image TileSize="256"><Size Width="1" Height="1"/></Image>', False),
    (b'<krpano><image/></krpano>', False),
    (b'{"@context": "http://iiif.io/api/image/2/context.json"}', False),
    (b"\xff\xd8\xff\xe0JFIF", False),
    (b"", False),
])
def test_html_sniffing(data, expected):
    assert is_html(data) is expected


@pytest.mark.parametrize("doc,expected", [
    (b'{"@context": "http://iiif.io/api/presentation/2/context.json", "@type": "sc:Manifest"}', "manifest"),
    (b'{"@context": "http://iiif.io/api/presentation/3/context.json", "type": "Manifest"}', "manifest"),
    (b'{"@context": "http://iiif.io/api/presentation/3/context.json", "type": "Collection"}', "collection"),
    (b'{"@context": "http://iiif.io/api/image/3/context.json", "type": "ImageService3"}', None),
    (b'{"name": "My PWA", "start_url": "/", "icons": []}', None),
    (b"<html></html>", None),
])
def test_presentation_documents(doc, expected):
    assert presentation_kind(doc) == expected


@pytest.mark.parametrize("url,kind", [
    ("https://x/a/info.json?key=1", "iiif"), ("https://x/info.json", None), ("https://x/a.DZI", "deepzoom"),
    ("https://x/z/ImageProperties.xml", "zoomify"), ("https://x/iiif/b/manifest", "manifest"),
    ("https://x/b.manifest.json", "manifest"), ("https://x/z/TileGroup2/3-1-0.jpg", "tile"),
    ("https://x/a_files/9/0_1.jpeg", "tile"), ("https://x/i/full/max/0/default.jpg", "tile"),
    ("https://x/static/site.css", None), ("https://x/photo.jpg", None),
])
def test_classify(url, kind):
    assert classify(url) == kind


# --------------------------------------------------------------------- the driver, offline

DZI = b'<Image TileSize="256" Overlap="0" Format="jpg"><Size Width="600" Height="400"/></Image>'
MANIFEST = (PAGES / "iiif" / "book" / "manifest.json").read_bytes()


class Site:
    """A fake remote site for the offline driver: URL -> bytes; anything else is a 404."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str | None]] = []

    def fetch(self, url: str, referer: str | None) -> bytes:
        """The document at `url`, or a NetworkError like net.fetch_document's."""
        self.requests.append((url, referer))
        if url not in self.files:
            raise NetworkError(f"{url}: HTTP status 404 (Not Found)")
        return self.files[url]


def run(url: str, files: dict[str, bytes]):
    """resolve_input in auto mode over `files`; returns (resolution, site)."""
    site = Site(files)
    result = resolve_input(url, lambda u: order_candidates(u, all_dezoomers()), Documents(), site.fetch, {})
    return result, site


def fails(url: str, files: dict[str, bytes], error: type = NoDezoomerFits) -> tuple[str, Site]:
    """The one-line message of the expected error, and the site (for its requests)."""
    site = Site(files)
    with pytest.raises(error) as err:
        resolve_input(url, lambda u: order_candidates(u, all_dezoomers()), Documents(), site.fetch, {})
    text = str(err.value)
    assert "\n" not in text and text.startswith(url), text
    return text, site


def page(name: str) -> bytes:
    return (PAGES / "pages" / name).read_bytes()


def test_a_page_leads_to_its_metadata_with_the_page_as_referer():
    result, site = run(f"{SITE}/pages/osd.html", {f"{SITE}/pages/osd.html": page("osd.html"),
                                                   f"{SITE}/demo/demo.dzi": DZI})
    assert result.outcome.dezoomer.name == "deepzoom"
    assert result.start.url == f"{SITE}/demo/demo.dzi" and result.start.referer == f"{SITE}/pages/osd.html"
    assert (f"{SITE}/demo/demo.dzi", f"{SITE}/pages/osd.html") in site.requests
    assert any(name == "page" and "OpenSeadragon tileSources" in why for name, why in result.history)


def test_a_frame_is_scanned_in_turn():
    result, _ = run(f"{SITE}/pages/frame.html", {f"{SITE}/pages/frame.html": page("frame.html"),
                                                  f"{SITE}/pages/osd.html": page("osd.html"),
                                                  f"{SITE}/demo/demo.dzi": DZI})
    assert result.start.url == f"{SITE}/demo/demo.dzi" and result.start.depth == 2


def test_a_page_with_nothing_says_so_in_one_line():
    text, site = fails(f"{SITE}/pages/nothing.html", {f"{SITE}/pages/nothing.html": page("nothing.html")})
    assert 'is an HTML page (titled "Opening hours") and no zoomable image metadata was found in it' in text
    assert "network tab" in text and "info.json, ImageProperties.xml or .dzi" in text
    assert all("/manifest.json" not in u for u, _ in site.requests)  # the PWA manifest is not fetched


def test_a_challenge_page_instead_of_an_info_json_is_called_an_html_page():
    url = f"{SITE}/iiif/2/blocked/info.json"
    challenge = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking</body></html>"
    text, _ = fails(url, {url: challenge})
    assert text.startswith(f'{url} is an HTML page (titled "Just a moment...")')


def test_a_page_at_a_url_claimed_by_a_format_keeps_that_formats_diagnosis():
    # ImageProperties.xml is Zoomify's own name: its parse error names the URL (no page scan)
    url = f"{SITE}/zoomify/private/ImageProperties.xml"
    login = b'<html><head><title>Please log in</title></head><body><a href="/x/a.dzi">x</a></body></html>'
    text, site = fails(url, {url: login}, MalformedMetadata)
    assert "not a Zoomify ImageProperties.xml (root element is <html>" in text
    assert [u for u, _ in site.requests] == [url]


def test_a_page_with_only_a_manifest_says_manifests_are_not_supported():
    text, _ = fails(f"{SITE}/pages/manifest.html", {f"{SITE}/pages/manifest.html": page("manifest.html"),
                                                     f"{SITE}/iiif/book/manifest.json": MANIFEST})
    assert f"found a IIIF manifest at {SITE}/iiif/book/manifest.json" in text
    assert f"--bulk {SITE}/iiif/book/manifest.json" in text


def test_a_manifest_given_directly():
    url = f"{SITE}/iiif/book/manifest.json"
    site = Site({url: MANIFEST})
    with pytest.raises(NoDezoomerFits) as err:
        resolve_input(url, lambda u: order_candidates(u, all_dezoomers()), Documents(), site.fetch, {})
    assert str(err.value).startswith(f"{url} is a IIIF manifest, which lists images rather than being one")
    assert err.value.manifest == url  # for callers that expand manifests


def test_an_ordinary_failure_names_no_manifest():
    url = f"{SITE}/data/plain.json"
    site = Site({url: b'{"hello": "world"}'})
    with pytest.raises(NoDezoomerFits) as err:
        resolve_input(url, lambda u: order_candidates(u, all_dezoomers()), Documents(), site.fetch, {})
    assert err.value.manifest is None


def test_a_mirador_link_to_a_manifest():
    url = f"https://projectmirador.org/embed/?manifest={SITE}/iiif/book/manifest.json"
    text, _ = fails(url, {f"{SITE}/iiif/book/manifest.json": MANIFEST, url: page("nothing.html")})
    assert f"found a IIIF manifest at {SITE}/iiif/book/manifest.json" in text


def test_metadata_found_in_a_page_but_missing_gives_its_own_error():
    text, _ = fails(f"{SITE}/pages/osd.html", {f"{SITE}/pages/osd.html": page("osd.html")}, NetworkError)
    assert f"the page {SITE}/pages/osd.html references {SITE}/demo/demo.dzi" in text
    assert "which could not be used" in text and "404" in text


def test_broken_metadata_found_in_a_page_keeps_its_class():
    files = {f"{SITE}/pages/osd.html": page("osd.html"), f"{SITE}/demo/demo.dzi": b"<Image TileSize='0'"}
    text, _ = fails(f"{SITE}/pages/osd.html", files, MalformedMetadata)
    assert f"{SITE}/demo/demo.dzi" in text


def test_an_unwrapped_url_that_fails_is_named():
    url = "https://dezoomify.ophir.dev/#" + f"{SITE}/gone/info.json"
    text, site = fails(url, {}, NetworkError)
    assert f"the fragment of the input holds {SITE}/gone/info.json, which could not be used" in text
    assert all(not u.startswith("https://dezoomify.ophir.dev") for u, _ in site.requests)


def test_nothing_fits_lists_what_was_tried_and_what_to_look_for():
    url = f"{SITE}/data/plain.json"
    text, _ = fails(url, {url: b'{"hello": "world"}'})
    assert text.startswith(f"{url}: no dezoomer could read this input; tried ")
    assert "iiif (" in text and "deepzoom (" in text and "network tab" in text
