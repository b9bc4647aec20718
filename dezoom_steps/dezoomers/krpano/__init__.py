"""krpano: an XML file (`<krpano>` root) describing tiled panoramas and flat images.

Every face of a cube and every scene is a separate image of the same input: its levels share
a `Level.group` ("front", "scene_Color cylinder", ...), images are listed scene by scene and
cube faces in the order front, back, left, right, up, down, so `--image-index` picks one
(default: the first). Levels of an image are returned largest first.

Recognition: the root element must be `<krpano>` (krpano's XML reference: "The root element
of the xml file need to be the <krpano> element"); other XML documents (a DZI, an
ImageProperties.xml) are refused as another format's. dezoomify-rs does not check the root.
A UTF-8 byte order mark is accepted. Bare `&` in action code (`&&`) and HTML entities
(`&nbsp;`) are escaped and the file parsed again, since krpano's own parser tolerates them.

Encrypted krpano files (`KENC....` payloads, raw or inside `<encrypted>`) are refused: they
cannot be read without the viewer's key, and breaking that protection is out of scope.

Tile URLs: the shape's `url` template (see `template.py`) resolved against the XML's URL,
then expanded for each tile; columns and rows count from the image's `baseindex`.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, NoReturn
from urllib.parse import unquote, urlsplit

from lxml import etree

from dezoom_steps.dezoomers.base import Dezoomer, Documents
from dezoom_steps.dezoomers.krpano.document import FACES, ImageSpec, Reading, escape_bare_ampersands, read_document
from dezoom_steps.dezoomers.krpano.template import TemplateError, expand, has_side, parse_template, substitute_xml_paths
from dezoom_steps.errors import MalformedMetadata, WrongDezoomer
from dezoom_steps.model import Found, Level
from dezoom_steps.urls import resolve_relative
from dezoom_steps.xmldoc import XmlError, local_name, parse_xml, strip_bom

ENCRYPTED = "encrypted krpano files are not supported (they need the viewer's decryption key)"
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{2,5})(?=$|[?#])")


class Krpano(Dezoomer):
    """krpano panorama viewer XML: flat images, cubes and cylinders, multires or per-level tiles."""

    name = "krpano"
    summary = "krpano: XML with <image> levels or multires (flat, cube faces, scenes); %v/%h/%s/%l tile templates"
    url_hint = r"(?i)/(?:tiles|krpano|tour)\.xml(?=$|[?#])"
    examples = (
        "https://example.org/panoramas/tour.xml",
        "http://127.0.0.1:8101/krpano/demo/tiles.xml",
        "https://example.org/gigapixel/krpano.xml?v=2",
    )
    auto = True

    def resolve(self, url: str, docs: Documents, options: Mapping[str, Any]) -> Found:
        """Read the XML file and list the levels of every image (face, scene), largest first."""
        reading = read_document(self._root(url, docs.get(url)))
        levels = build_levels(url, reading)
        if not levels:
            raise MalformedMetadata(f"{url}: no tiled image levels in this krpano XML ({_why_empty(reading)})")
        return Found(levels=levels, title=reading.title or _file_stem(url))

    def tile_url(self, level: Level, col: int, row: int) -> str:
        """The level's template with column, row (from `baseindex`), side and level number."""
        p = level.params
        return expand(p["template"], p["base"] + col, p["base"] + row, p["side"], p["level"])

    def _root(self, url: str, data: bytes) -> etree._Element:
        """The `<krpano>` root element; WrongDezoomer for other documents, MalformedMetadata if broken."""
        text = strip_bom(data)
        if text.startswith(b"KENC"):
            raise MalformedMetadata(f"{url}: {ENCRYPTED}")
        if not text.startswith(b"<"):
            self._refuse(url, "not a krpano XML file (the content is not XML)")
        root = self._parse(url, text)
        tag = local_name(root).lower()
        if tag == "encrypted" or (tag == "krpano" and any(local_name(c).lower() == "encrypted" for c in root)):
            raise MalformedMetadata(f"{url}: {ENCRYPTED}")
        if tag != "krpano":
            raise WrongDezoomer(f"not a krpano XML file (root element is <{local_name(root)}>, expected <krpano>)")
        return root

    def _parse(self, url: str, text: bytes) -> etree._Element:
        """Parse, once more with bare `&` escaped if needed (krpano's own parser tolerates them)."""
        try:
            return parse_xml(text)
        except XmlError as exc:
            if b"<krpano" in text and "not well-formed" in str(exc):
                try:
                    return parse_xml(escape_bare_ampersands(text))
                except XmlError:
                    pass
            self._refuse(url, f"unable to parse the krpano XML: {exc}")

    def _refuse(self, url: str, why: str) -> NoReturn:
        """MalformedMetadata when the URL names a krpano file, else WrongDezoomer."""
        if self.hinted(url):
            raise MalformedMetadata(f"{url}: {why}")
        raise WrongDezoomer(why)


