"""Make krpano sites for end-to-end tests: an image cut with Pillow into tiles plus the XML.

Two layouts, as the krpano tools write them (PNG tiles, so a correct stitch is pixel-exact):

- `make_flat_multires(source, root)`: `demo.xml` with one flat image,
  `<flat url="demo.tiles/l%l/%0v/l%l_%0v_%0h.png" multires="256,WxH,...">` (levels smallest
  first, numbered from 1; rows and columns from 1 on two digits), a UTF-8 byte order mark.
- `make_tour(source, root)`: `tour.xml` with two scenes: "painting" (the flat multires
  image above) and "room", a cube whose six faces are 400x400 crops of the source (a 3x2
  grid), given by `<level>` elements with a `%s` template and rows/columns from 0.

Every level image the generator made is returned, so tests compare a download with the
generator's own pixels, never with something the code under test produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

TILE = 256
BOM = b"\xef\xbb\xbf"
# Where each cube face comes from in the 1200x800 source: (column, row) of a 400 px grid.
FACE_CELLS = {"left": (0, 0), "front": (1, 0), "right": (2, 0), "back": (0, 1), "up": (1, 1), "down": (2, 1)}
SIDE_LETTERS = {"left": "l", "front": "f", "right": "r", "back": "b", "up": "u", "down": "d"}


@dataclass
class KrpanoSite:
    """A generated site: the XML file's path (relative to the root) and every level image made."""

    xml: str
    levels: dict[str, list[Image.Image]] = field(default_factory=dict)  # image name -> largest first
    tiles: int = 0  # tile files written


def halvings(image: Image.Image, count: int) -> list[Image.Image]:
    """`image` and `count - 1` successive halvings (sizes rounded up), largest first."""
    out = [image]
    for _ in range(count - 1):
        w, h = out[-1].size
        out.append(out[-1].resize((-(-w // 2), -(-h // 2)), Image.Resampling.BOX))
    return out


def cut(image: Image.Image, folder: Path, name, tile: int = TILE) -> int:
    """Write the tiles of `image` under `folder`; `name(col, row)` gives each file's relative path."""
    count = 0
    for row in range(-(-image.height // tile)):
        for col in range(-(-image.width // tile)):
            box = (col * tile, row * tile, min((col + 1) * tile, image.width), min((row + 1) * tile, image.height))
            path = folder / name(col, row)
            path.parent.mkdir(parents=True, exist_ok=True)
            image.crop(box).save(path, "PNG")
            count += 1
    return count


def _flat_image(source: Image.Image, root: Path, site: KrpanoSite, levels: int) -> str:
    """Cut the flat multires pyramid of `source` under root/demo.tiles; its <image> element."""
    pyramid = halvings(source, levels)
    site.levels["painting"] = pyramid
    for number, level in enumerate(reversed(pyramid), start=1):  # l1 = the smallest
        site.tiles += cut(level, root / "demo.tiles",
                          lambda c, r, n=number: f"l{n}/{r + 1:02d}/l{n}_{r + 1:02d}_{c + 1:02d}.png")
    sizes = ",".join(f"{im.width}x{im.height}" for im in reversed(pyramid))
    return (f'<image type="FLAT" hfov="1.0">\n'
            f'    <flat url="demo.tiles/l%l/%0v/l%l_%0v_%0h.png" multires="{TILE},{sizes}" />\n'
            f'  </image>')


def make_flat_multires(source: Path, root: Path, levels: int = 3) -> KrpanoSite:
    """A flat multires krpano image of `source` under `root` (see the module docstring)."""
    site = KrpanoSite(xml="demo.xml")
    with Image.open(source) as im:
        image = _flat_image(im.convert("RGB"), root, site, levels)
    xml = f'<?xml version="1.0" encoding="UTF-8"?>\n<krpano version="1.20">\n  {image}\n</krpano>\n'
    (root / site.xml).write_bytes(BOM + xml.encode())
    return site


def make_tour(source: Path, root: Path) -> KrpanoSite:
    """A two-scene tour under `root`: the flat "painting" and the cube "room" (see the docstring)."""
    site = KrpanoSite(xml="tour.xml")
    with Image.open(source) as im:
        rgb = im.convert("RGB")
        flat = _flat_image(rgb, root, site, 3)
        faces = {}
        for face, (gx, gy) in FACE_CELLS.items():
            faces[face] = halvings(rgb.crop((gx * 400, gy * 400, gx * 400 + 400, gy * 400 + 400)), 2)
            site.levels[f"room {face}"] = faces[face]
    cube_levels = []
    for number, size in ((2, 400), (1, 200)):
        for face, pyramid in faces.items():
            level = pyramid[0] if size == 400 else pyramid[1]
            site.tiles += cut(level, root / "room.tiles" / SIDE_LETTERS[face] / f"l{number}",
                              lambda c, r: f"{r}_{c}.png")
        cube_levels.append(f'      <level tiledimagewidth="{size}" tiledimageheight="{size}">\n'
                           f'        <cube url="room.tiles/%s/l{number}/%v_%h.png" />\n'
                           f'      </level>')
    levels_xml = "\n".join(cube_levels)
    xml = (f'<krpano version="1.20">\n'
           f'  <source_details subject="Generated test tour" />\n'
           f'  <scene name="painting">\n  {flat}\n  </scene>\n'
           f'  <scene name="room">\n'
           f'    <image type="CUBE" tilesize="{TILE}" baseindex="0">\n{levels_xml}\n'
           f'      <mobile><cube url="room.tiles/mobile_%s.png" /></mobile>\n'
           f'    </image>\n  </scene>\n</krpano>\n')
    (root / site.xml).write_text(xml, encoding="utf-8")
    return site
