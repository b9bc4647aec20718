"""IIIF Image API 1.1, 2 and 3: an `info.json` describing tiles requested by region and size.

Levels are returned largest first (index 0 = full resolution, scale factor 1).

Where this differs from dezoomify-rs on purpose:
- Level sizes and edge-tile output sizes are rounded UP. The Image API 3.0 implementation
  notes ("3. Tile region parameter calculation") compute an edge tile's size as
  `ws = (width - xr + s - 1) / s  # +s-1 in numerator to round up`; libvips writes its
  static level0 pyramids that way, so floored sizes (`512,437`) are 404s where the file is
  `512,438`.
- The size parameter uses each version's canonical form, the only one a static pyramid has:
  Image API 2.1 §4.7 "the `w,` syntax for images that should be scaled maintaining the
  aspect ratio" (also used for 1.1); Image API 3.0 §4.7 "`max` if the maximum size is
  requested, otherwise the `w,h` syntax". Like libvips we always send explicit sizes.
- `@id` (v1.1/v2) and `id` (v3) are both read; an id on another scheme, host or port than
  the info.json (an internal host, `localhost`, `example.org`, iipsrv behind a proxy that
  drops the port) is ignored and the info.json location (its URL minus `/info.json`) is used.
- The format is jpg whenever it is offered (or nothing is said), else png.
- A query string on the info.json URL (`info.json?key=...`, iipsrv's `?IIIF=x.tif/info.json&key=...`)
  is kept on every tile URL (signed or tokenised servers); tiles are always on the info.json's
  origin, so the query never goes to another host.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.querystring import append_query, query_after
from dezoom_steps.dezoomers.support import ceil_div, load_json, name_from_url, whole_number
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.model import Found, Level
from dezoom_steps.urls import resolve_relative, same_origin

DEFAULT_TILE = 512
_INFO = "/info.json"
# An image request: {base}/{region}/{size}/{rotation}/{quality}.{format}, optionally with a query.
_REQUEST = re.compile(
    r"/(?:full|square|\d+,\d+,\d+,\d+|pct:[\d.]+,[\d.]+,[\d.]+,[\d.]+)"
    r"/\^?(?:full|max|pct:[\d.]+|!?\d*,\d*)"
    r"/!?\d+(?:\.\d+)?"
    r"/(?:default|native|color|colour|gray|grey|bitonal)\.(?:jpe?g|png|gif|webp|tiff?|jp2|pdf)"
    r"(?=$|[?#])",
    re.IGNORECASE,
)
# Compliance level references -> API version (the level number is the regex group).
_COMPLIANCE = (
    (re.compile(r"image-api/(?:1\.\d/)?compliance\.html#level([012])"), 1),
    (re.compile(r"iiif\.io/api/image/2/level([012])\.json"), 2),
    (re.compile(r"iiif\.io/api/image/3/level([012])\.json|^level([012])$"), 3),
)
# Quality ranks (dezoomify-rs order): the best-ranked wins, ties go to the later one.
_QUALITY_RANK = {"bitonal": 0, "gray": 1, "grey": 1, "color": 2, "colour": 2, "native": 3, "default": 4}
_FORMATS = ("jpg", "png", "webp", "gif", "tif")


def info_url_for(url: str) -> str:
    """The info.json URL of an image request URL (query dropped); other URLs unchanged."""
    matches = list(_REQUEST.finditer(url))
    return url[: matches[-1].start()] + _INFO if matches else url


def info_query(info_url: str) -> str:
    """The query items after the info.json's name, kept for the tiles ("" when there are none)."""
    i = info_url.rfind(_INFO)
    return query_after(info_url, i + len(_INFO)) if i >= 0 else ""


def location_base(info_url: str) -> str:
    """The image's base URI from where its info.json was found: the URL minus `/info.json`."""
    parts = urlsplit(info_url)
    if parts.path.endswith(_INFO):
        return urlunsplit((parts.scheme, parts.netloc, parts.path[: -len(_INFO)], "", ""))
    i = info_url.rfind(_INFO)  # iipsrv: ...iipsrv.fcgi?IIIF=image.tif/info.json
    if i >= 0:
        return info_url[:i] + info_url[i + len(_INFO):]
    return info_url.rstrip("/")


