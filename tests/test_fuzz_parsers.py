"""Property-based fuzzing (hypothesis) of every parser of untrusted input (issue 6, "Tests").

Metadata comes from servers anyone can run, so each parser is fed arbitrary bytes and mutated
copies of the valid documents of tests/fixtures/dezoomers. The only exceptions allowed out are
the project's own: DezoomError subclasses, WrongDezoomer and NeedsData (and, for the pure
expression/template parsers, their documented ExprError/TemplateError). Anything else
(KeyError, TypeError, RecursionError, ZeroDivisionError, OverflowError...) is a bug, fixed in the
parser, and the input that found it is kept below as an `@example`.

A level a dezoomer accepts must be usable: positive whole sizes, and its first tiles listable.
Example counts are bounded so the file runs in well under a minute (FUZZ_SCALE=N multiplies them); under CI=true the examples
are derandomized, so a failure is reproducible.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dezoomer_cases import FORMATS, Case, load_cases, no_fetch
from dezoom_steps import normalize, pagescan, safejson
from dezoom_steps.collections import bulk_list, iiif_manifest
from dezoom_steps.dezoomers import by_name, expr
from dezoom_steps.dezoomers.auto import run_rounds
from dezoom_steps.dezoomers.base import Documents, FetchFailure
from dezoom_steps.dezoomers.custom import read_tiles_yaml
from dezoom_steps.dezoomers.krpano import template as krpano_template
from dezoom_steps.errors import DezoomError, NeedsData, WrongDezoomer
from dezoom_steps.model import Level
from dezoom_steps.naming import MAX_NAME_BYTES, clean_component, render_name, title_stem
from required import in_ci

CI = in_ci()
SCALE = max(1, int(os.environ.get("FUZZ_SCALE", "1")))  # FUZZ_SCALE=20 for a longer bug hunt
OWN_ERRORS = (DezoomError, WrongDezoomer, NeedsData)
TILES_CHECKED = 3  # the first tiles of every accepted level are listed


def fuzz_settings(examples: int) -> settings:
    """Bounded, deadline-free settings; derandomized under CI for reproducible runs."""
    return settings(max_examples=examples * SCALE, deadline=None, derandomize=CI, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


# ------------------------------------------------------------------ hostile values and mutations

HOSTILE_NUMBERS = [
    "0", "-1", "-0", "1", "2", "-99999999999999999999", "99999999999999999999999999999999", "1e400",
    "-1e400", "NaN", "nan", "Infinity", "-Infinity", "1.5", "0.0001", "1e-400", "0x10", "", " ", "\"12\"",
    "null", "true", "[]", "{}", "1000000", "1000000000", "4294967296", "18446744073709551616",
]
HOSTILE_TEXT = [
    "../../x", "/etc/passwd", "C:\\x", "CON", "a\x00b", "&amp;", "&xx;", "<x>", "\"", "'", "{{x}}", "%s",
    "file:///etc/passwd", "javascript:alert(1)", "data:,x", "\ud800".encode("utf-8", "surrogatepass").decode(
        "utf-8", "replace"), "\u202e", "\x1b[31m", "é" * 50,
]
HOSTILE_CHUNKS = [s.encode("utf-8", "replace") for s in HOSTILE_NUMBERS + HOSTILE_TEXT] + [
    b"\xff\xfe", b"\x00", b"\xef\xbb\xbf", b"[" * 5000, b"{\"a\":" * 3000, b"<a>" * 3000,
    b"<!DOCTYPE x [<!ENTITY a \"b\">]>", b"<!ENTITY a SYSTEM \"file:///etc/passwd\">", b"&a;",
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x y="&a;&a;"/>'.encode("utf-16"),
    b'<?xml version="1.0" encoding="ebcdic-cp-us"?><a/>', b'<?xml version="1.0" encoding="nope"?><a/>',
]


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` after a few edits: numbers swapped for hostile ones, bytes cut, inserted or flipped."""
    data = original
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["number", "number", "insert", "delete", "flip", "truncate", "dup"]))
        if action == "number":
            digits = [i for i in range(len(data)) if data[i:i + 1].isdigit() and (i == 0 or not data[i - 1:i].isdigit())]
            if not digits:
                continue
            start = draw(st.sampled_from(digits))
            end = start
            while end < len(data) and data[end:end + 1].isdigit():
                end += 1
            data = data[:start] + draw(st.sampled_from(HOSTILE_NUMBERS)).encode() + data[end:]
        elif action == "insert":
            at = draw(st.integers(0, len(data)))
            chunk = draw(st.one_of(st.sampled_from(HOSTILE_CHUNKS), st.binary(max_size=16)))
            data = data[:at] + chunk + data[at:]
        elif action == "delete" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + data[at + draw(st.integers(1, 16)):]
        elif action == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif action == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif action == "dup" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + data[at:at + 64] * draw(st.integers(2, 20)) + data[at:]
    return data


