"""End to end through the `dezoom` command: generic {{X}}/{{Y}} templates over the rig's libvips
`google` layout (nginx on 127.0.0.1, and the same files as a local path), custom tiles.yaml
files over the embedded demo pyramid and over the rig, and bad inputs. Every image is compared
with its source's pixels."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli_support import (DEMO, DEMO_SIZE, DEMO_SOURCE, EXIT, assert_left_nothing, assert_one_line_error,
                         pixels)
from cli_support import run_dezoom as run_cli
from rigutil import Rig, compare, describe, label_box, load_rgb, log_offset, read_access_log, run_dezoom

SMALL = (1000, 700)
# Measured on correct downloads: the google layout (Q85) differs from the reference by 0.78
# mean, 5.4 in its worst 32 px cell; the demo (Q90 DeepZoom tiles) by 2.17 / 12.1 (the same
# as reading its .dzi). A dropped, swapped or shifted tile exceeds these by far.
Q85_MEAN, Q85_BLOCK = 1.5, 6.0
DEMO_MEAN, DEMO_BLOCK = 3.0, 16.0
DEMO_TILES = DEMO / "demo_files" / "11"  # the demo's full-size level: 5 x 4 tiles of 256 px, overlap 1


# ------------------------------------------------------------------ helpers

def google_level(rig: Rig) -> int:
    """The full-size zoom level of the rig's google layout of the small image (its highest z)."""
    root = rig.www_dir / "small" / "google256"
    return max(int(p.name) for p in root.iterdir() if p.name.isdigit())


def sidecar(out: Path) -> dict:
    """The provenance sidecar of an output."""
    return json.loads(out.with_name(out.name + ".json").read_text())


def assert_like(out: Path, source: Path, mean: float, block: float, box=None) -> None:
    """Same size as the source, JPEG noise only, no cell that fits better shifted."""
    got, want = load_rgb(out), load_rgb(source)
    assert got.shape == want.shape, f"{out.name} is {got.shape[1]}x{got.shape[0]}, source is {want.shape[1]}x{want.shape[0]}"
    problems = compare(got, want, box).problems(mean, block)
    assert not problems, "; ".join(problems)


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ------------------------------------------------------------------ generic over the google layout