def choose_base(info_url: str, declared: Any) -> str:
    """The declared id (resolved against the info.json URL) if it is on the same origin, else the location."""
    fallback = location_base(info_url)
    if not isinstance(declared, str) or not declared.strip():
        return fallback
    resolved = resolve_relative(info_url, declared.strip()).rstrip("/")
    if resolved.endswith(_INFO):
        resolved = resolved[: -len(_INFO)]
    return resolved if same_origin(resolved, info_url) else fallback


class _Info:
    """The parts of an info.json that matter for downloading, normalised across versions."""

    def __init__(self, doc: dict[str, Any], source: str):
        self.doc, self.source = doc, source
        self.context = json.dumps(doc.get("@context", ""))
        profile = doc.get("profile")
        entries = profile if isinstance(profile, list) else [profile]
        self.refs = [p for p in entries if isinstance(p, str)]
        self.objects = [p for p in entries if isinstance(p, dict)]
        self.levels: list[tuple[int, int]] = []  # (version, compliance level) of each known ref
        for ref in self.refs:
            for pattern, version in _COMPLIANCE:
                m = pattern.search(ref.strip())
                if m:
                    self.levels.append((version, int(next(g for g in m.groups() if g is not None))))

    def looks_like_image_info(self) -> bool:
        """True when the JSON carries Image API markers (context, protocol, profile, tiles...)."""
        keys = ("protocol", "profile", "tiles", "tile_width", "scale_factors")
        types = {"ImageService2", "ImageService3", "iiif:Image"}
        return (any(k in self.doc for k in keys) or "iiif.io/api/image" in self.context
                or "image-api" in self.context or self.doc.get("type", self.doc.get("@type")) in types)

    def version(self) -> int:
        """1, 2 or 3: the Image API version, from the context, type, profile or field names."""
        if "iiif.io/api/image/3" in self.context or self.doc.get("type") == "ImageService3":
            return 3
        if "iiif.io/api/image/2" in self.context:
            return 2
        if "image-api/1" in self.context or "library.stanford.edu" in self.context:
            return 1
        if self.levels:
            return self.levels[0][0]
        if "tile_width" in self.doc or "scale_factors" in self.doc:
            return 1
        return 3 if "id" in self.doc and "@id" not in self.doc else 2

    def _strings(self, *keys: str) -> list[str]:
        """Every string listed under `keys`, top level first, then in profile objects."""
        out: list[str] = []
        for holder in (self.doc, *self.objects):
            for key in keys:
                values = holder.get(key)
                if isinstance(values, list):
                    out += [v.strip() for v in values if isinstance(v, str) and v.strip()]
        return out

    def quality(self) -> str:
        """Best quality on offer (default > native > color > gray > bitonal; ties: the last one)."""
        offered = self._strings("qualities", "extraQualities")
        offered += ["native" if v == 1 else "default" for v, _ in self.levels]
        if not offered:
            return "native" if self.version() == 1 else "default"
        best = offered[0]
        for q in offered:
            if _QUALITY_RANK.get(q.lower(), -1) >= _QUALITY_RANK.get(best.lower(), -1):
                best = q
        return best

    def format(self) -> str:
        """v3 preferredFormats first; then jpg if offered or nothing is said; then png, webp..."""
        for f in self._strings("preferredFormats"):
            if f.lower() in _FORMATS:
                return f.lower()
        offered = [f.lower() for f in self._strings("formats", "extraFormats")]
        offered += ["jpg" for _ in self.levels]  # every compliance level document lists jpg
        if not offered or "jpg" in offered or "jpeg" in offered:
            return "jpg"
        return next((f for f in _FORMATS if f in offered), "jpg")

    def limits(self) -> tuple[int | None, int | None, int | None]:
        """(maxWidth, maxHeight, maxArea): the smallest of each over the document and profiles."""
        found: dict[str, int] = {}
        for holder in (self.doc, *self.objects):
            for key in ("maxWidth", "maxHeight", "maxArea"):
                if holder.get(key) is not None:
                    n = whole_number(holder[key], key, self.source)
                    found[key] = min(n, found.get(key, n))
        width = found.get("maxWidth")
        return width, found.get("maxHeight", width), found.get("maxArea")


