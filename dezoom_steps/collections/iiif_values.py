"""Values inside IIIF Presentation documents: text (labels, metadata) and image services.

Text comes in three shapes. Presentation 2.1 §4.3 "Language of Property Values": a plain
string, an object `{"@value": ..., "@language": ...}`, or a list of either. Presentation 3.0
§4.4: a language map `{"en": ["..."], "none": ["..."]}`, where `none` is the key of values
"not known or [without] a language". Both are flattened to one line: the values of one
language (`none` first, then `en`, then `en-*`, then the first language given), joined with
"; ". HTML in values (2.1 §4.4, 3.0 §4.5: "the first character in the string MUST be a '<'
character and the last character MUST be '>'") is reduced to its text.

Image services follow dezoomify-rs (spec 14.5): the first `ImageService3`, else `ImageService2`,
else any `ImageService*` type; then, for the 2.x services that carry no type at all, one whose
`@context` or `profile` names the Image API; last, a bare service (an id and nothing else).
Services of other kinds (authentication, search, physical dimensions) are never taken.
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterator

from dezoom_steps.urls import resolve_relative

INFO_JSON = "/info.json"
_LANGUAGE_ORDER = ("none", "en")
_TAG = re.compile(r"<[^>]*>")
_IMAGE_API_MARKS = ("iiif.io/api/image", "image-api", "library.stanford.edu/iiif")
_LEVEL = re.compile(r"level[012]")


def strings(value: Any) -> list[str]:
    """The non-empty strings of a value that is a string or a list (other items ignored)."""
    items = value if isinstance(value, list) else [value]
    return [v.strip() for v in items if isinstance(v, str) and v.strip()]


def listed(obj: Any, key: str) -> list[Any]:
    """`obj[key]` when `obj` is an object and that value a list, else []."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def link(value: Any, base: str) -> str | None:
    """A link (a string, or an object with `id`/`@id`) resolved against `base`, fragment dropped."""
    if isinstance(value, dict):
        value = next(iter(strings(value.get("id")) + strings(value.get("@id"))), None)
    if not isinstance(value, str) or not value.strip():
        return None
    return resolve_relative(base, value.strip()).split("#", 1)[0]


def short_type(value: str) -> str:
    """`sc:Manifest`, `Manifest` and `http://iiif.io/api/presentation/2#Manifest` -> `Manifest`."""
    return re.split(r"[#:/]", value.strip())[-1]


def types(obj: dict[str, Any]) -> list[str]:
    """The short names of an object's `type` and `@type` (strings or lists)."""
    return [short_type(t) for t in strings(obj.get("type")) + strings(obj.get("@type"))]


def _plain(value: Any) -> str:
    """One value as a single line of plain text (HTML reduced to its text)."""
    text = value if isinstance(value, str) else str(value)
    stripped = text.strip()
    if stripped.startswith("<") and stripped.endswith(">"):
        text = _TAG.sub(" ", stripped)
    return " ".join(html.unescape(text).split())


def _groups(value: Any, into: dict[str, list[str]]) -> dict[str, list[str]]:
    """Collect the values of `value` by language (`none` when none is given), in document order."""
    if isinstance(value, bool) or value is None:
        return into
    if isinstance(value, (str, int, float)):
        text = _plain(value)
        if text:
            into.setdefault("none", []).append(text)
    elif isinstance(value, list):
        for item in value:
            _groups(item, into)
    elif isinstance(value, dict):
        if "@value" in value:  # 2.x {"@value", "@language"}
            text = _plain(value["@value"]) if value["@value"] is not None else ""
            language = value.get("@language")
            if text:
                into.setdefault(language if isinstance(language, str) and language else "none", []).append(text)
        else:  # 3.0 language map
            for language, values in value.items():
                for item in values if isinstance(values, list) else [values]:
                    if isinstance(item, (str, int, float)) and not isinstance(item, bool) and _plain(item):
                        into.setdefault(str(language) or "none", []).append(_plain(item))
    return into


def text(value: Any) -> str | None:
    """A label or metadata value as one line of text, or None when it holds no text."""
    groups = _groups(value, {})
    if not groups:
        return None
    choice = next((k for k in _LANGUAGE_ORDER if k in groups), None)
    if choice is None:
        choice = next((k for k in groups if k.lower().startswith("en-")), next(iter(groups)))
    return "; ".join(groups[choice])


def metadata_pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """A `metadata` list as (label, value) text pairs; entries with neither are dropped."""
    pairs = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict):
            label, val = text(item.get("label")) or "", text(item.get("value")) or ""
            if label or val:
                pairs.append((label, val))
    return tuple(pairs)


def _service_rank(service: Any) -> tuple[int, str] | None:
    """(rank, id) of a service that may be an Image API service (lower rank = better), else None."""
    if isinstance(service, str):
        return (4, service.strip()) if service.strip() else None
    if not isinstance(service, dict):
        return None
    sid = next(iter(strings(service.get("id")) + strings(service.get("@id"))), None)
    if sid is None:
        return None
    kinds = types(service)
    if "ImageService3" in kinds:
        return 0, sid
    if "ImageService2" in kinds:
        return 1, sid
    if any("ImageService" in k or k in ("Image", "ImageProfile") for k in kinds):
        return 2, sid
    marks = strings(service.get("@context")) + strings(service.get("profile"))
    image_api = any(m in s for s in marks for m in _IMAGE_API_MARKS) or any(_LEVEL.fullmatch(s) for s in marks)
    if not kinds and image_api:
        return 3, sid
    if not kinds and not marks:
        return 4, sid
    return None


def image_service(service: Any) -> str | None:
    """The id of the best Image API service among `service` (an object, a string or a list)."""
    ranked = [r for r in map(_service_rank, service if isinstance(service, list) else [service]) if r]
    return min(ranked, key=lambda r: r[0])[1] if ranked else None


def info_url(base: str, service_id: str) -> str:
    """The info.json URL of an image service: its id resolved against `base`, plus `/info.json`.

    An id that already ends in `/info.json` is kept; iipsrv's `...fcgi?IIIF=x.tif` becomes
    `...fcgi?IIIF=x.tif/info.json`, as the server expects.
    """
    url = resolve_relative(base, service_id.strip()).split("#", 1)[0]
    return url if url.endswith(INFO_JSON) else url.rstrip("/") + INFO_JSON


def content_resources(resource: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """The content resources behind an annotation's `resource` (2.x) or `body` (3.0), in order.

    Choices give their default first (2.1 §6.3 `default` + `item`; 3.0 `Choice` + `items`);
    a SpecificResource gives what it selects from (2.1 `full`, 3.0 `source`). A bare string is
    a resource with that id.
    """
    if depth > 4:
        return
    if isinstance(resource, str):
        if resource.strip() and resource.strip() != "rdf:nil":  # 2.1 §6.3: "rdf:nil" = show nothing
            yield {"id": resource.strip()}
    elif isinstance(resource, list):
        for item in resource:
            yield from content_resources(item, depth + 1)
    elif isinstance(resource, dict):
        kinds = types(resource)
        if "Choice" in kinds:
            for key in ("default", "item", "items"):
                yield from content_resources(resource.get(key), depth + 1)
        elif "SpecificResource" in kinds:
            yield from content_resources(resource.get("full", resource.get("source")), depth + 1)
        else:
            yield resource
