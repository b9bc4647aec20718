"""Start-up and per-image fixed costs (issue 7, target 3): lazy imports, the quick schema check,
the step-file layout, redaction's shortcut and the tile header reader, each against what it replaces."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dezoom_steps import jsonio, redact
from dezoom_steps.encoders.tiff_passthrough import _read_tile, parse_header, read_tile_header, tile_facts
from dezoom_steps.model import TileRef
from dezoom_steps.quickschema import conforms
from dezoom_steps.steps.fetch_tiles import fetch_tiles
from dezoom_steps.steps.list_tiles import list_tiles
from dezoom_steps.steps.render import render
from dezoom_steps.steps.resolve import resolve

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo" / "demo.dzi"
HEAVY = {"numpy", "PIL", "jsonschema", "yaml", "cryptography", "tifffile", "imagecodecs"}


def modules_after(code: str) -> set[str]:
    """The top-level packages imported by a fresh interpreter running `code`."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


# --- lazy imports ------------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["resolve", "list_tiles", "fetch_tiles", "summary", "expand_bulk"])
def test_steps_without_pixels_import_no_pixel_schema_or_format_library(script: str) -> None:
    """What a step script imports before its work starts: numpy and Pillow only where pixels are
    handled, jsonschema only when a file fails the quick check, yaml and cryptography only inside
    the formats that need them (the fetch step's tile check uses Pillow: not asserted here)."""
    lines = [line.split("#")[0] for line in (REPO / "scripts" / f"{script}.py").read_text().splitlines()
             if line.startswith("from dezoom_steps")]
    loaded = modules_after("\n".join(lines))
    expected_absent = HEAVY - ({"PIL"} if script == "fetch_tiles" else set())
    assert loaded & expected_absent == set()


