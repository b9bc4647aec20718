"""The explicit, ordered registry of dezoomers (auto mode tries them in this order).

Each dezoomer lives in the module of its own name (dezoom_steps/dezoomers/<name>.py) and is
imported when it is first asked for: `by_name` imports one module, `all_dezoomers` (auto mode)
all of them. `REGISTRY`, the tuple of classes, imports them all too when it is read.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from dezoom_steps.errors import InputError

if TYPE_CHECKING:
    from dezoom_steps.dezoomers.base import Dezoomer

# Order matters: after URL hints, auto mode tries candidates in this order.
# (name, class): the name is also the module's name (tests/test_registry.py checks it).
_ENTRIES: tuple[tuple[str, str], ...] = (
    ("custom", "Custom"),
    ("google_arts_and_culture", "GoogleArtsAndCulture"),
    ("zoomify", "Zoomify"),
    ("iiif", "IIIF"),
    ("deepzoom", "DeepZoom"),
    ("generic", "Generic"),
    ("pff", "PFF"),
    ("krpano", "Krpano"),
    ("iipimage", "IIPImage"),
    ("nypl", "NYPL"),
)
NAMES: tuple[str, ...] = tuple(name for name, _ in _ENTRIES)


def dezoomer_class(name: str) -> type[Dezoomer]:
    """The class of the registered dezoomer `name` (exact registry spelling), importing its module."""
    cls_name = dict(_ENTRIES)[name]
    return getattr(import_module(f"{__name__}.{name}"), cls_name)


def __getattr__(attr: str) -> Any:
    """`REGISTRY`: every dezoomer class in registry order (imports every dezoomer module)."""
    if attr == "REGISTRY":
        return tuple(dezoomer_class(name) for name in NAMES)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def by_name(name: str) -> Dezoomer:
    """The dezoomer called `name`, or InputError listing the valid names."""
    for registered in NAMES:
        if registered.lower() == name.lower():  # dezoomify-rs spells some names in capitals (IIPImage)
            return dezoomer_class(registered)()
    names = ", ".join(["auto", *NAMES])
    raise InputError(f"No such dezoomer: {name} (choose one of: {names})")


def all_dezoomers() -> list[Dezoomer]:
    """One instance of every registered dezoomer, in registry order."""
    return [dezoomer_class(name)() for name in NAMES]


def formats_table() -> str:
    """The README's table of supported formats, generated from the registry."""
    rows = ["| dezoomer (`-d`) | format | example input |", "|---|---|---|"]
    for name in NAMES:
        cls = dezoomer_class(name)
        example = cls.examples[0] if cls.examples else ""
        rows.append(f"| `{cls.name}` | {cls.summary} | `{example}` |")
    return "\n".join(rows)
