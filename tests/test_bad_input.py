"""The issue's "bad input" requirements, through the `dezoom` command line run as a subprocess.

Malformed XML or JSON, an HTML page where metadata was expected, metadata answering 404, an
unknown dezoomer name, a non-writable output folder, zero or negative dimensions, an absurd
declared size: each must give one line naming the URL (or file) and the problem, the exit code
the README documents, no traceback, and nothing at the output path (nor a temporary file
beside it, nor a leftover work folder). Refusals that can be decided from the metadata
(pixel budget, JPEG side limit, output folder) must come before any tile request, which the
fault server's access log shows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_support import (
    DEMO_DZI, DEMO_SIZE, EXIT, assert_left_nothing, assert_matches_source, assert_one_line_error,
    request_paths, run_dezoom, serve_demo_copy, tile_request_paths,
)
from faultserver_fixture import fault_server  # noqa: F401  (pytest fixture)

DZI_NS = "http://schemas.microsoft.com/deepzoom/2008"


def dzi(width: int | str, height: int | str, tile: int = 256) -> str:
    """A DeepZoom descriptor declaring the given size."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Image xmlns="{DZI_NS}" TileSize="{tile}" Overlap="1" '
            f'Format="jpg">\n  <Size Width="{width}" Height="{height}"/>\n</Image>\n')


def zoomify(width: int | str, height: int | str) -> str:
    """A Zoomify ImageProperties.xml declaring the given size."""
    return (f'<IMAGE_PROPERTIES WIDTH="{width}" HEIGHT="{height}" NUMTILES="1" NUMIMAGES="1" '
            'VERSION="1.8" TILESIZE="256" />\n')


def iiif(width: int | str, height: int | str) -> str:
    """An IIIF Image API 2 info.json declaring the given size."""
    return ('{"@context": "http://iiif.io/api/image/2/context.json", "@id": "http://127.0.0.1/iiif/img", '
            '"protocol": "http://iiif.io/api/image", '
            f'"width": {width}, "height": {height}, '
            '"profile": ["http://iiif.io/api/image/2/level1.json"], '
            '"tiles": [{"width": 512, "scaleFactors": [1, 2, 4, 8]}]}\n')