def test_generic_template_over_http_trims_the_white_padding(rig: Rig, tmp_path: Path) -> None:
    """vips pads the edge tiles to 256 px with white; the stitched image is 1000x700, the source."""
    z = google_level(rig)
    url = rig.url("static", f"/small/google256/{z}/{{{{Y}}}}/{{{{X}}}}.jpg")
    since = log_offset(rig.access_log)
    t0 = time.monotonic()
    proc = run_dezoom([url, "out.png"], cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, describe(proc)
    assert time.monotonic() - t0 < 60
    box = label_box(json.loads(rig.ref_small_json.read_text()))
    assert_like(tmp_path / "out.png", rig.ref_small, Q85_MEAN, Q85_BLOCK, box)
    side = sidecar(tmp_path / "out.png")
    assert (side["width"], side["height"], side["complete"], side["tiles_total"]) == (*SMALL, True, 12)

    prefix = f"/small/google256/{z}/"
    requests = [e for e in read_access_log(rig.access_log, since)
                if e.port == rig.ports["static"] and e.path.startswith(prefix)]
    tiles = {f"{prefix}{r}/{c}.jpg" for r in range(3) for c in range(4)}
    assert {e.path for e in requests if e.status == 200} == tiles
    # probing: tile (0,0), 5 along the row, 3 down the column, the corner (+ the literal
    # template asked by the other readers); then each of the 12 tiles once
    assert len(requests) <= 12 + 11, sorted(e.path for e in requests)
    assert all(sum(e.path == t for e in requests) <= 2 for t in tiles)


def test_generic_template_as_a_local_path(rig: Rig, tmp_path: Path) -> None:
    """The same layout read from disk: the path's braces arrive percent-encoded in a file: URL."""
    template = rig.www_dir / "small" / "google256" / str(google_level(rig)) / "{{Y}}" / "{{X}}.jpg"
    proc = run_dezoom([str(template), "out.png"], cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert_like(tmp_path / "out.png", rig.ref_small, Q85_MEAN, Q85_BLOCK,
                label_box(json.loads(rig.ref_small_json.read_text())))


def test_generic_template_without_a_first_tile(rig: Rig, tmp_path: Path) -> None:
    """A template naming no tile at all: one line naming it, exit 2, within seconds, no file."""
    url = rig.url("static", "/small/google256/9/{{Y}}/{{X}}.jpg")
    t0 = time.monotonic()
    result = run_cli(tmp_path / "run", url, "out.png")
    assert time.monotonic() - t0 < 15
    line = assert_one_line_error(result, EXIT["input"], url, "column 0, row 0", "404")
    assert "check the template" in line
    assert_left_nothing(tmp_path / "run")


# ------------------------------------------------------------------ custom over the demo pyramid

def test_custom_yaml_over_the_demo_pyramid(tmp_path: Path) -> None:
    """Absolute file: URLs, overlapping tiles placed by expressions, the size found from the edge
    tiles (no width/height), any .yml name with -d custom."""
    layout = write_yaml(tmp_path / "demo-layout.yml", {
        "url_template": DEMO_TILES.as_uri() + "/{{x}}_{{y}}.jpg",
        "variables": [{"name": "x", "from": 0, "to": 4}, {"name": "y", "from": 0, "to": 3},
                      {"name": "tile", "value": 256}],
        # DeepZoom overlap 1: tile c > 0 starts one pixel before c * 256
        "x_template": "max(x * tile - 1, 0)",
        "y_template": "if(y > 0, y * tile - 1, 0)",
        "title": "demo from yaml",
    })
    result = run_cli(tmp_path / "run", str(layout), "out.png", "-d", "custom")
    assert result.code == 0, result.describe()
    out = tmp_path / "run" / "out.png"
    assert_like(out, DEMO_SOURCE, DEMO_MEAN, DEMO_BLOCK)
    side = sidecar(out)
    assert (side["width"], side["height"], side["tiles_total"], side["complete"]) == (*DEMO_SIZE, 20, True)
    assert side["title"] == "demo from yaml"


def test_custom_tiles_yaml_with_relative_urls_is_found_automatically(tmp_path: Path) -> None:
    """A tiles.yaml beside its tiles: relative URLs, zero padding and a reversed variable; no -d."""
    site = tmp_path / "site"
    (site / "t").mkdir(parents=True)
    for tile in DEMO_TILES.iterdir():  # renamed: t/r{row:02}/c{col:03}.jpg
        col, row = (int(v) for v in tile.stem.split("_"))
        (site / "t" / f"r{row:02}").mkdir(exist_ok=True)
        (site / "t" / f"r{row:02}" / f"c{col:03}.jpg").write_bytes(tile.read_bytes())
    write_yaml(site / "tiles.yaml", {
        "url_template": "t/r{{ row :02}}/c{{ col :03}}.jpg",
        "variables": [{"name": "row", "from": 3, "to": 0, "step": -1}, {"name": "col", "from": 0, "to": 4}],
        "x_template": "col * 256 - if(col > 0, 1, 0)",
        "y_template": "row * 256 - if(row > 0, 1, 0)",
        "width": DEMO_SIZE[0], "height": DEMO_SIZE[1],
    })
    result = run_cli(tmp_path / "run", str(site / "tiles.yaml"), "out.png")
    assert result.code == 0, result.describe()
    assert_like(tmp_path / "run" / "out.png", DEMO_SOURCE, DEMO_MEAN, DEMO_BLOCK)
    assert sidecar(tmp_path / "run" / "out.png")["dezoomer"] == "custom"


def test_custom_tiles_are_the_demo_pixels_exactly_where_they_do_not_overlap(tmp_path: Path) -> None:
    """Each tile owns the canvas from its position to the next one: pixels are the tile's own."""
    layout = write_yaml(tmp_path / "tiles.yaml", {
        "url_template": DEMO_TILES.as_uri() + "/{{x}}_{{y}}.jpg",
        "variables": [{"name": "x", "from": 0, "to": 4}, {"name": "y", "from": 0, "to": 3}],
        "x_template": "max(x * 256 - 1, 0)", "y_template": "max(y * 256 - 1, 0)",
        "width": DEMO_SIZE[0], "height": DEMO_SIZE[1],
    })
    result = run_cli(tmp_path / "run", str(layout), "out.png")
    assert result.code == 0, result.describe()
    got = pixels(tmp_path / "run" / "out.png")
    tile = pixels(DEMO_TILES / "1_1.jpg")  # starts at (255, 255), owns 256 x 256 px
    assert np.array_equal(got[255:511, 255:511], tile[:256, :256])


# ------------------------------------------------------------------ custom over the rig, with headers

def zoomify_yaml(rig: Rig, path: Path, with_cookie: bool) -> Path:
    """A tiles.yaml listing tier 2 (1000x700, 4 x 3 tiles) of the rig's zoomify256 on the headers port."""
    doc = {
        "url_template": rig.url("headers", "/small/zoomify256/TileGroup0/2-{{x}}-{{y}}.jpg"),
        "variables": [{"name": "x", "from": 0, "to": 3}, {"name": "y", "from": 0, "to": 2}],
        "x_template": "x * 256", "y_template": "y * 256",
        "width": SMALL[0], "height": SMALL[1], "title": "rig small",
    }
    if with_cookie:
        doc["headers"] = {"Cookie": "session=s3cret"}
    return write_yaml(path, doc)


def test_custom_headers_are_sent_with_the_tiles(rig: Rig, tmp_path: Path) -> None:
    """The headers port serves tiles only with a cookie: the tiles.yaml's headers carry it."""
    since = log_offset(rig.access_log)
    proc = run_dezoom([str(zoomify_yaml(rig, tmp_path / "tiles.yaml", True)), "out.png"], cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert_like(tmp_path / "out.png", rig.ref_small, Q85_MEAN, Q85_BLOCK,
                label_box(json.loads(rig.ref_small_json.read_text())))
    tiles = [e for e in read_access_log(rig.access_log, since) if e.port == rig.ports["headers"]]
    assert len(tiles) == 12 and all(e.status == 200 for e in tiles)

    bare = tmp_path / "bare"
    bare.mkdir()
    proc = run_dezoom([str(zoomify_yaml(rig, bare / "tiles.yaml", False)), "out.png"], cwd=bare)
    assert proc.returncode == EXIT["network"] and "Traceback" not in proc.stderr, describe(proc)


# ------------------------------------------------------------------ bad tiles.yaml files

@pytest.mark.parametrize("doc,message", [
    ({"url_template": "https://example.org/{{x}}.jpg", "variables": [{"name": "x", "from": 0, "to": 9, "step": 0}]},
     "the range of values for x is incorrect: step must not be 0"),
    ({"url_template": "https://example.org/{{x}}.jpg", "variables": [{"name": "x", "from": 0, "to": 9}],
      "x_template": "x * (256", "y_template": "0"},
     "x_template: 'x * (256' is not a valid expression"),
    ({"url_template": "https://example.org/{{x}}.jpg", "variables": [{"name": "x", "from": 0, "to": 9}],
      "x_template": "256 / x", "y_template": "0", "width": 10, "height": 10},
     "x_template '256 / x' failed for x=0: division by zero"),
    ({"url_template": "https://example.org/{{x}}.jpg", "variables": [{"name": "x", "from": 0, "to": 10**15}]},
     "the range of values for x is too wide"),
])
def test_bad_tiles_yaml_is_one_line_within_seconds(tmp_path: Path, doc: dict, message: str) -> None:
    layout = write_yaml(tmp_path / "tiles.yaml", doc)
    t0 = time.monotonic()
    result = run_cli(tmp_path / "run", str(layout), "out.png")
    assert time.monotonic() - t0 < 15
    assert_one_line_error(result, EXIT["metadata"], "tiles.yaml", message)
    assert_left_nothing(tmp_path / "run")
