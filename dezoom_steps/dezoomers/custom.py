"""Custom: a `tiles.yaml` file listing tiles by a URL template over integer variables (spec 4.1).

Schema (top-level mapping; unknown keys are ignored):
  url_template   required  URL with `{{ expression }}` placeholders, `{{ expr :0N }}` zero-pads
  variables      required  list of `{name, from, to, step (default 1)}` or `{name, value}` (a constant)
  x_template     "x"       expression giving the tile's x position on the canvas, in pixels
  y_template     "y"       the same for y
  headers                  HTTP headers for tile requests (mapping of strings)
  title                    names the output file
  width, height            the image size, used only when both are given

"A variable yields from, from+step, ... while the current value lies between from and to
inclusive, in either direction"; a step of the wrong sign yields only `from`; a step of 0 is
refused (it "would loop forever" in dezoomify-rs). Tiles are the Cartesian product of the
variables in the order listed, "the last variable varies fastest". Expressions are those of
`expr.py` (integer `/` truncates toward zero). Positions must be whole numbers from 0 to
2^32 - 1; a float with a whole value is accepted (dezoomify-rs refuses every float, so this
only accepts files it would reject, e.g. positions computed with floor()).

Differences from dezoomify-rs, on purpose:
- Every error is raised while resolving (one line naming the file and the problem), where
  dezoomify-rs logs it and produces an image without tiles. Variable names must match `^\\w+$`
  (its validator exists but is never called), and at most MAX_TILES tiles are listed.
- A relative tile URL is resolved against the tiles.yaml URL, so a local tiles.yaml can name
  tiles beside it.
- Without width and height, dezoomify-rs buffers every tile to learn the canvas size. Here
  the tile at the largest x position (and the one at the largest y) is fetched while
  resolving, and its decoded size ends the canvas; if it cannot be fetched, the spacing of
  the positions stands in for its size.
- Canvas cells: each tile owns the canvas from its position to the next tile position on each
  axis (or to the canvas edge), so overlapping tiles (DeepZoom-style overlap) are cropped once.
  This assumes the positions form a grid, as every x_template/y_template of a tile pyramid
  does. Tiles at the same position as an earlier one, or outside a declared width/height,
  are left out.

Auto mode tries this reader first for a URL ending in tiles.yaml or tiles.yml; any other
.yaml/.yml file is read when `-d custom` is given (or, in auto mode, when nothing else fits).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator, Mapping
from urllib.parse import urlsplit

from dezoom_steps import safejson
from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.expr import ExprError, Expression, Template, parse, parse_template, to_text
from dezoom_steps.dezoomers.tileimage import image_format, image_size
from dezoom_steps.errors import MalformedMetadata, NeedsData, WrongDezoomer
from dezoom_steps.model import Found, Level, TileRef
from dezoom_steps.urls import resolve_relative

log = logging.getLogger(__name__)

MAX_TILES = 1_000_000
MAX_YAML_BYTES = 1024 * 1024
MAX_POSITION = 2**32 - 1
_YAML_FILE = re.compile(r"\.ya?ml$", re.IGNORECASE)
_NAME = re.compile(r"^\w+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "bmp")


@dataclass(frozen=True)
class Variable:
    """One variable (or a constant: start == stop) of a tiles.yaml."""

    name: str
    start: int
    stop: int
    step: int = 1

    def values(self) -> range:
        """from, from+step, ... while between from and to inclusive; only `from` if the step points away."""
        if self.step > 0 and self.stop >= self.start:
            return range(self.start, self.stop + 1, self.step)
        if self.step < 0 and self.stop <= self.start:
            return range(self.start, self.stop - 1, self.step)
        return range(self.start, self.start + 1)


@dataclass(frozen=True)
class TileSet:
    """The tile-listing part of a tiles.yaml: templates and variables, plus where it was read."""

    source: str
    url_template: str
    x_template: str
    y_template: str
    variables: tuple[Variable, ...]

    def params(self) -> dict[str, Any]:
        """Plain-JSON form, kept in Level.params so that list_tiles can list the tiles again."""
        return {"source": self.source, "url_template": self.url_template, "x_template": self.x_template,
                "y_template": self.y_template,
                "variables": [[v.name, v.start, v.stop, v.step] for v in self.variables]}

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> "TileSet":
        """Inverse of `params`."""
        return cls(p["source"], p["url_template"], p["x_template"], p["y_template"],
                   tuple(Variable(*v) for v in p["variables"]))


@dataclass(frozen=True)
class Tile:
    """One listed tile: URL and canvas position."""

    url: str
    x: int
    y: int


def _fail(source: str, message: str) -> MalformedMetadata:
    return MalformedMetadata(f"{source}: {message}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _integer(value: Any, what: str, source: str) -> int:
    """A YAML integer (not a boolean) within 64 signed bits."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, f"{what} must be a whole number, got {value!r}")
    if not -(2**63) <= value < 2**63:
        raise _fail(source, f"Number too large: {what} = {value}")
    return value