def _fit(tw: int, th: int, limits: tuple[int | None, int | None, int | None]) -> tuple[int, int]:
    """A tile size shrunk to respect maxWidth/maxHeight/maxArea."""
    max_w, max_h, max_area = limits
    if max_w:
        tw = min(tw, max_w)
    if max_h:
        th = min(th, max_h)
    if max_area and tw * th > max_area:
        side = max(1, int(max_area ** 0.5))
        tw, th = min(tw, side), min(th, side)
    return tw, th


class IIIF(Dezoomer):
    """IIIF Image API 1.1, 2 and 3 (info.json), from servers or static level0 pyramids."""

    name = "iiif"
    summary = "IIIF Image API 1.1/2/3: info.json; tiles requested as region/size/0/quality.format"
    url_hint = (r"/info\.json(?:$|[?#&])|/(?:full|square|\d+,\d+,\d+,\d+)/\^?(?:full|max|!?\d*,\d*)"
                r"/!?\d+(?:\.\d+)?/(?:default|native|color|gray|bitonal)\.\w+")
    examples = (
        "https://example.org/iiif/2/page-0007/info.json",
        "http://127.0.0.1:8101/small/iiif3_512/info.json",
        "http://127.0.0.1:8201/fcgi-bin/iipsrv.fcgi?IIIF=medium_pyr.tif/info.json",
        "https://example.org/iiif/2/page-0007/full/max/0/default.jpg",
        "https://example.org/iiif/2/page-0007/0,0,512,512/512,/0/default.jpg?token=abc",
    )
    auto = True

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read the info.json (an image request URL is mapped to it) and list its levels."""
        info_url = info_url_for(url)
        data = docs.get(info_url)
        try:
            doc = load_json(data)
        except ValueError as exc:
            raise WrongDezoomer(f"not a IIIF info.json: {exc}") from None
        if not isinstance(doc, dict):
            raise WrongDezoomer("not a IIIF info.json: the JSON is not an object")
        info = _Info(doc, info_url)
        at_info_url = _INFO in info_url and "width" in doc and "height" in doc
        if not info.looks_like_image_info() and not at_info_url:
            raise WrongDezoomer("JSON without IIIF Image API markers (@context, protocol, profile, tiles)")
        width = whole_number(doc.get("width"), "width", info_url)
        height = whole_number(doc.get("height"), "height", info_url)
        base = choose_base(info_url, doc.get("id") if "@id" not in doc else doc.get("@id"))
        common = {"base": base, "quality": info.quality(), "size": "w,h" if info.version() == 3 else "w,",
                  "full_width": width, "full_height": height, "query": info_query(info_url)}
        levels = build_levels(info, width, height, common)
        full_dpi = physical_dpi(doc)
        if full_dpi is not None:  # the resolution of each level scales with its width
            levels = [replace(lv, params={**lv.params, "dpi": round(full_dpi * lv.width / width, 3)})
                      for lv in levels]
        return Found(levels=levels, title=name_from_url(base))

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """`{base}/{x},{y},{w},{h}/{size}/0/{quality}.{format}[?query]` with the size rounded up."""
        p = level.params
        if p.get("region") == "full":
            region, out_w, out_h = "full", level.width, level.height
        else:
            s, full_w, full_h = p["scale"], p["full_width"], p["full_height"]
            step_w, step_h = level.tile_width * s, level.tile_height * s
            x, y = col * step_w, row * step_h
            w, h = min(step_w, full_w - x), min(step_h, full_h - y)
            region, out_w, out_h = f"{x},{y},{w},{h}", ceil_div(w, s), ceil_div(h, s)
        size = f"{out_w},{out_h}" if p["size"] == "w,h" else f"{out_w},"
        return append_query(f"{p['base']}/{region}/{size}/0/{p['quality']}.{level.format}", p.get("query", ""))


def _tile_specs(info: _Info) -> list[tuple[int, int, list[int]]]:
    """(tile width, tile height, scale factors) from `tiles` (v2/v3) or the v1.1 fields."""
    doc, src = info.doc, info.source
    specs = []
    if isinstance(doc.get("tiles"), list) and doc["tiles"]:
        for t in doc["tiles"]:
            if not isinstance(t, dict):
                raise MalformedMetadata(f"{src}: a `tiles` entry is not an object: {t!r}")
            tw = whole_number(t.get("width"), "tile width", src)
            th = tw if t.get("height") is None else whole_number(t["height"], "tile height", src)
            factors = t.get("scaleFactors") if isinstance(t.get("scaleFactors"), list) else [1]
            specs.append((tw, th, [whole_number(f, "scale factor", src) for f in factors] or [1]))
    elif "tile_width" in doc or "scale_factors" in doc:
        tw = whole_number(doc.get("tile_width", DEFAULT_TILE), "tile_width", src)
        th = whole_number(doc.get("tile_height", tw), "tile_height", src)
        factors = doc.get("scale_factors") if isinstance(doc.get("scale_factors"), list) else [1]
        specs.append((tw, th, [whole_number(f, "scale factor", src) for f in factors] or [1]))
    return specs


def _default_spec(width: int, height: int, tw: int, th: int) -> tuple[int, int, list[int]]:
    """Scale factors 1, 2, 4... down to the first level that fits in one tile."""
    factors = [1]
    while ceil_div(width, factors[-1]) > tw or ceil_div(height, factors[-1]) > th:
        factors.append(factors[-1] * 2)
    return tw, th, factors


def _sizes(info: _Info) -> list[tuple[int, int]]:
    """The whole-image renditions listed in `sizes`, within the size limits."""
    max_w, max_h, max_area = info.limits()
    out = []
    for s in info.doc.get("sizes") or []:
        if isinstance(s, dict):
            w = whole_number(s.get("width"), "sizes width", info.source)
            h = whole_number(s.get("height"), "sizes height", info.source)
            fits = (not max_w or w <= max_w) and (not max_h or h <= max_h)
            if fits and (not max_area or w * h <= max_area):
                out.append((w, h))
    return out


INCHES_PER_UNIT = {"in": 1.0, "cm": 1 / 2.54, "mm": 1 / 25.4}


def physical_dpi(doc: dict[str, Any]) -> float | None:
    """Pixels per inch of the full image from a Physical Dimensions service, or None.

    IIIF Physical Dimensions annex: "physicalScale: the number to multiply by the size in pixels
    to get the size in physicalUnits" ("in", "cm" or "mm").
    """
    services = doc.get("service")
    for service in services if isinstance(services, list) else [services]:
        if not isinstance(service, dict) or "physdim" not in str(service.get("profile", "")):
            continue
        scale, unit = service.get("physicalScale"), INCHES_PER_UNIT.get(str(service.get("physicalUnits")))
        if isinstance(scale, (int, float)) and not isinstance(scale, bool) and scale > 0 and unit:
            return 1 / (scale * unit)
    return None


def build_levels(info: _Info, width: int, height: int, common: dict[str, Any]) -> list[Level]:
    """Tiled levels (declared, else defaults) plus `sizes` renditions when no tiles are declared."""
    fmt, limits = info.format(), info.limits()
    specs = _tile_specs(info)
    sizes = [] if specs else _sizes(info)
    level0 = any(level == 0 for _, level in info.levels)
    if not specs and not (sizes and level0):  # a level0 server only has what it lists
        specs = [_default_spec(width, height, *_fit(DEFAULT_TILE, DEFAULT_TILE, limits))]
    seen: set[tuple[int, int]] = set()
    levels: list[Level] = []
    for tw, th, factors in specs:
        tw, th = _fit(tw, th, limits)
        for s in sorted(set(factors)):
            w, h = ceil_div(width, s), ceil_div(height, s)
            if (w, h) not in seen:
                seen.add((w, h))
                levels.append(Level(width=w, height=h, tile_width=tw, tile_height=th, format=fmt,
                                    name=f"scale 1/{s} ({w} x {h})", params={**common, "scale": s}))
    for w, h in sizes:
        if (w, h) not in seen:
            seen.add((w, h))
            levels.append(Level(width=w, height=h, tile_width=w, tile_height=h, format=fmt,
                                name=f"whole image at {w} x {h}", params={**common, "region": "full"}))
    levels.sort(key=lambda lv: lv.width * lv.height, reverse=True)
    return levels