def write(folder: Path, name: str, text: str) -> Path:
    """Write `text` to `folder/name` (folder created) and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def check_clean_failure(tmp_path: Path, result, code: int, *names: str) -> str:  # noqa: ANN001
    """One line naming `names`, exit `code`, and nothing left in the run folder or TMPDIR."""
    line = assert_one_line_error(result, code, *names)
    assert_left_nothing(tmp_path / "run")
    assert_left_nothing(tmp_path / "run.tmp")
    return line


# --- malformed documents and impossible sizes, as local files -------------------------------

MALFORMED = {
    "dzi-unclosed-tag": ("broken.dzi", dzi(1200, 800).replace('"/>', '">')),
    "dzi-truncated": ("cut.dzi", dzi(1200, 800)[:90]),
    "zoomify-garbage": ("ImageProperties.xml", '<IMAGE_PROPERTIES WIDTH="100" HEIGHT=>'),
    "json-trailing-comma": ("info.json", iiif(1000, 800).replace('"tiles"', '"tiles":,')),
    "json-truncated": ("info.json", iiif(1000, 800)[:70]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_metadata_file(tmp_path: Path, case: str) -> None:
    """Malformed XML or JSON in a local file: exit 3, one line naming the file, nothing written."""
    name, text = MALFORMED[case]
    doc = write(tmp_path / "in", name, text)
    result = run_dezoom(tmp_path / "run", str(doc), "out.png")
    check_clean_failure(tmp_path, result, EXIT["metadata"], doc.name)


BAD_SIZES = {
    "dzi-zero-width": ("z.dzi", dzi(0, 800)),
    "dzi-zero-height": ("z.dzi", dzi(1200, 0)),
    "dzi-negative-width": ("n.dzi", dzi(-5, 800)),
    "dzi-zero-tile": ("t.dzi", dzi(1200, 800, tile=0)),
    "zoomify-zero-width": ("ImageProperties.xml", zoomify(0, 100)),
    "zoomify-negative-height": ("ImageProperties.xml", zoomify(100, -1)),
    "iiif-zero-width": ("info.json", iiif(0, 800)),
    "iiif-negative-height": ("info.json", iiif(1000, -10)),
}


@pytest.mark.parametrize("case", sorted(BAD_SIZES))
def test_zero_or_negative_dimensions(tmp_path: Path, case: str) -> None:
    """Zero or negative declared sizes: exit 3 (metadata), one line naming the file."""
    name, text = BAD_SIZES[case]
    doc = write(tmp_path / "in", name, text)
    result = run_dezoom(tmp_path / "run", str(doc), "out.png")
    check_clean_failure(tmp_path, result, EXIT["metadata"], doc.name)


def test_unknown_dezoomer(tmp_path: Path) -> None:
    """`-d nope`: exit 2, one line naming the dezoomer and the input."""
    result = run_dezoom(tmp_path / "run", str(DEMO_DZI), "out.png", "-d", "nope")
    check_clean_failure(tmp_path, result, EXIT["input"], "nope", DEMO_DZI.name)


def test_wrong_dezoomer_for_the_input(tmp_path: Path) -> None:
    """`-d zoomify` on a DZI: exit 3 (no dezoomer fits), one line naming the input."""
    result = run_dezoom(tmp_path / "run", str(DEMO_DZI), "out.png", "-d", "zoomify")
    check_clean_failure(tmp_path, result, EXIT["metadata"], DEMO_DZI.name, "zoomify")


def test_missing_local_file(tmp_path: Path) -> None:
    """A local path that does not exist: exit 2, one line naming it."""
    missing = tmp_path / "in" / "nothing-here.dzi"
    result = run_dezoom(tmp_path / "run", str(missing), "out.png")
    check_clean_failure(tmp_path, result, EXIT["input"], "nothing-here.dzi")


def test_unsupported_scheme(tmp_path: Path) -> None:
    """An ftp: URL: exit 2, one line naming it."""
    url = "ftp://127.0.0.1/pyramid/info.json"
    result = run_dezoom(tmp_path / "run", url, "out.png")
    check_clean_failure(tmp_path, result, EXIT["input"], url)


# --- the same over HTTP: HTML instead of metadata, 404, malformed bodies --------------------

@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A folder for the fault server: a copy of the demo plus hand-written documents."""
    root = tmp_path / "site"
    serve_demo_copy(root)
    write(root, "bad.dzi", MALFORMED["dzi-unclosed-tag"][1])
    write(root / "bad", "info.json", MALFORMED["json-trailing-comma"][1])
    write(root / "zero", "info.json", iiif(0, 0))
    write(root / "huge", "info.json", iiif(10**6, 10**6))
    write(root / "huge", "ImageProperties.xml", zoomify(10**6, 10**6))
    write(root, "huge.dzi", dzi(10**6, 10**6))
    write(root / "wide", "ImageProperties.xml", zoomify(70_000, 1_000))
    return root


HTTP_FAILURES = {
    # path on the fault server -> expected exit code
    "m/html=1/huge/info.json": EXIT["metadata"],
    "m/html=1/demo/demo.dzi": EXIT["metadata"],
    "m/html=1/huge/ImageProperties.xml": EXIT["metadata"],
    "missing/info.json": EXIT["network"],
    "missing.dzi": EXIT["network"],
    "m/fail=9,status=404/demo/demo.dzi": EXIT["network"],
    "bad.dzi": EXIT["metadata"],
    "bad/info.json": EXIT["metadata"],
    "zero/info.json": EXIT["metadata"],
}


@pytest.mark.parametrize("path", sorted(HTTP_FAILURES))
def test_unusable_metadata_over_http(fault_server, site: Path, tmp_path: Path, path: str) -> None:  # noqa: F811
    """HTML page, 404, malformed or zero-size metadata over HTTP: documented exit, one line naming the URL."""
    srv = fault_server(site)
    url = srv.url(path)
    result = run_dezoom(tmp_path / "run", url, "out.png", "-r", "0")
    check_clean_failure(tmp_path, result, HTTP_FAILURES[path], url)
    assert tile_request_paths(srv) == [], "no tile may be requested when the metadata is unusable"


