"""HTML pages: the zoomable-image metadata a viewer page references (pure, no network).

Users give the page they see rather than the metadata URL (field notes U1: "Content
sniffing before parsing; HTML goes to the discovery step; one clear message"). The page is
parsed with lxml's HTML parser (no network, no entities beyond HTML's own) and searched in
document order:

- attribute values that are URLs ending in `/info.json`, `.dzi`, `/ImageProperties.xml`
  or a IIIF manifest name, and viewer-app links wrapping one (`?manifest=...`);
- inline scripts (and attribute values, such as `data-config` JSON), with `PATTERNS`, one
  line per viewer configuration, plus every quoted string ending like metadata;
- tile URLs and IIIF image requests (thumbnails), which their dezoomers map to metadata;
- frames (`<iframe src>`), which may hold the viewer page itself.

Every reference is resolved against the page URL (or its `<base href>`); a remote page
never yields a `file:` URL (design: local files only for the top-level input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlsplit

from lxml import etree
from lxml import html as lxml_html

from dezoom_steps import normalize
from dezoom_steps.dezoomers.support import load_json
from dezoom_steps.urls import is_file_url, is_http, resolve_relative
from dezoom_steps.xmldoc import strip_bom

MAX_PAGE_BYTES = 4 * 1024 * 1024  # only the first 4 MB of a page are scanned
SNIFF_BYTES = 2048
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")

# What a URL names, from its path (query and fragment ignored): one line per format.
SUFFIXES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("iiif", re.compile(r"[^/]/info\.json$", re.IGNORECASE)),
    ("deepzoom", re.compile(r"[^/]\.dzi$", re.IGNORECASE)),
    ("zoomify", re.compile(r"[^/]/ImageProperties\.xml$", re.IGNORECASE)),
    ("manifest", re.compile(r"(?:^|[/._-])manifest(?:\.json)?$", re.IGNORECASE)),
    # Tiles and image requests (thumbnails): their dezoomers map them to their metadata.
    ("tile", re.compile(r"/TileGroup\d+/\d+-\d+-\d+\.(?:jpe?g|png)$", re.IGNORECASE)),  # Zoomify
    ("tile", re.compile(r"_files/\d+/\d+_\d+\.(?:jpe?g|png|webp)$", re.IGNORECASE)),  # Deep Zoom
    ("tile", re.compile(r"/(?:full|square|\d+,\d+,\d+,\d+|pct:[\d.,]+)/[^/]+/!?\d+(?:\.\d+)?"
                        r"/(?:default|native|colou?r|gr[ae]y|bitonal)\.\w+$", re.IGNORECASE)),  # IIIF request
)
# Quoted strings of scripts: kept when they end like metadata (`classify`) and hold a "/" or
# a "." (a bare "manifest" is a JSON key, not a file).
_QUOTED = re.compile(r"""(["'])([^"'\s<>{}()\\]*[/.][^"'\s<>{}()\\]*)\1""")
_FOLDER = "folder"  # a Zoomify folder: ImageProperties.xml is added


@dataclass(frozen=True)
class Pattern:
    """One viewer configuration found in scripts: the kind of URL it gives and where it is."""

    kind: str  # a format name, "tilesource" (any metadata), "manifest" or "folder" (Zoomify)
    where: str
    regex: re.Pattern[str]


def _p(kind: str, where: str, regex: str) -> Pattern:
    """A Pattern with its regex compiled (case-insensitive)."""
    return Pattern(kind, where, re.compile(regex, re.IGNORECASE))


_Q = r"""(?P<q>["'])(?P<u>[^"'\s]+?)(?P=q)"""  # a quoted URL
PATTERNS: tuple[Pattern, ...] = (
    # OpenSeadragon: tileSources: "x.dzi" | ["a/info.json", ...] (any metadata OSD reads)
    _p("tilesource", "OpenSeadragon tileSources", r"""tileSources["']?\s*[:=]\s*\[?\s*""" + _Q),
    # OpenSeadragon Zoomify tile source: {type: "zoomifytileservice", tilesUrl: "/tiles/x/"}
    _p(_FOLDER, "OpenSeadragon Zoomify tilesUrl", r"""tilesUrl["']?\s*:\s*""" + _Q),
    # Zoomify HTML5 viewer: Z.showImage("div", "path/to/folder", ...)
    _p(_FOLDER, "Zoomify Z.showImage", r"""Z\.showImage\s*\(\s*["'][^"']*["']\s*,\s*""" + _Q),
    # Zoomify Flash viewer: flashvars zoomifyImagePath=path/to/folder
    _p(_FOLDER, "Zoomify zoomifyImagePath", r"""zoomifyImagePath\s*[=:]\s*["']?(?P<u>[^"'&\s;,]+)"""),
    # krpano: embedpano({xml: "tour.xml", target: "pano"})
    _p("krpano", "krpano embedpano xml", r"""embedpano\s*\(\s*\{[^}]*?\bxml["']?\s*:\s*""" + _Q),
    # Mirador, Universal Viewer, TIFY... configurations: manifestId: "https://.../manifest"
    _p("manifest", "IIIF viewer manifest setting",
       r"""\b(?:manifestId|manifestUri|manifestUrl|manifest)["']?\s*[:=]\s*""" + _Q),
)
# data-* attributes naming what their value is.
_DATA_ATTRIBUTES: tuple[tuple[str, str], ...] = (("manifest", "manifest"), ("tilesource", "tilesource"),
                                                  ("dzi", "deepzoom"), ("zoomify", _FOLDER))
_FRAMES = ("iframe", "frame")


@dataclass(frozen=True)
class Reference:
    """A URL found in a page: absolute, what it should be, and where it was seen."""

    url: str
    kind: str  # "iiif", "deepzoom", "zoomify", "krpano", "tilesource", "tile", "manifest" or "frame"
    where: str


@dataclass
class PageFindings:
    """What a page references, each list in document order without duplicates."""

    title: str | None = None
    metadata: list[Reference] = field(default_factory=list)
    tiles: list[Reference] = field(default_factory=list)
    manifests: list[Reference] = field(default_factory=list)
    frames: list[Reference] = field(default_factory=list)

    def all(self) -> list[Reference]:
        """Metadata first, then tiles, manifests and frames."""
        return [*self.metadata, *self.tiles, *self.manifests, *self.frames]


def is_html(data: bytes) -> bool:
    """True when `data` starts like an HTML document (doctype, <html>, <head> or <body> early on)."""
    head = strip_bom(data[:SNIFF_BYTES]).lower()
    return head.startswith(b"<") and any(m in head for m in _HTML_MARKERS)


def presentation_kind(data: bytes) -> str | None:
    """"manifest" or "collection" for a IIIF Presentation document, else None."""
    try:
        doc = load_json(data)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    kind = str(doc.get("type", doc.get("@type", ""))).lower()
    context = str(doc.get("@context", ""))
    for name in ("collection", "manifest"):
        if kind in (name, f"sc:{name}"):
            return name
    if "iiif.io/api/presentation" in context:
        return "collection" if "manifests" in doc or "collections" in doc else "manifest"
    return None


def classify(url: str) -> str | None:
    """The kind of metadata a URL names by its path ("iiif", "deepzoom", "zoomify", "manifest"), or None."""
    path = urlsplit(url).path
    return next((kind for kind, rx in SUFFIXES if rx.search(path)), None)


def _unescape_script(text: str) -> str:
    """Undo the JSON escapes scripts put in URLs (`https:\\/\\/`, `\\u002F`, `\\u0026`)."""
    return (text.replace("\\/", "/").replace("\\u002F", "/").replace("\\u002f", "/")
            .replace("\\u0026", "&"))


class _Collector:
    """Accumulates references of one page, resolving and filtering them."""

    def __init__(self, page_url: str):
        self.page_url = page_url
        self.base = page_url
        self.seen: set[str] = set()
        self.found = PageFindings()

    def absolute(self, ref: str) -> str | None:
        """`ref` resolved against the page; None for other schemes or a file: URL from a remote page."""
        ref = ref.strip()
        if not ref or ref.startswith("#") or re.search(r"[\s<>{}$`]", ref):
            return None
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", ref) and not re.match(r"(?i)^(?:https?|file):", ref):
            return None  # javascript:, data:, mailto:...
        url = resolve_relative(self.base, ref)
        try:
            urlsplit(url).port  # a broken [IPv6] host or port raises here (found by fuzzing)
        except ValueError:
            return None
        if is_http(url) or (is_file_url(url) and is_file_url(self.page_url)):
            return url.split("#", 1)[0]
        return None

    def add(self, ref: str, kind: str | None, where: str) -> None:
        """Record a reference (`kind` None: decided from the URL; unknown URLs are dropped)."""
        url = self.absolute(ref)
        if url is None:
            return
        wrapped = normalize.unwrap(url) if kind in (None, "frame") else None
        if wrapped is not None:  # a viewer-app link: its inner URL is the reference
            inner_kind = classify(wrapped.url) or (wrapped.kind if wrapped.kind != "any" else None)
            if inner_kind is not None:
                return self.add(wrapped.url, inner_kind, f"{where}, {wrapped.where}")
        if kind == _FOLDER:
            kind, url = "zoomify", url if classify(url) == "zoomify" else url.rstrip("/") + "/ImageProperties.xml"
        kind = kind or classify(url)
        if kind is None or url in self.seen or url == self.page_url.split("#", 1)[0]:
            return
        self.seen.add(url)
        lists = {"tile": self.found.tiles, "manifest": self.found.manifests, "frame": self.found.frames}
        target = lists.get(kind, self.found.metadata)
        target.append(Reference(url, kind, where))

    def text(self, text: str, where: str) -> None:
        """Search script text (or an attribute value holding code or JSON) for references."""
        text = _unescape_script(text)
        for pattern in PATTERNS:
            for m in pattern.regex.finditer(text):
                if re.search(r"[/.]", m.group("u")):  # a path or a file name, not a variable's value
                    self.add(m.group("u"), pattern.kind, pattern.where)
        for m in _QUOTED.finditer(text):
            if classify(m.group(2)) is not None:
                self.add(m.group(2), None, f"a string in {where}")


def _elements(root: etree._Element) -> Iterator[etree._Element]:
    """Every element of the document, in document order (comments and PIs skipped)."""
    for el in root.iter():
        if isinstance(el.tag, str):
            yield el


def scan_page(data: bytes, page_url: str) -> PageFindings:
    """The metadata, manifests and frames an HTML page references, in document order."""
    out = _Collector(page_url)
    parser = lxml_html.HTMLParser(no_network=True, remove_comments=True, remove_pis=True, huge_tree=False)
    try:
        root = lxml_html.document_fromstring(data[:MAX_PAGE_BYTES], parser=parser)
    except (etree.ParserError, ValueError):
        return out.found
    title = root.findtext(".//title")
    out.found.title = (" ".join(title.split())[:100] or None) if title else None
    base = root.find(".//base[@href]")
    if base is not None:
        out.base = out.absolute(base.get("href", "")) or page_url
    for el in _elements(root):
        tag = el.tag.lower()
        if tag == "link" and "manifest" in (el.get("rel") or "").lower().split():
            continue  # a web app manifest (PWA), not a IIIF one
        for name, value in el.attrib.items():
            name, token = name.lower(), value.strip()
            where = f"the {name} of <{tag}>"
            if tag in _FRAMES and name == "src":
                out.add(token, "frame", where)
                continue
            if token and not re.search(r"\s", token) and token[0] not in "{[":  # a URL, maybe
                hinted = next((k for part, k in _DATA_ATTRIBUTES if name.startswith("data-") and part in name), None)
                out.add(token, hinted, where)
            out.text(value, where)  # code, JSON or flashvars (onclick, data-config...)
        if tag == "script" and el.text:
            out.text(el.text, "a script")
    return out.found