# ------------------------------------------------------------------ dezoomers through the Documents store

ALL_CASES: list[Case] = [c for f in FORMATS for c in load_cases(f)]


def check_found_levels(dezoomer_name: str, levels: list[Level]) -> None:
    """Every accepted level has positive whole sizes and its first tiles can be listed."""
    dz = by_name(dezoomer_name)
    assert levels, "a dezoomer returned no level"
    for lv in levels:
        for attr in ("width", "height", "tile_width", "tile_height"):
            value = getattr(lv, attr)
            assert isinstance(value, int) and not isinstance(value, bool) and value > 0, (attr, value)
        assert isinstance(lv.overlap, int) and lv.overlap >= 0, lv.overlap
        for tile in itertools.islice(dz.tiles(lv), TILES_CHECKED):
            assert tile.w > 0 and tile.h > 0, tile


def resolve_with(case: Case, docs: dict[str, bytes]) -> None:
    """The metadata loop of `case`'s dezoomer alone over `docs`; only own errors may escape."""
    dz = by_name(case.format)
    try:
        outcome = run_rounds(case.input, [dz], Documents(docs), no_fetch, {})
    except OWN_ERRORS:
        return
    check_found_levels(case.format, outcome.found.levels)


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda c: f"{c.format}/{c.name}")
@fuzz_settings(12)
@given(data=st.data())
def test_mutated_valid_documents(case: Case, data: st.DataObject) -> None:
    """Each fixture case with one of its documents mutated: own errors only, sane levels."""
    url = data.draw(st.sampled_from(sorted(case.documents)))
    docs = dict(case.documents)
    docs[url] = data.draw(mutated(docs[url]))
    resolve_with(case, docs)


# Inputs the fuzzers found, kept as regressions: (format, case, document URL, old bytes, new bytes).
FOUND = [
    ("iiif", "localhost_id", "https://images.museum.example/iiif/2/obj-17/info.json",
     b"localhost:8080", b"localhost:-1"),  # same_origin: ValueError for a port out of range
    ("custom", "size_from_edge_tiles", "https://example.org/strips/tiles.yaml",
     b"https://example.org", b"https://[]example.org"),  # urlsplit: ValueError (broken IPv6 host)
    ("deepzoom", "json_no_url_bom", None, None, b"[" * 100_000),  # RecursionError in json.loads
    ("iiif", "vips_small_v2", None, None, b'{"a":' * 100_000),
    ("nypl", None, None, None, b"[" * 100_000),
    ("custom", "spec_palace", None, None, b"a: &a [*a]"),  # a self-referencing YAML alias
]


@pytest.mark.parametrize("fmt, name, url, old, new", FOUND, ids=lambda v: str(v)[:24] if isinstance(v, str) else None)
def test_regressions_found_by_fuzzing(fmt: str, name: str | None, url: str | None, old: bytes | None, new: bytes) -> None:
    """Each input that once crashed a parser now ends in the project's own error (or a sane level)."""
    case = next(c for c in load_cases(fmt) if name is None or c.name == name)
    docs = dict(case.documents)
    for u in [url] if url else list(docs):
        docs[u] = docs[u].replace(old, new) if old is not None else new
    resolve_with(case, docs)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-be", "utf-32"])
def test_xml_entities_refused_in_every_encoding(encoding: str) -> None:
    """A UTF-16 document once slipped its entity declarations past a UTF-8-only check."""
    from dezoom_steps.xmldoc import XmlError, parse_xml

    doc = (f'<?xml version="1.0" encoding="{encoding.upper()}"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
           '<Image TileSize="&a;&a;"/>').encode(encoding)
    with pytest.raises(XmlError, match="entity"):
        parse_xml(doc)


@pytest.mark.parametrize("fmt", FORMATS)
@fuzz_settings(40)
@given(body=st.one_of(st.binary(max_size=2048), st.sampled_from(HOSTILE_CHUNKS)))
@example(body=b"[" * 100_000)
@example(body=b"{\"width\":" * 50_000)
@example(body=b"<a>" * 100_000)
@example(body=b"\xef\xbb\xbf")
def test_arbitrary_bytes_at_every_document(fmt: str, body: bytes) -> None:
    """Every document of the format's cases replaced by the same arbitrary bytes."""
    for case in load_cases(fmt)[:3]:
        resolve_with(case, {url: body for url in case.documents})


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_document_missing_or_failed(fmt: str) -> None:
    """No document can be downloaded: a clean refusal, never a crash."""
    for case in load_cases(fmt):
        resolve_with(case, {url: FetchFailure("HTTP 404 Not Found") for url in case.documents})