# --- refusals before any tile request -------------------------------------------------------

@pytest.mark.parametrize("path", ["huge/info.json", "huge/ImageProperties.xml", "huge.dzi"])
def test_absurd_size_refused_before_fetching(fault_server, site: Path, tmp_path: Path, path: str) -> None:  # noqa: F811
    """10^6 x 10^6 px declared: exit 5 over the default pixel budget, and not one tile requested."""
    srv = fault_server(site)
    url = srv.url(path)
    result = run_dezoom(tmp_path / "run", url, "out.png")
    check_clean_failure(tmp_path, result, EXIT["output"], url)
    assert request_paths(srv) == ["/" + path], "only the metadata may be requested"


def test_pixel_budget_is_configurable(fault_server, site: Path, tmp_path: Path) -> None:  # noqa: F811
    """--pixel-budget one below the demo's 1200x800 refuses it before fetching; equal to it passes."""
    srv = fault_server(site)
    url = srv.url("demo/demo.dzi")
    pixels = DEMO_SIZE[0] * DEMO_SIZE[1]
    refused = run_dezoom(tmp_path / "run", url, "out.png", "--pixel-budget", str(pixels - 1))
    check_clean_failure(tmp_path, refused, EXIT["output"], url)
    assert tile_request_paths(srv) == []
    ok = run_dezoom(tmp_path / "run", url, "out.png", "--pixel-budget", str(pixels), "-i", "0")
    assert ok.code == 0, ok.describe()
    assert_matches_source(tmp_path / "run" / "out.png")


def test_jpeg_too_wide_refused_before_fetching(fault_server, site: Path, tmp_path: Path) -> None:  # noqa: F811
    """A 70,000 px wide image to .jpg: exit 5 naming the output, before any tile request."""
    srv = fault_server(site)
    url = srv.url("wide/ImageProperties.xml")
    result = run_dezoom(tmp_path / "run", url, "out.jpg")
    check_clean_failure(tmp_path, result, EXIT["output"], "out.jpg")
    assert request_paths(srv) == ["/wide/ImageProperties.xml"]


# --- output folder that cannot be written, even by root -------------------------------------

def _unwritable_by_anyone() -> Path:
    """A folder where even root cannot create a file (procfs refuses new entries)."""
    folder = Path("/proc")
    probe = folder / f"dezoom-test-probe-{os.getpid()}"
    try:
        probe.open("wb").close()
    except OSError:
        return folder
    probe.unlink()
    pytest.fail(f"{folder} accepted a new file; pick another unwritable folder for this machine")


def test_output_folder_is_a_file(fault_server, site: Path, tmp_path: Path) -> None:  # noqa: F811
    """OUTFILE inside a regular file: exit 5 naming the output, the file untouched, no tile requested."""
    srv = fault_server(site)
    run = tmp_path / "run"
    blocker = write(run, "blocker", "a regular file\n")
    result = run_dezoom(run, srv.url("demo/demo.dzi"), "blocker/out.png")
    assert_one_line_error(result, EXIT["output"], "blocker/out.png")
    assert blocker.read_text() == "a regular file\n"
    assert_left_nothing(run, {"blocker"})
    assert_left_nothing(tmp_path / "run.tmp")
    assert tile_request_paths(srv) == []


def test_output_folder_not_writable(fault_server, site: Path, tmp_path: Path) -> None:  # noqa: F811
    """OUTFILE in a folder root cannot write (/proc): exit 5 naming the output, before any tile request."""
    srv = fault_server(site)
    out = _unwritable_by_anyone() / f"dezoom-test-out-{os.getpid()}.png"
    result = run_dezoom(tmp_path / "run", srv.url("demo/demo.dzi"), str(out))
    check_clean_failure(tmp_path, result, EXIT["output"], str(out))
    assert not out.exists()
    assert tile_request_paths(srv) == [], "an output folder that cannot be written must be refused before fetching"