def test_by_name_imports_only_that_dezoomer() -> None:
    code = ("import sys\nfrom dezoom_steps.dezoomers import by_name\nby_name('DeepZoom')\n"
            "print(' '.join(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('dezoom_steps.dezoomers.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    imported = set(proc.stdout.split())
    assert "deepzoom" in imported
    assert imported.isdisjoint({"custom", "generic", "google_arts_and_culture", "iiif", "zoomify", "pff",
                                "krpano", "iipimage", "nypl"})


def test_list_tiles_of_a_tiff_runs_without_numpy_pillow_or_jsonschema(tmp_path: Path) -> None:
    """The whole pure step, including the output-format check (`--output-file x.tif`)."""
    resolve(url=str(DEMO), output=tmp_path / "resolve.json")
    code = (f"from pathlib import Path\nfrom dezoom_steps.steps.list_tiles import list_tiles\n"
            f"doc = list_tiles(resolve_json=Path({str(tmp_path / 'resolve.json')!r}), "
            f"output=Path({str(tmp_path / 'tiles.json')!r}), image='demo', output_file=Path('x.tif'))\n"
            "assert len(doc['tiles']) == 20\n")
    assert modules_after(code) & HEAVY == set()
    assert len(json.loads((tmp_path / "tiles.json").read_text())["tiles"]) == 20


# --- the quick schema check: never looser than jsonschema ---------------------------------------

@pytest.fixture(scope="module")
def step_docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Real step files of the demo: resolve, tiles, fetch, stitch (render's report) and output."""
    work = tmp_path_factory.mktemp("steps")
    resolve(url=str(DEMO), output=work / "resolve.json")
    list_tiles(resolve_json=work / "resolve.json", output=work / "tiles.json", image="demo")
    fetch_tiles(tiles_json=work / "tiles.json", cache_dir=work / "cache", report=work / "fetch.json")
    render(tiles_json=work / "tiles.json", cache_dir=work / "cache", output=work / "out.png",
           report=work / "stitch.json")
    names = {"resolve": "resolve.json", "tiles": "tiles.json", "fetch": "fetch.json", "stitch": "stitch.json",
             "output": "out.png.json"}
    return {kind: json.loads((work / name).read_text()) for kind, name in names.items()}


def jsonschema_accepts(doc: Any, kind: str) -> bool:
    schema = jsonio.contract(kind)
    return not any(jsonschema.validators.validator_for(schema)(schema).iter_errors(doc))


def test_real_step_files_pass_the_quick_check(step_docs: dict[str, dict[str, Any]]) -> None:
    for kind, doc in step_docs.items():
        assert conforms(doc, jsonio.contract(kind)), kind  # else every read would import jsonschema
        assert jsonio._conforms(doc, kind), kind


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.integers(), st.floats(allow_nan=False),
                   st.text(max_size=5), st.sampled_from(["dezoom-steps/tiles/1", "0123456789abcdef0123", "x"]),
                   st.builds(list), st.builds(dict), st.builds(lambda: [1]), st.builds(lambda: {"a": 1}))


def paths_of(value: Any, here: tuple = ()) -> list[tuple]:
    """Every path to a value inside `value` (keys and list indices)."""
    out = [here]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_of(v, here + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            out += paths_of(v, here + (i,))
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_quick_check_never_accepts_what_jsonschema_refuses(step_docs: dict[str, dict[str, Any]], data) -> None:
    kind = data.draw(st.sampled_from(sorted(step_docs)))
    doc = copy.deepcopy(step_docs[kind])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in paths_of(doc) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[data.draw(st.sampled_from(["extra", "url", "width", "zzz"]))] = data.draw(LEAVES)
        else:
            parent[path[-1]] = data.draw(LEAVES)
    if conforms(doc, jsonio.contract(kind)):
        assert jsonschema_accepts(doc, kind), (kind, doc)


def test_a_bad_file_still_gets_jsonschemas_message(tmp_path: Path, step_docs: dict[str, dict[str, Any]]) -> None:
    doc = copy.deepcopy(step_docs["resolve"])
    doc["levels"][0]["width"] = 0
    (tmp_path / "resolve.json").write_text(json.dumps(doc))
    with pytest.raises(Exception) as err:
        jsonio.read_step_json(tmp_path / "resolve.json", "resolve")
    assert "not a valid dezoom-steps/resolve/1 file: 0 is less than the minimum of 1" in str(err.value)
    tiles = copy.deepcopy(step_docs["tiles"])
    tiles["tiles"][7]["x"] = -1
    with pytest.raises(jsonschema.ValidationError, match=r"tiles\[7\] is not a valid tile"):
        jsonio.validate(tiles, "tiles")


# --- the step-file layout ----------------------------------------------------------------------

def test_step_json_text_reads_back_the_same_and_puts_one_tile_per_line(step_docs: dict[str, dict[str, Any]]) -> None:
    for kind, doc in step_docs.items():
        text = jsonio.step_json_text(doc)
        assert json.loads(text) == doc, kind
    tiles = step_docs["tiles"]
    lines = jsonio.step_json_text(tiles).splitlines()
    assert sum(line.startswith("  {\"index\": ") for line in lines) == len(tiles["tiles"]) == 20
    nested = {"a": ["x", {"b": [2, "y"]}], "c": {"d": None, "e": "é\"\\"}, "f": [], "g": {}}
    assert jsonio.step_json_text(nested) == json.dumps(nested, indent=1, ensure_ascii=False)
    assert jsonio.step_json_text({"indices": [3, 1, 2.5]}) == '{\n "indices": [3, 1, 2.5]\n}'


# --- redaction's shortcut ----------------------------------------------------------------------

def test_redact_json_returns_the_document_itself_when_no_secret_occurs() -> None:
    doc = {"input_url": "https://h.example/a.dzi", "tiles": [{"url": f"https://h.example/{i}.jpg"} for i in range(3)]}
    assert redact.redact_json(doc) is doc


@pytest.mark.parametrize("secret", ["plain-secret-1", 'quo"te\\slash-2', "accentué-3", "tab\tnew\nline-4"])
def test_secrets_are_still_replaced_everywhere_whatever_json_escaping_they_need(secret: str) -> None:
    redact.register_secret(secret)
    doc = {"input_url": "https://h.example/a.dzi", "headers": {"Referer": f"https://h.example/?k={secret}"},
           "tiles": [{"url": f"https://h.example/{i}.jpg"} for i in range(3)] + [{"url": f"x{secret}y"}]}
    out = redact.redact_json(doc)
    text = json.dumps(out, ensure_ascii=False)
    assert secret not in json.loads(text)["tiles"][3]["url"] and out["tiles"][3]["url"] == "xREDACTEDy"
    assert out["headers"]["Referer"] == "https://h.example/?k=REDACTED"
    assert out["tiles"][:3] == doc["tiles"][:3]


# --- model and tile headers --------------------------------------------------------------------

def test_tileref_to_json_is_asdict() -> None:
    t = TileRef(index=3, col=1, row=2, url="u", x=4, y=5, w=6, h=7, crop_x=1, crop_y=2, key="k")
    assert t.to_json() == dataclasses.asdict(t)
    assert list(t.to_json()) == [f.name for f in dataclasses.fields(TileRef)]


def jpeg_bytes(comment: int = 0, side: int = 16) -> bytes:
    """A 4:2:0 JPEG, with a COM segment of `comment` bytes before its frame header when asked."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    if comment:
        data = data[:2] + b"\xff\xfe" + (comment + 2).to_bytes(2, "big") + b"c" * comment + data[2:]
    return data


@pytest.mark.parametrize("comment, side", [(0, 16), (20000, 16), (0, 512)])
def test_read_tile_header_small_long_headed_and_large_tiles(tmp_path: Path, comment: int, side: int) -> None:
    """Whole file in the first read; headers past the first read; a tail read with pread."""
    data = jpeg_bytes(comment, side)
    path = tmp_path / "t.jpg"
    path.write_bytes(data)
    header, _kind = read_tile_header(path)
    assert header is not None and header == parse_header(data) and (header.width, header.height) == (side, side)
    path.write_bytes(data[:-1])
    assert read_tile_header(str(path))[0] is None, "no EOI at the end"
    assert read_tile_header(tmp_path / "absent") == (None, None)
    os.chmod(path, 0)
    if os.geteuid() != 0:
        assert read_tile_header(path) == (None, None)


def grey_png_bytes() -> bytes:
    """A small greyscale PNG (not a JPEG: its kind comes from tilemodes, not a frame header)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8), 7).save(buf, "PNG")
    return buf.getvalue()


