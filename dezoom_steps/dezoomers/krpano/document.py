"""Reading a krpano XML file: its images, their tiled levels and the document's title.

The model (spec 4.8): the root `<krpano>` and each `<scene>` (recursively) may hold `<image>`
elements. An image's levels come from
- `<level tiledimagewidth tiledimageheight>` children holding shapes (tile size: the level's
  or the image's `tilesize`);
- shapes directly under `<image>` with a `multires="T0,WxH[xT],W2[xH2[xT2]],..."` list
  (first item the default tile size, then one level per item, in the listed order);
- shapes directly under `<image>` without `multires`, when the image itself declares
  `tiledimagewidth`, `tiledimageheight` and `tilesize` (krpano 1.0 single-level tiling).
Shapes are `cube cylinder flat sphere` and the cube faces `front back left right up down`.
`<mobile>` and `<tablet>` hold small substitutes for phones; they are ignored.

Level numbers (`%l`) count from `baseindex` (default 1): in a `multires` list, in the listed
order (spec); for `<level>` elements, from the smallest level up. dezoomify-rs gives every
`<level>` the number `baseindex`; counting up matches the krpano tools' own folders (the
1.18 scenes file names its five levels `l1` (512 px) ... `l5` (7424 px) in the URLs, the
360cities one `0` (275 px) ... `3` (2199 px) with baseindex 0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

from dezoom_steps import safejson
from dezoom_steps.xmldoc import attribute, local_name

SHAPES = ("cube", "cylinder", "flat", "sphere")
FACES = ("front", "back", "left", "right", "up", "down")  # the order images are listed in
IGNORED = ("mobile", "tablet")


@dataclass(frozen=True)
class LevelSpec:
    """One tiled level of one shape: size, tile size, URL template, number for `%l`."""

    shape: str
    template: str
    width: int
    height: int
    tile: int
    number: int


@dataclass
class ImageSpec:
    """One krpano `<image>`: its scene path name, `baseindex`, `cubelabels` and levels."""

    name: str
    base_index: int
    cube_labels: dict[str, str]
    levels: list[LevelSpec] = field(default_factory=list)


@dataclass
class Reading:
    """Everything read from the document: images, title, and why shapes were skipped."""

    images: list[ImageSpec] = field(default_factory=list)
    title: str = ""
    skipped: list[str] = field(default_factory=list)
    includes: list[str] = field(default_factory=list)


def read_document(root: etree._Element) -> Reading:
    """Walk the `<krpano>` root: images of the root, of nested `<krpano>` and of every scene."""
    reading = Reading(title=document_title(root))
    _walk(root, attribute(root, "name") or "", reading)
    return reading


def _walk(node: etree._Element, name: str, reading: Reading) -> None:
    """Collect the images under `node` (a krpano root or a scene) whose path name is `name`."""
    for child in node:
        tag = local_name(child).lower()
        if tag == "image":
            reading.images.append(_image(child, name, reading.skipped))
        elif tag in ("scene", "krpano"):
            own = (attribute(child, "name") or "").strip()
            _walk(child, " ".join(p for p in (name, own) if p), reading)
        elif tag == "include" and attribute(child, "url"):
            reading.includes.append(attribute(child, "url") or "")


def _number(element: etree._Element, attr: str) -> int | None:
    """An attribute as a positive int, None when absent, ValueError when not a positive number."""
    raw = attribute(element, attr)
    if raw is None or not raw.strip():
        return None
    try:
        value = int(float(raw.strip()))
    except (ValueError, OverflowError):
        raise ValueError(f"{attr}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{attr}={raw!r} is not positive")
    return value


def _image(element: etree._Element, name: str, skipped: list[str]) -> ImageSpec:
    """The levels of one `<image>`; shapes that cannot be used are listed in `skipped`."""
    try:
        base = int((attribute(element, "baseindex") or "1").strip())
    except ValueError:
        base = 1
    labels = (attribute(element, "cubelabels") or "l|f|r|b|u|d").split("|")
    order = ("left", "front", "right", "back", "up", "down")  # krpano's cubelabels order
    cube_labels = {face: (labels[i].strip() if i < len(labels) else face[0]) for i, face in enumerate(order)}
    spec = ImageSpec(name=name, base_index=base, cube_labels=cube_labels)
    where = f"image {name!r}" if name else "image"
    try:
        image_tile = _number(element, "tilesize")
    except ValueError as exc:
        skipped.append(f"{where}: {exc}")
        return spec
    levels: list[tuple[int, int, int, str, str]] = []  # width, height, tile, shape, template
    for child in element:
        tag = local_name(child).lower()
        if tag in IGNORED:
            continue
        if tag == "level":
            levels.extend(_level_shapes(child, image_tile, f"{where} level", skipped))
        elif tag in SHAPES or tag in FACES:
            spec.levels.extend(_direct_shape(child, tag, element, image_tile, base, where, skipped))
    for rank, size in enumerate(sorted({(w, h) for w, h, *_ in levels}, key=lambda s: (s[0] * s[1], s))):
        for w, h, tile, shape, template in levels:
            if (w, h) == size:
                spec.levels.append(LevelSpec(shape, template, w, h, tile, base + rank))
    return spec


def _level_shapes(level: etree._Element, image_tile: int | None, where: str,
                  skipped: list[str]) -> list[tuple[int, int, int, str, str]]:
    """(width, height, tile, shape, template) of every shape of a `<level>` element."""
    try:
        width, height = _number(level, "tiledimagewidth"), _number(level, "tiledimageheight")
        tile = _number(level, "tilesize") or image_tile
    except ValueError as exc:
        skipped.append(f"{where}: {exc}")
        return []
    if width is None or height is None:
        skipped.append(f"{where}: no tiledimagewidth/tiledimageheight")
        return []
    if tile is None:
        skipped.append(f"{where} {width}x{height}: no tilesize on the level or its image")
        return []
    out = []
    for child in level:
        tag = local_name(child).lower()
        if (tag in SHAPES or tag in FACES) and (attribute(child, "url") or "").strip():
            out.append((width, height, tile, tag, (attribute(child, "url") or "").strip()))
    return out


def _direct_shape(shape: etree._Element, tag: str, image: etree._Element, image_tile: int | None,
                  base: int, where: str, skipped: list[str]) -> list[LevelSpec]:
    """Levels of a shape placed directly under `<image>`: its `multires` list, or the image's size."""
    template = (attribute(shape, "url") or "").strip()
    if not template:
        skipped.append(f"{where} <{tag}>: no url")
        return []
    multires = (attribute(shape, "multires") or "").strip()
    if multires:
        try:
            return [LevelSpec(tag, template, w, h, t, base + i) for i, (w, h, t) in enumerate(parse_multires(multires))]
        except ValueError as exc:
            skipped.append(f"{where} <{tag}>: bad multires {multires!r} ({exc})")
            return []
    try:
        width, height = _number(image, "tiledimagewidth"), _number(image, "tiledimageheight")
    except ValueError as exc:
        skipped.append(f"{where}: {exc}")
        return []
    if width and height and image_tile:
        return [LevelSpec(tag, template, width, height, image_tile, base)]
    skipped.append(f"{where} <{tag}>: missing multires attribute (a single image of unknown size, not tiles)")
    return []