def _variable(entry: Any, index: int, source: str) -> Variable:
    """One `variables` entry: a range {name, from, to, step} or a constant {name, value}."""
    if not isinstance(entry, dict):
        raise _fail(source, f"Invalid variable: entry {index + 1} of variables is not a mapping")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(source, f"invalid variable name: '{name}' (letters, digits and _ only)")
    if "from" in entry or "to" in entry:
        if "from" not in entry or "to" not in entry:
            raise _fail(source, f"Invalid variable: {name} needs both from and to")
        var = Variable(name, _integer(entry["from"], f"{name}.from", source),
                       _integer(entry["to"], f"{name}.to", source),
                       _integer(entry.get("step", 1), f"{name}.step", source))
        if var.step == 0:
            raise _fail(source, f"the range of values for {name} is incorrect: step must not be 0")
    elif "value" in entry:
        value = _integer(entry["value"], f"{name}.value", source)
        var = Variable(name, value, value, 1)
    else:
        raise _fail(source, f"Invalid variable: {name} has neither from/to nor value")
    count = len(var.values())
    if count > MAX_TILES:
        raise _fail(source, f"the range of values for {name} is too wide: {count} steps (at most {MAX_TILES:,})")
    return var


def _text(doc: dict[str, Any], key: str, default: str | None, source: str) -> str | None:
    value = doc.get(key, default)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise _fail(source, f"{key} must be a string, got {type(value).__name__}")


@dataclass(frozen=True)
class Description:
    """Everything a tiles.yaml says."""

    tiles: TileSet
    headers: dict[str, str]
    title: str | None
    width: int | None
    height: int | None


@lru_cache(maxsize=1)
def _no_alias_loader() -> type:
    """The YAML loader class (built on first use: PyYAML is imported only when a tiles.yaml is read)."""
    import yaml

    class _NoAliasLoader(yaml.SafeLoader):
        """yaml.SafeLoader refusing aliases: `*name` can build self-referencing or exponentially
        shared structures (the YAML "billion laughs"), which a tiles.yaml never needs (field notes S7)."""

        def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 (PyYAML hook)
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a tiles.yaml", mark)
            return super().compose_node(parent, index)

    return _NoAliasLoader


def read_tiles_yaml(source: str, data: bytes, hinted: bool) -> Description:
    """Parse and check a tiles.yaml; MalformedMetadata (or WrongDezoomer for a YAML file of another kind)."""
    if len(data) > MAX_YAML_BYTES:
        raise _fail(source, f"too large for a tiles.yaml ({len(data):,} bytes, limit {MAX_YAML_BYTES:,})")
    import yaml

    try:
        doc = yaml.load(data, Loader=_no_alias_loader())  # noqa: S506 (a SafeLoader without aliases)
    except yaml.YAMLError as exc:
        raise _fail(source, f"Invalid YAML configuration file: {_one_line(exc)}") from None
    except RecursionError:  # 100,000 nested `[` (found by fuzzing)
        raise _fail(source, "Invalid YAML configuration file: nested too deeply") from None
    except ValueError as exc:  # e.g. a date out of range in a timestamp scalar
        raise _fail(source, f"Invalid YAML configuration file: {_one_line(exc)}") from None
    if safejson.depth(doc) > safejson.MAX_JSON_DEPTH:
        raise _fail(source, f"Invalid YAML configuration file: nested deeper than {safejson.MAX_JSON_DEPTH} levels")
    if not isinstance(doc, dict) or "url_template" not in doc:
        why = "not a tiles.yaml file: it has no url_template"
        if hinted:
            raise _fail(source, why)
        raise WrongDezoomer(why)
    template = _text(doc, "url_template", None, source)
    if not template:
        raise _fail(source, "url_template is empty")
    raw_vars = doc.get("variables")
    if not isinstance(raw_vars, list):
        raise _fail(source, "variables must be a list of {name, from, to, step} or {name, value}")
    variables = tuple(_variable(v, i, source) for i, v in enumerate(raw_vars))
    names = [v.name for v in variables]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise _fail(source, f"Invalid variable: {dup} is defined twice")
    total = 1
    for v in variables:
        total *= len(v.values())
        if total > MAX_TILES:
            raise _fail(source, f"too many tiles: the variables give more than {MAX_TILES:,} combinations")
    tiles = TileSet(source, template, _text(doc, "x_template", "x", source) or "x",
                    _text(doc, "y_template", "y", source) or "y", variables)
    compile_tileset(tiles)  # expression errors surface now
    return Description(tiles, _headers(doc.get("headers"), source), _text(doc, "title", None, source),
                       _size(doc, "width", source), _size(doc, "height", source))