def build_levels(url: str, reading: Reading) -> list[Level]:
    """Every usable level, grouped by image (scene order, then face order), largest first."""
    groups: dict[tuple[int, int, str], list[Level]] = {}
    for index, image in enumerate(reading.images):
        for spec in image.levels:
            try:
                template = absolute_template(url, spec.template)
                sides = FACES if has_side(template) else (None,)
            except TemplateError as exc:
                reading.skipped.append(f"{_where(image)}: {exc}")
                continue
            for side in sides:
                face = side or (spec.shape if spec.shape in FACES else None)
                label = " ".join(p for p in (image.name, face or spec.shape) if p)
                rank = FACES.index(face) if face else -1
                level = Level(
                    width=spec.width, height=spec.height, tile_width=spec.tile, tile_height=spec.tile,
                    format=_extension(template), group=label,
                    name=f"{label} level {spec.number} ({spec.width} x {spec.height})",
                    params={"template": template, "base": image.base_index,
                            "side": image.cube_labels[side] if side else "", "level": spec.number},
                )
                groups.setdefault((index, rank, label), []).append(level)
    levels: list[Level] = []
    seen: dict[str, int] = {}
    for key in sorted(groups):
        label = key[2]
        seen[label] = seen.get(label, 0) + 1
        unique = label if seen[label] == 1 else f"{label} #{seen[label]}"  # two images, one name
        for lv in sorted(groups[key], key=lambda lv: (-lv.width * lv.height, -lv.width)):
            levels.append(lv if unique == label else Level(**{**lv.to_json(), "group": unique}))
    return levels


def absolute_template(xml_url: str, template: str) -> str:
    """The template resolved against the XML file's URL (spaces escaped); TemplateError if unusable."""
    template = substitute_xml_paths(template, xml_url)
    parse_template(template)  # refuse unknown placeholders before resolving
    return resolve_relative(xml_url, template).replace(" ", "%20")


def _extension(template: str) -> str:
    """The tile file extension named by the template (default jpg)."""
    m = _EXTENSION.search(template)
    return m.group(1).lower() if m else "jpg"


def _where(image: ImageSpec) -> str:
    """How an image is named in messages."""
    return f"image {image.name!r}" if image.name else "image"


def _why_empty(reading: Reading) -> str:
    """Why no level could be used: the first skipped shape, or what the file lacks."""
    if reading.skipped:
        return reading.skipped[0]
    why = "no <image> element" if not reading.images else "no <level> or multires shape in <image>"
    if reading.includes:
        names = ", ".join(reading.includes[:3]) + (", ..." if len(reading.includes) > 3 else "")
        why += f"; the images may be in the files it includes ({names})"
    return why


def _file_stem(url: str) -> str | None:
    """The XML file's name without extension (`.../monomane.xml?v=2` -> `monomane`)."""
    last = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    if "." in last:
        last = last.rsplit(".", 1)[0]
    return last.strip() or None