def parse_multires(text: str) -> list[tuple[int, int, int]]:
    """`"T0,WxH[xT],..."` -> [(W, H, T), ...]; spec vector `"3,6x7,8x8,9x1x4"` ->
    [(6, 7, 3), (8, 8, 3), (9, 1, 4)]. ValueError when an item is not that shape."""
    items = [i.strip() for i in text.split(",") if i.strip()]
    if len(items) < 2:
        raise ValueError("expected a tile size followed by at least one level")
    default = _positive(items[0])
    levels = []
    for item in items[1:]:
        numbers = [_positive(n) for n in item.lower().split("x")]
        if len(numbers) > 3:
            raise ValueError(f"level {item!r} has more than width x height x tilesize")
        width = numbers[0]
        height = numbers[1] if len(numbers) > 1 else width
        tile = numbers[2] if len(numbers) > 2 else default
        levels.append((width, height, tile))
    return levels


def _positive(text: str) -> int:
    """A positive whole number, or ValueError."""
    value = int(text.strip())
    if value <= 0:
        raise ValueError(f"{text!r} is not positive")
    return value


def document_title(root: etree._Element) -> str:
    """The title: the first top-level `<source_details subject>` or `<data>` JSON `title`."""
    for child in root:
        tag = local_name(child).lower()
        if tag == "source_details":
            return (attribute(child, "subject") or "").strip()
        if tag == "data":
            try:
                value = safejson.loads((child.text or "").strip())
            except ValueError:
                continue
            if isinstance(value, dict) and isinstance(value.get("title"), str):
                return value["title"].strip()
    return ""


_BARE_AMPERSAND = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9A-Fa-f]+);)")


def escape_bare_ampersands(data: bytes) -> bytes:
    """`&` not starting an XML entity (`&&` in actions, `&nbsp;` from HTML) as `&amp;`."""
    return _BARE_AMPERSAND.sub(b"&amp;", data)