def _headers(value: Any, source: str) -> dict[str, str]:
    """The `headers` mapping, checked (names are HTTP tokens, values single-line)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(source, "headers must be a mapping of header names to values")
    out = {}
    for name, val in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise _fail(source, f"Invalid header name: {name!r}")
        text = "" if val is None else str(val)
        if isinstance(val, (dict, list)) or re.search(r"[\r\n\x00]", text):
            raise _fail(source, f"Invalid header value for {name}")
        out[name] = text.strip()
    return out


def _size(doc: dict[str, Any], key: str, source: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    n = _integer(value, key, source)
    if n <= 0:
        raise _fail(source, f"{key} must be positive, got {n}")
    return n


@dataclass(frozen=True)
class Compiled:
    """A TileSet with its templates parsed."""

    url: Template
    x: Expression
    y: Expression


def compile_tileset(ts: TileSet) -> Compiled:
    """Parse the three templates and check they only read defined variables."""
    defined = {v.name for v in ts.variables}
    try:
        url = parse_template(ts.url_template)
    except ExprError as exc:
        raise _fail(ts.source, f"url_template: {exc}") from None
    exprs = []
    for key, text in (("x_template", ts.x_template), ("y_template", ts.y_template)):
        try:
            exprs.append(parse(text))
        except ExprError as exc:
            raise _fail(ts.source, f"{key}: '{text}' is not a valid expression: {exc}") from None
    for key, names in (("url_template", url.names), ("x_template", exprs[0].names), ("y_template", exprs[1].names)):
        unknown = sorted(names - defined)
        if unknown:
            raise _fail(ts.source, f"{key} uses the undefined variable '{unknown[0]}' "
                                   f"(defined: {', '.join(sorted(defined)) or 'none'})")
    return Compiled(url, exprs[0], exprs[1])


def _position(value: Any, key: str, text: str, where: str, source: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POSITION:
        raise _fail(source, f"{key} '{text}' gives {to_text(value) or 'nothing'!s} for {where}: positions "
                            f"must be whole numbers from 0 to {MAX_POSITION}")
    return value


def list_tiles(ts: TileSet) -> list[Tile]:
    """Every tile of the product of the variables (last varies fastest); MalformedMetadata on an error."""
    c = compile_tileset(ts)
    names = [v.name for v in ts.variables]
    out: list[Tile] = []
    for combo in itertools.product(*(v.values() for v in ts.variables)):
        env = dict(zip(names, combo))
        key, text = "url_template", ts.url_template
        try:
            url = c.url.render(env)
            key, text = "x_template", ts.x_template
            x = c.x.evaluate(env)
            key, text = "y_template", ts.y_template
            y = c.y.evaluate(env)
        except ExprError as exc:
            where = ", ".join(f"{n}={v}" for n, v in env.items()) or "the only tile"
            raise _fail(ts.source, f"{key} '{text}' failed for {where}: {exc}") from None
        if not (type(x) is int and type(y) is int and 0 <= x <= MAX_POSITION and 0 <= y <= MAX_POSITION):
            where = ", ".join(f"{n}={v}" for n, v in env.items()) or "the only tile"
            x = _position(x, "x_template", ts.x_template, where, ts.source)
            y = _position(y, "y_template", ts.y_template, where, ts.source)
        if not _SCHEME.match(url):
            url = resolve_relative(ts.source, url)
        out.append(Tile(url, x, y))
    return out


def cells(tiles: list[Tile], width: int, height: int) -> Iterator[TileRef]:
    """TileRefs row by row: each tile owns the canvas up to the next tile position on each axis."""
    seen: set[tuple[int, int]] = set()
    kept = []
    for t in tiles:
        if t.x >= width or t.y >= height or (t.x, t.y) in seen:
            continue
        seen.add((t.x, t.y))
        kept.append(t)
    if len(kept) < len(tiles):
        log.info("%d tiles left out (same position as another, or outside the canvas)", len(tiles) - len(kept))
    xs, ys = sorted({t.x for t in kept}), sorted({t.y for t in kept})
    next_x, next_y = dict(zip(xs, xs[1:] + [width])), dict(zip(ys, ys[1:] + [height]))
    col, row = {x: i for i, x in enumerate(xs)}, {y: i for i, y in enumerate(ys)}
    for index, t in enumerate(sorted(kept, key=lambda t: (t.y, t.x))):
        yield TileRef(index=index, col=col[t.x], row=row[t.y], url=t.url, x=t.x, y=t.y,
                      w=next_x[t.x] - t.x, h=next_y[t.y] - t.y)


def _spacing(positions: set[int]) -> int | None:
    """The smallest gap between distinct positions, or None for a single one."""
    ordered = sorted(positions)
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    return min(gaps) if gaps else None


class Custom(Dezoomer):
    """Tiles described by hand in a tiles.yaml file: URL template, variables, positions."""

    name = "custom"
    summary = "Custom tiles.yaml: a URL template with {{expressions}} over integer variables"
    url_hint = r"(?i)(?:^|[/\\])tiles\.ya?ml(?=$|[?#])"
    examples = (
        "https://example.org/atlas/plate-7/tiles.yaml",
        "http://127.0.0.1:18101/custom/tiles.yml",
        "https://example.org/harvest/tiles.yaml?rev=3",
    )
    auto = True

    def __init__(self) -> None:
        self._memo: tuple[str, list[Tile]] | None = None  # the last TileSet listed (resolve runs once per round)

    def _tiles(self, ts: TileSet) -> list[Tile]:
        key = json.dumps(ts.params(), sort_keys=True)
        if self._memo is None or self._memo[0] != key:
            self._memo = (key, list_tiles(ts))
        return self._memo[1]

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read the tiles.yaml, list its tiles, find the canvas size; one level."""
        if not _YAML_FILE.search(urlsplit(url).path):
            raise WrongDezoomer("not a .yaml or .yml file (custom reads tiles.yaml files)")
        desc = read_tiles_yaml(url, docs.get(url), self.hinted(url))
        tiles = self._tiles(desc.tiles)
        if not tiles:
            raise _fail(url, "the variables give no tile")
        fmt = ""
        if desc.width is not None and desc.height is not None:
            width, height = desc.width, desc.height
        else:
            (width, fx), (height, fy) = _far_edge(url, docs, tiles, 0), _far_edge(url, docs, tiles, 1)
            fmt = fx or fy
        xs, ys = {t.x for t in tiles if t.x < width}, {t.y for t in tiles if t.y < height}
        if not xs or not ys:
            raise _fail(url, f"no tile lies inside the {width} x {height} image")
        try:
            ext = urlsplit(tiles[0].url).path.rsplit(".", 1)[-1].lower()
        except ValueError as exc:  # e.g. `https://[]host/` (found by fuzzing)
            raise _fail(url, f"the tile URL {tiles[0].url} is not a valid URL ({exc})") from None
        fmt = fmt or (ext if ext in _EXTENSIONS else "")
        level = Level(
            width=width, height=height,
            tile_width=min(_spacing(xs) or width, width), tile_height=min(_spacing(ys) or height, height),
            format="jpg" if fmt == "jpeg" else fmt,
            name=f"custom tiles ({width} x {height})", params=desc.tiles.params(),
        )
        return Found(levels=[level], title=desc.title, headers=desc.headers)

    def tiles(self, level: Level) -> Iterator[TileRef]:
        """The listed tiles with their canvas cells, row by row."""
        return cells(self._tiles(TileSet.from_params(level.params)), level.width, level.height)


def _far_edge(source: str, docs: Documents, tiles: list[Tile], axis: int) -> tuple[int, str]:
    """(canvas length along axis 0 = x / 1 = y, tile format): the farthest tile's position plus its size."""
    far = max(t.x if axis == 0 else t.y for t in tiles)
    edge = next(t for t in tiles if (t.x if axis == 0 else t.y) == far)
    if edge.url not in docs:
        raise NeedsData(edge.url)
    failure = docs.failure(edge.url)
    data = docs.get(edge.url) if failure is None else b""
    size = image_size(data) if data else None
    if size is not None:
        return far + size[axis], image_format(data)
    spacing = _spacing({t.x if axis == 0 else t.y for t in tiles})
    what, side = ("width", "right") if axis == 0 else ("height", "bottom")
    why = failure or "the answer is not an image"
    if spacing is None:
        raise _fail(source, f"cannot tell the image {what}: the tile at the {side} edge, {edge.url}, "
                            f"could not be read ({why}); give width and height in the file")
    log.warning("%s: the tile at the %s edge could not be read (%s); assuming it is %d px", source, side, why, spacing)
    return far + spacing, ""