# ------------------------------------------------------------------ IIIF manifests and collections

MANIFEST_URL = "https://iiif.example.org/m/manifest.json"
MANIFEST_2 = (b'{"@context":"http://iiif.io/api/presentation/2/context.json","@id":"' + MANIFEST_URL.encode()
              + b'","@type":"sc:Manifest","label":"Book","sequences":[{"canvases":[{"@id":"c1","@type":'
              b'"sc:Canvas","label":"p1","width":1000,"height":800,"images":[{"motivation":"sc:painting",'
              b'"resource":{"@id":"r","service":{"@id":"https://iiif.example.org/i/1",'
              b'"profile":"http://iiif.io/api/image/2/level1.json"}}}]}]}]}')
MANIFEST_3 = (b'{"@context":"http://iiif.io/api/presentation/3/context.json","id":"' + MANIFEST_URL.encode()
              + b'","type":"Manifest","label":{"en":["Book"]},"items":[{"id":"c1","type":"Canvas",'
              b'"width":1000,"height":800,"items":[{"type":"AnnotationPage","items":[{"type":"Annotation",'
              b'"motivation":"painting","body":{"id":"https://iiif.example.org/i/1/full/max/0/default.jpg",'
              b'"type":"Image","service":[{"id":"https://iiif.example.org/i/1","type":"ImageService3",'
              b'"profile":"level1"}]}}]}]}]}')
COLLECTION = (b'{"@context":"http://iiif.io/api/presentation/2/context.json","@id":"' + MANIFEST_URL.encode()
              + b'","@type":"sc:Collection","manifests":[{"@id":"' + MANIFEST_URL.encode()
              + b'","@type":"sc:Manifest"},{"@id":"https://iiif.example.org/m/2","@type":"sc:Manifest"}],'
              b'"collections":[{"@id":"' + MANIFEST_URL.encode() + b'","@type":"sc:Collection"}]}')


def expand_all(url: str, docs: Documents) -> list[Any]:
    """expand() after fetching, offline, whatever missing() asks for (bounded rounds)."""
    for _ in range(6):
        wanted = iiif_manifest.missing(url, docs)
        if not wanted:
            break
        for u in wanted:
            docs.put(u, docs_default(u))
    return iiif_manifest.expand(url, docs)


def docs_default(url: str) -> bytes | FetchFailure:
    """What an offline member URL answers: the v2 manifest for one, a failure for the others."""
    return MANIFEST_2 if url.endswith("/2") else FetchFailure("offline")


@fuzz_settings(150)
@given(data=st.data())
@example(data=None)
def test_manifests_and_collections(data: st.DataObject | None) -> None:
    """Mutated manifests (2.x, 3.0) and collections: entries or own errors; names stay safe."""
    if data is None:  # regression: 100,000 levels of nesting
        body = b"[" * 100_000
    else:
        body = data.draw(st.one_of(mutated(MANIFEST_2), mutated(MANIFEST_3), mutated(COLLECTION),
                                   st.binary(max_size=512)))
    try:
        entries = expand_all(MANIFEST_URL, Documents({MANIFEST_URL: body}))
    except OWN_ERRORS:
        return
    for e in entries:
        assert_safe_name(iiif_manifest.default_name(e))
        if e.ok:  # a canvas size is informative only (M15: 0 is warned about, never allocated)
            assert e.width is None or (isinstance(e.width, int) and e.width >= 0)
            assert e.height is None or (isinstance(e.height, int) and e.height >= 0)
            assert e.url and e.url.startswith("http")


def test_manifest_with_a_million_canvases_is_bounded() -> None:
    """A manifest declaring 10^6 canvases: at most max_items entries plus one saying where it stopped."""
    canvas = b'{"width":1,"height":1}'  # 24 bytes: 10^6 of them fit the manifest size cap
    body = MANIFEST_2.split(b'"sequences"')[0] + b'"sequences":[{"canvases":[' + b",".join([canvas] * 1_000_000) + b"]}]}"
    entries = iiif_manifest.expand(MANIFEST_URL, Documents({MANIFEST_URL: body}), max_items=100)
    assert len(entries) == 101 and entries[-1].error and not entries[-1].ok
    assert all(e.manifest == MANIFEST_URL for e in entries)


