"""Input normalisation end to end: `python -m dezoom_steps` on what users paste (viewer pages,
viewer-app URLs, tokenised metadata URLs), against the project's fault server on 127.0.0.1.

The served folder holds the hand-written pages of tests/fixtures/pages, the embedded demo
pyramid (examples/demo, DeepZoom), Zoomify and IIIF pyramids made from the demo's source
image by libvips, and krpano tiles cut from it with Pillow. Every image written is compared
with examples/demo/source.png; the access log shows what was requested, with which Referer.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from cli_support import (
    DEMO_SIZE, DEMO_SOURCE, EXIT, assert_left_nothing, assert_matches_source, assert_one_line_error, run_dezoom,
    serve_demo_copy,
)
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)

from dezoom_steps.steps.resolve import resolve
from required import unavailable

PAGES = Path(__file__).parent / "fixtures" / "pages"
FIXTURE_ORIGIN = "https://museum.example.org"  # the pages' absolute links, rewritten to the server
TOKEN = "token=s3cr%2Ft-42"
TILE = 256


def vips_pyramid(source: Path, dest: Path, layout: str, *extra: str) -> None:
    """`vips dzsave` of `source` into `dest` (a folder named like the image) with `layout`."""
    vips = shutil.which("vips")
    if vips is None:
        message = "vips (libvips-tools) is needed to make the Zoomify and IIIF pyramids"
        unavailable(message)
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([vips, "dzsave", str(source), str(dest), "--layout", layout, "--suffix", ".jpg[Q=92]", *extra],
                   check=True, capture_output=True, timeout=60)


def krpano_tiles(source: Path, folder: Path) -> int:
    """Cut `source` into 256-px tiles named `{row}_{column}.jpg` (krpano's `%v_%h`); returns their count."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as im:
        im = im.convert("RGB")
        rows, cols = math.ceil(im.height / TILE), math.ceil(im.width / TILE)
        for r in range(rows):
            for c in range(cols):
                box = (c * TILE, r * TILE, min(im.width, (c + 1) * TILE), min(im.height, (r + 1) * TILE))
                im.crop(box).save(folder / f"{r}_{c}.jpg", quality=95)
    return rows * cols


@pytest.fixture
def site(tmp_path: Path, fault_server):  # noqa: F811
    """A fault server over the pages and the four pyramids; the pages' absolute links point at it."""
    root = tmp_path / "site"
    shutil.copytree(PAGES, root)
    serve_demo_copy(root)
    vips_pyramid(DEMO_SOURCE, root / "zoomify" / "demo", "zoomify")
    vips_pyramid(DEMO_SOURCE, root / "iiif" / "demo", "iiif3", "--id", "https://iiif.example.org/iiif")
    krpano_tiles(DEMO_SOURCE, root / "krpano" / "tiles")
    srv = fault_server(root)
    for page in (root / "pages").glob("*.html"):
        page.write_text(page.read_text().replace(FIXTURE_ORIGIN, srv.base))
    # a page framing the OpenSeadragon page (frame.html of the fixtures also frames a remote video)
    (root / "pages" / "local_frame.html").write_text(
        '<!DOCTYPE html><html><head><title>Object 42</title></head><body>'
        '<iframe src="osd.html" width="800" height="600"></iframe></body></html>')
    return srv


def tile_requests(srv) -> list[dict]:  # noqa: ANN001 (FaultServer)
    """Logged requests of image files (tiles), in order."""
    exts = (".jpg", ".jpeg", ".png")
    return [r for r in srv.requests() if r["path"].split("?")[0].lower().endswith(exts)]


def paths(srv) -> list[str]:  # noqa: ANN001
    """Logged request paths (query included), in order."""
    return [r["path"] for r in srv.requests()]


# Page -> the metadata document it leads to (server path).
PAGE_TO_METADATA = {
    "osd.html": "/demo/demo.dzi",
    "iiif.html": "/iiif/demo/info.json",
    "zoomify.html": "/zoomify/demo/ImageProperties.xml",
    "zoomify_viewer.html": "/zoomify/demo/ImageProperties.xml",
    "krpano.html": "/krpano/tour.xml",
    "local_frame.html": "/demo/demo.dzi",
}


@pytest.mark.parametrize("page", sorted(PAGE_TO_METADATA))
def test_a_viewer_page_gives_the_image(site, tmp_path: Path, page: str) -> None:
    """The page's metadata is found, read and downloaded; tiles carry the referencing page as Referer."""
    url = site.url(f"pages/{page}")
    result = run_dezoom(tmp_path / "run", url, "out.png")
    assert result.code == 0, result.describe()
    assert_matches_source(tmp_path / "run" / "out.png")
    assert paths(site)[0] == f"/pages/{page}"
    assert PAGE_TO_METADATA[page] in paths(site)
    viewer = site.url("pages/osd.html") if page == "local_frame.html" else url
    tiles = tile_requests(site)
    assert tiles and all(r["referer"] == viewer for r in tiles), {r["referer"] for r in tiles}


def test_resolve_json_records_where_the_metadata_came_from(site, tmp_path: Path) -> None:
    """resolve.json: input_url is the metadata read, normalized_from the page, Referer the page."""
    page = site.url("pages/osd.html")
    doc = resolve(url=page, output=tmp_path / "resolve.json")
    assert doc["input_url"] == site.url("demo/demo.dzi")
    assert doc["normalized_from"] == page
    assert doc["headers"]["Referer"] == page
    assert doc["dezoomer"] == "deepzoom" and (doc["levels"][0]["width"], doc["levels"][0]["height"]) == DEMO_SIZE
    stored = json.loads((tmp_path / "resolve.json").read_text())
    assert stored["normalized_from"] == page
    assert any(c["name"] == "page" and "OpenSeadragon tileSources" in c["outcome"] for c in stored["candidates"])


@pytest.mark.parametrize("wrap", ["fragment", "url-parameter"])
def test_a_viewer_app_url_is_unwrapped(site, tmp_path: Path, wrap: str) -> None:
    """The dezoomify web app's `#URL` and `?url=URL` forms: the wrapped URL is downloaded, the app never asked."""
    meta = site.url("demo/demo.dzi")
    app = site.url("app/") + ("#" + meta if wrap == "fragment" else "?url=" + quote(meta, safe=""))
    result = run_dezoom(tmp_path / "run", app, "out.png")
    assert result.code == 0, result.describe()
    assert_matches_source(tmp_path / "run" / "out.png")
    assert not [p for p in paths(site) if p.startswith("/app")]
    assert paths(site)[0] == "/demo/demo.dzi"


def test_a_page_with_only_a_manifest(site, tmp_path: Path) -> None:
    """Exit 3, one line naming the page and the manifest, and how to download a manifest's images."""
    url = site.url("pages/manifest.html")
    result = run_dezoom(tmp_path / "run", url, "out.png")
    line = assert_one_line_error(result, EXIT["metadata"], url, site.url("iiif/book/manifest.json"))
    assert "--bulk " + site.url("iiif/book/manifest.json") in line
    assert_left_nothing(tmp_path / "run")
    assert tile_requests(site) == []
    assert "/site.webmanifest" not in paths(site)


def test_a_page_with_nothing(site, tmp_path: Path) -> None:
    """Exit 3, one line: an HTML page without metadata, and what to look for instead."""
    url = site.url("pages/nothing.html")
    result = run_dezoom(tmp_path / "run", url, "out.png")
    line = assert_one_line_error(result, EXIT["metadata"], url)
    assert 'is an HTML page (titled "Opening hours") and no zoomable image metadata was found in it' in line
    assert "network tab" in line
    assert_left_nothing(tmp_path / "run")
    assert set(paths(site)) == {"/pages/nothing.html"}  # nothing else: no PWA manifest, no "/info.json"


# Tokenised metadata URL -> how many tiles the largest level has (1200 x 800).
TOKENISED = {
    "demo/demo.dzi": math.ceil(1200 / 256) * math.ceil(800 / 256),
    "zoomify/demo/ImageProperties.xml": math.ceil(1200 / 256) * math.ceil(800 / 256),
    "iiif/demo/info.json": math.ceil(1200 / 512) * math.ceil(800 / 512),
}


@pytest.mark.parametrize("path", sorted(TOKENISED))
def test_the_metadata_query_string_is_sent_with_every_tile(site, tmp_path: Path, path: str) -> None:
    """`...?token=...` on the metadata URL: every tile request carries the same query."""
    result = run_dezoom(tmp_path / "run", site.url(f"{path}?{TOKEN}"), "out.png")
    assert result.code == 0, result.describe()
    assert_matches_source(tmp_path / "run" / "out.png")
    tiles = [r["path"] for r in tile_requests(site)]
    assert len(tiles) == TOKENISED[path], tiles
    assert all(p.endswith("?" + TOKEN) for p in tiles), [p for p in tiles if not p.endswith("?" + TOKEN)]
    assert paths(site)[0] == f"/{path}?{TOKEN}"
