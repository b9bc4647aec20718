"""GDAL's side of the comparison: WMS driver descriptions of the rig's images.

GDAL 3.6 reads a DeepZoom pyramid with overlap 0 through the WMS driver's TMS mini-driver
(`${z}/${x}_${y}` URL template, `YOrigin` top, the data window in pixels of the full-size
level); an iipsrv image through the IIP mini-driver, whose connection string is simply
`IIP:<endpoint>?FIF=<file>` (../shared/rig/README.md §6). DZI with overlap > 0, static
Zoomify and IIIF cannot be expressed in GDAL 3.6.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

DZI_NS = "{http://schemas.microsoft.com/deepzoom/2008}"


@dataclass(frozen=True)
class Dzi:
    """What a .dzi file says: full size, tile size, overlap, tile format."""

    width: int
    height: int
    tile_size: int
    overlap: int
    fmt: str

    @property
    def top_level(self) -> int:
        """DeepZoom's full-size level: ceil(log2(max(width, height)))."""
        return math.ceil(math.log2(max(self.width, self.height)))


def read_dzi(path: Path) -> Dzi:
    """Parse a DeepZoom descriptor."""
    root = ET.parse(path).getroot()
    size = root.find(f"{DZI_NS}Size")
    if size is None:
        raise ValueError(f"{path}: no <Size> element")
    return Dzi(int(size.get("Width", "0")), int(size.get("Height", "0")), int(root.get("TileSize", "0")),
               int(root.get("Overlap", "0")), root.get("Format", "jpg"))


def tms_xml(dzi_url: str, dzi: Dzi) -> str:
    """A GDAL_WMS description reading the full-size level of a DeepZoom pyramid (overlap 0 only)."""
    if dzi.overlap != 0:
        raise ValueError("GDAL's TMS mini-driver cannot read DeepZoom tiles with overlap")
    files = dzi_url.rsplit(".", 1)[0] + "_files"
    template = f"{files}/${{z}}/${{x}}_${{y}}.{dzi.fmt}"
    return (
        "<GDAL_WMS>\n"
        f"  <Service name=\"TMS\"><ServerUrl>{template}</ServerUrl></Service>\n"
        "  <DataWindow>\n"
        "    <UpperLeftX>0</UpperLeftX><UpperLeftY>0</UpperLeftY>\n"
        f"    <LowerRightX>{dzi.width}</LowerRightX><LowerRightY>-{dzi.height}</LowerRightY>\n"
        f"    <SizeX>{dzi.width}</SizeX><SizeY>{dzi.height}</SizeY>\n"
        f"    <TileLevel>{dzi.top_level}</TileLevel><YOrigin>top</YOrigin>\n"
        "  </DataWindow>\n"
        f"  <BlockSizeX>{dzi.tile_size}</BlockSizeX><BlockSizeY>{dzi.tile_size}</BlockSizeY>\n"
        "  <BandsCount>3</BandsCount>\n"
        "</GDAL_WMS>\n")


def iip_connection(iipsrv_endpoint: str, fif: str) -> str:
    """GDAL's connection string for an image served by iipsrv (the IIP mini-driver)."""
    return f"IIP:{iipsrv_endpoint}?FIF={fif}"