def test_self_referencing_collection_terminates() -> None:
    """A collection listing itself (and a member that lists it back) ends, marking the loop."""
    entries = expand_all(MANIFEST_URL, Documents({MANIFEST_URL: COLLECTION}))
    assert any(e.error and "loop" in e.error for e in entries)


# ------------------------------------------------------------------ bulk lists, pages, tiles.yaml, krpano

LIST_LINES = ["https://a.example/info.json", "https://b.example/x.dzi Some title", "# comment", "",
              "file:///etc/passwd", "../../x.dzi", "ftp://x/y", "javascript:alert(1)", "C:\\x.dzi title",
              "\x00", "\ufeff", "http://", "https://[::1", "http://x:99999/", "  \t  "]


@fuzz_settings(150)
@given(body=st.one_of(st.binary(max_size=1024),
                      st.lists(st.sampled_from(LIST_LINES) | st.text(max_size=40), max_size=12).map(
                          lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")),
                      st.sampled_from(HOSTILE_CHUNKS)),
       source=st.sampled_from(["https://lists.example/bulk.txt", "bulk.txt"]))
@example(body=b"[" * 5000, source="bulk.txt")  # Path.exists: OSError, file name too long
@example(body=b"a\x00b c", source="bulk.txt")
@example(body=b"~nosuchuser0/x.dzi", source="bulk.txt")  # Path.expanduser: RuntimeError
def test_bulk_list_parser(body: bytes, source: str) -> None:
    """Bulk list bytes: entries (bad lines carry an error) or InputError, nothing else."""
    try:
        lines = bulk_list.parse_bulk_bytes(body, source)
    except OWN_ERRORS:
        return
    for line in lines:
        assert line.error or line.url


PAGE = (b"<!DOCTYPE html><html><head><title>T</title><base href='/b/'></head><body>"
        b"<iframe src='https://v.example/viewer?manifest=https://m.example/manifest.json'></iframe>"
        b"<div data-iiif='https://i.example/iiif/2/x/info.json' data-config='{\"url\":\"/a.dzi\"}'></div>"
        b"<script>var z = 'https://z.example/ImageProperties.xml'; load(\"/t/{z}/{x}_{y}.jpg\")</script>"
        b"<embed src='tour.xml'></body></html>")


@fuzz_settings(150)
@given(body=st.one_of(mutated(PAGE), st.binary(max_size=2048), st.sampled_from(HOSTILE_CHUNKS)))
@example(body=b"<html>" + b"<div>" * 100_000)
@example(body=b"<html><base href='http://[::1'>")
def test_page_scanner(body: bytes) -> None:
    """HTML pages: findings (URLs absolute) or own errors only."""
    try:
        found = pagescan.scan_page(body, "https://museum.example/objects/1")
    except OWN_ERRORS:
        return
    for ref in found.all():
        assert isinstance(ref.url, str)


TILES_YAML = b"""url_template: "http://x.example/t/{{z}}/{{x}}_{{y}}.jpg"
variables:
  - {name: x, from: 0, to: 3, step: 1}
  - {name: y, from: 0, to: 2}
  - {name: z, value: 5}
x_template: "x * 256"
y_template: "y * 256"
title: a title
width: 1000
height: 700
headers: {Referer: "http://x.example/"}
"""


@fuzz_settings(150)
@given(body=st.one_of(mutated(TILES_YAML), st.binary(max_size=512), st.sampled_from(HOSTILE_CHUNKS)))
@example(body=b"[" * 100_000)
@example(body=b"a: &a [*a]")
@example(body=b"&a [" + b"*a," * 9 + b"]")
def test_tiles_yaml_parser(body: bytes) -> None:
    """custom's tiles.yaml: a description or own errors (hinted and not)."""
    for hinted in (True, False):
        try:
            read_tiles_yaml("http://x.example/tiles.yaml", body, hinted)
        except OWN_ERRORS:
            pass


@fuzz_settings(200)
@given(text=st.one_of(st.text(max_size=80),
                      st.lists(st.sampled_from(["x", "y", "1", "0", "-", "+", "*", "/", "%", "^", "(", ")",
                                                ",", "\"a\"", "min", "max", "pow", "<<", ">>", "==", "&&",
                                                "1e400", "9999999999999999999999", "!", "?", ":", " "]),
                               max_size=30).map("".join)))
@example(text="(" * 10_000)
@example(text="1 << 99999999")
@example(text="9" * 5000)
@example(text="pow(10, 400)")
def test_expression_parser(text: str) -> None:
    """dezoomers/expr.py: a value or ExprError for any text, with x and y bound."""
    try:
        expr.evaluate(text, {"x": 3, "y": 2})
    except (expr.ExprError, *OWN_ERRORS):
        pass
    try:
        expr.parse_template(text).render({"x": 3, "y": 2})
    except (expr.ExprError, *OWN_ERRORS):
        pass


@fuzz_settings(200)
@given(text=st.text(max_size=60) | st.sampled_from(["%v/%h_%v", "%0000000000000000009v", "%l%s%u", "%$x%",
                                                    "%CURRENTXML%/%s/l%l/%0v/%0h.jpg", "%%%"]))
def test_krpano_url_templates(text: str) -> None:
    """krpano URL templates: expanded or TemplateError."""
    try:
        krpano_template.parse_template(text)
        krpano_template.expand(krpano_template.substitute_xml_paths(text, "http://x.example/a/tour.xml"),
                               1, 2, "f", 3)
    except (krpano_template.TemplateError, *OWN_ERRORS):
        pass


# ------------------------------------------------------------------ input normalisation

URL_PARTS = ["https://", "http://", "file://", "x.example", "/", "?", "&", "=", "#", "manifest=", "iiif-content=",
             "url=", "info.json", ".dzi", "%2F", "%", "%zz", "..", "[::1]", ":99999", "@", "\x00", " ",
             "aHR0cHM6Ly94LmV4YW1wbGUvbS5qc29u", "eyJ0YXJnZXQiOnsiaWQiOjF9fQ"]


@fuzz_settings(200)
@given(url=st.one_of(st.text(max_size=80), st.lists(st.sampled_from(URL_PARTS), max_size=14).map("".join)))
@example(url="https://x.example/viewer?manifest=" + "https://x.example/viewer?manifest=" * 50)
@example(url="http://[::1")
def test_normalize(url: str) -> None:
    """normalize.starts / unwrap on any text: start points or own errors."""
    try:
        normalize.unwrap(url)
        normalize.starts(url)
    except OWN_ERRORS:
        pass


# ------------------------------------------------------------------ bounded JSON

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                           max_leaves=30)


