"""The explicit, ordered registry of dezoomers (auto mode tries them in this order)."""

from __future__ import annotations

from dezoom_steps.dezoomers.base import Dezoomer
from dezoom_steps.dezoomers.custom import Custom
from dezoom_steps.dezoomers.deepzoom import DeepZoom
from dezoom_steps.dezoomers.generic import Generic
from dezoom_steps.dezoomers.google_arts_and_culture import GoogleArtsAndCulture
from dezoom_steps.dezoomers.iiif import IIIF
from dezoom_steps.dezoomers.iipimage import IIPImage
from dezoom_steps.dezoomers.krpano import Krpano
from dezoom_steps.dezoomers.nypl import NYPL
from dezoom_steps.dezoomers.pff import PFF
from dezoom_steps.dezoomers.zoomify import Zoomify
from dezoom_steps.errors import InputError

# Order matters: after URL hints, auto mode tries candidates in this order.
REGISTRY: tuple[type[Dezoomer], ...] = (Custom, GoogleArtsAndCulture, Zoomify, IIIF, DeepZoom, Generic, PFF, Krpano, IIPImage, NYPL)


def by_name(name: str) -> Dezoomer:
    """The dezoomer called `name`, or InputError listing the valid names."""
    for cls in REGISTRY:
        if cls.name.lower() == name.lower():  # dezoomify-rs spells some names in capitals (IIPImage)
            return cls()
    names = ", ".join(["auto", *(c.name for c in REGISTRY)])
    raise InputError(f"No such dezoomer: {name} (choose one of: {names})")


def all_dezoomers() -> list[Dezoomer]:
    """One instance of every registered dezoomer, in registry order."""
    return [cls() for cls in REGISTRY]


def formats_table() -> str:
    """The README's table of supported formats, generated from the registry."""
    rows = ["| dezoomer (`-d`) | format | example input |", "|---|---|---|"]
    for cls in REGISTRY:
        example = cls.examples[0] if cls.examples else ""
        rows.append(f"| `{cls.name}` | {cls.summary} | `{example}` |")
    return "\n".join(rows)
