"""`.dzi` output: a DeepZoom image, `NAME.dzi` (XML) beside the tile folder `NAME_files/`.

DeepZoom layout (as the deepzoom dezoomer reads it): level L of a W x H image is
ceil(W / 2^(maxLevel-L)) x ceil(H / 2^(maxLevel-L)) with maxLevel = ceil(log2(max(W, H))), so
level 0 is one pixel and level maxLevel the full image; tile (col, row) of a level is
`NAME_files/{level}/{col}_{row}.{jpg|png}` and covers [col*T - O, (col+1)*T + O) clipped to the
level, where O (`Overlap`) is added on inner sides only. Tiles here are T = 254 with an
overlap of 1 (256-pixel inner tiles, the common DeepZoom default).
"""

from __future__ import annotations

from pathlib import Path

from dezoom_steps.canvas import Canvas
from dezoom_steps.encoders.tiletree import TileCodec, TreeLayout, write_tree

TILE = 254
OVERLAP = 1
NAMESPACE = "http://schemas.microsoft.com/deepzoom/2008"


def max_level(width: int, height: int) -> int:
    """ceil(log2(max(width, height))): the number of the full-resolution level."""
    return (max(width, height) - 1).bit_length()


def layout(width: int, height: int, files_dir: str, ext: str, tile: int = TILE, overlap: int = OVERLAP) -> TreeLayout:
    """The tile writer's layout: pyramid level k (k halvings) is DeepZoom level maxLevel - k."""
    top = max_level(width, height)

    def tile_paths(k: int, col: int, row: int) -> list[str]:
        return [f"{files_dir}/{top - k}/{col}_{row}.{ext}"]

    return TreeLayout(tile, overlap, top, tile_paths)


def descriptor(width: int, height: int, ext: str, tile: int = TILE, overlap: int = OVERLAP) -> bytes:
    """The `.dzi` XML document."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Image xmlns="{NAMESPACE}" Format="{ext}" Overlap="{overlap}" TileSize="{tile}">\n'
        f'  <Size Width="{width}" Height="{height}"/>\n'
        "</Image>\n"
    ).encode("utf-8")


def entries(name: str) -> list[str]:
    """What a DeepZoom output named `name` (`x.dzi`) consists of, the `.dzi` last (it is published last)."""
    return [files_dir_name(name), name]


def files_dir_name(name: str) -> str:
    """`x.dzi` -> `x_files` (the tile folder beside the descriptor)."""
    return f"{Path(name).stem}_files"


def write_dzi(canvas: Canvas, root: Path, name: str, codec: TileCodec, *, threads: int = 2) -> None:
    """Write `name` (the .dzi) and its `_files` folder for `canvas` into the empty folder `root`."""
    files_dir = files_dir_name(name)
    (root / files_dir).mkdir()
    write_tree(canvas, root, layout(canvas.width, canvas.height, files_dir, codec.ext), codec, threads=threads)
    (root / name).write_bytes(descriptor(canvas.width, canvas.height, codec.ext))