@fuzz_settings(200)
@given(value=JSON_VALUES, indent=st.sampled_from([None, 1]))
def test_json_depth_from_text_equals_depth_of_the_value(value: Any, indent: int | None) -> None:
    """safejson.text_depth (regex passes over the text) agrees with the depth of the decoded value."""
    text = json.dumps(value, indent=indent)
    assert safejson.text_depth(text) == safejson.depth(value)
    assert safejson.loads(text) == value


@pytest.mark.parametrize("depth", [64, 65, 1000, 100_000])
def test_json_nesting_limit(depth: int) -> None:
    """64 levels are read; deeper documents are a ValueError, never a RecursionError."""
    text = "[" * depth + "]" * depth
    if depth <= safejson.MAX_JSON_DEPTH:
        assert safejson.loads(text) is not None
    else:
        with pytest.raises(ValueError, match="nested too deeply"):
            safejson.loads(text)


# ------------------------------------------------------------------ names from metadata (field notes S1, O6)

DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
TITLES = ["../../x", "..", ".", "/etc/x", "C:\\x", "\\\\server\\share", "CON", "con.jpg", "NUL", "COM1", "LPT9.x",
          "a\x00b", "x. . .", "x   ", "-rf", "~", "é" * 300, "\u202ex", "a/../b", "..\\..\\x"]


def assert_safe_name(name: str) -> None:
    """A single, relative, portable file name component that stays in its folder."""
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name and ":" not in name
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert not any(ord(c) < 32 for c in name)
    assert name.split(".", 1)[0].rstrip(" ").upper() not in DEVICES, name
    assert name == name.rstrip(". ")


@fuzz_settings(300)
@given(title=st.one_of(st.text(max_size=300), st.sampled_from(TITLES),
                       st.lists(st.sampled_from(TITLES), max_size=4).map("".join)))
def test_names_from_metadata_stay_in_the_folder(title: str) -> None:
    """title_stem / clean_component / render_name: one safe component for any title."""
    component = title.replace("/", "_").replace("\\", "_")  # clean_component gets one component
    for name in (title_stem(title) or "dezoomified", clean_component(component) or "dezoomified",
                 render_name("{title}", {"title": title}), render_name("{title}_{index:04}", {"title": title, "index": 3})):
        assert_safe_name(name)