def test_facts_of_stored_bytes_match_what_the_plan_reads_from_the_cache(tmp_path: Path) -> None:
    """`tile_facts` (the download's note of a tile it stored) says what `_read_tile` reads back."""
    good = jpeg_bytes()
    bodies = [good, jpeg_bytes(20000), jpeg_bytes(0, 512), good[:-1], good[:40], good + b"x", b"\xff\xd8",
              grey_png_bytes(), b"not an image", b""]
    memo_read: dict[bytes, Any] = {}
    memo_mem: dict[bytes, Any] = {}
    for i, data in enumerate(bodies):
        path = tmp_path / f"t{i}"
        path.write_bytes(data)
        on_disk = _read_tile(str(path))
        assert tile_facts(data) == on_disk, f"body {i}"
        assert tile_facts(data, memo_mem) == _read_tile(str(path), memo_read) == on_disk, f"body {i}, memo"
    assert tile_facts(good)[0] is not None and tile_facts(good[:-1])[0] is None  # not vacuous


def test_importing_the_package_keeps_numpy_from_starting_blas_threads() -> None:
    """One OpenBLAS thread per CPU cost 0.1 s of CPU in every process; a user's own setting stays."""
    probe = "import os, dezoom_steps, numpy; print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"], out
    out = subprocess.run([sys.executable, "-c", probe], env={**env, "OPENBLAS_NUM_THREADS": "3"},
                         capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "3" and (int(out.split()[1]) > 1 or (os.cpu_count() or 1) == 1), out


# --- the Snakemake head process's exit -----------------------------------------------------------

def test_stop_rate_timers_cancels_pending_timers() -> None:
    import threading

    from dezoom_steps.snaketimers import stop_rate_timers

    fired: list[int] = []
    timer = threading.Timer(30, lambda: fired.append(1))
    timer.start()
    assert stop_rate_timers() == 1
    timer.join(5)
    assert not timer.is_alive() and fired == [] and stop_rate_timers() == 0


@pytest.mark.workflow
def test_a_workflow_run_leaves_no_rate_limit_timer_to_wait_for(tmp_path: Path) -> None:
    """Snakemake's rate-limit timers are non-daemon threads: pending at exit, they held every run ~1 s."""
    probe = ("import runpy, sys, threading\n"
             "try:\n    runpy.run_module('snakemake', run_name='__main__', alter_sys=True)\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "pending = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and not t.finished.is_set()]\n"
             "print('PENDING', len(pending), 'EXIT', code)\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / ".xdg-cache"))
    proc = subprocess.run([sys.executable, "-c", probe, "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path), "--cores", "2"], capture_output=True, text=True, timeout=240, env=env,
                          cwd=tmp_path)
    assert "PENDING 0 EXIT 0" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "results" / "demo.png").exists()
