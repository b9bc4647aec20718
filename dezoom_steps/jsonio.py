"""Atomic, schema-checked reading and writing of the small JSON files between steps."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from functools import lru_cache
from importlib import resources
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dezoom_steps.errors import InputError
from dezoom_steps.quickschema import conforms
from dezoom_steps.redact import redact_json

if TYPE_CHECKING:
    import jsonschema

KINDS = ("bulk", "resolve", "tiles", "fetch", "fill", "stitch", "output")


def schema_id(kind: str) -> str:
    """The `schema` stamp of a file of `kind`, e.g. `dezoom-steps/tiles/1`."""
    return f"dezoom-steps/{kind}/1"


@lru_cache(maxsize=None)
def contract(kind: str) -> dict[str, Any]:
    """The JSON Schema of step files of `kind` (from dezoom_steps/contracts/)."""
    text = resources.files("dezoom_steps.contracts").joinpath(f"{kind}.schema.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(kind: str) -> jsonschema.protocols.Validator:
    """A compiled validator for `kind` (building one costs more than most validations)."""
    import jsonschema  # only when the quick check is not sure (see _conforms)

    schema = contract(kind)
    return jsonschema.validators.validator_for(schema)(schema)


_TILE_INTS = ("index", "col", "row", "x", "y", "w", "h", "crop_x", "crop_y")
_TILE_INT_VALUES = itemgetter(*_TILE_INTS)  # one C call per tile instead of a generator
_INT_ONLY = {int}


def _bad_tile(tiles: list[Any]) -> int | None:
    """The index of the first tile whose keys or field types differ from the first tile's, else None."""
    keys = tiles[0].keys() if isinstance(tiles[0], dict) else None
    for i, t in enumerate(tiles):
        if not isinstance(t, dict) or t.keys() != keys:
            return i
        try:
            ints = _TILE_INT_VALUES(t)
        except KeyError:
            return i
        if _INT_ONLY != set(map(type, ints)) or min(ints) < 0 or t["w"] < 1 or t["h"] < 1 \
                or not isinstance(t.get("url"), str):
            return i
    return None


def _conforms(doc: dict[str, Any], kind: str) -> bool:
    """True when `doc` certainly passes `validate` (checked without importing jsonschema)."""
    tiles = doc.get("tiles") if kind == "tiles" else None
    if not isinstance(tiles, list) or len(tiles) < 2:
        return conforms(doc, contract(kind))
    return conforms({**doc, "tiles": tiles[:1]}, contract(kind)) and _bad_tile(tiles) is None


def _validate_with_jsonschema(doc: dict[str, Any], kind: str) -> None:
    """The full check of `validate`, raising jsonschema.ValidationError with jsonschema's message."""
    import jsonschema

    tiles = doc.get("tiles") if kind == "tiles" else None
    if not isinstance(tiles, list) or len(tiles) < 2:
        _validator(kind).validate(doc)
        return
    _validator(kind).validate({**doc, "tiles": tiles[:1]})
    i = _bad_tile(tiles)
    if i is not None:
        raise jsonschema.ValidationError(f"tiles[{i}] is not a valid tile: {tiles[i]!r:.200}")


def validate(doc: dict[str, Any], kind: str) -> None:
    """Check `doc` against the contract of `kind`; raises jsonschema.ValidationError.

    A tiles.json may list tens of thousands of tiles: the schema checks the first one and a
    plain loop checks the others' keys and types (the full check costs seconds at that size).
    The quick check (dezoom_steps.quickschema) passes valid files without importing
    jsonschema; anything it is not sure of goes to jsonschema, which gives the error.
    """
    if not _conforms(doc, kind):
        _validate_with_jsonschema(doc, kind)


def umask_mode(base: int = 0o666) -> int:
    """The permission bits a new file (`base` 0o666; 0o777 for a folder) gets under the current umask.

    mkstemp and mkdtemp use 0600 / 0700 whatever the umask; published files get these instead.
    """
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_ONE_LINE = json.JSONEncoder(ensure_ascii=False)  # the C encoder: it does not indent
_SCALARS = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float, bool, type(None)})


class _Irregular(Exception):
    """A document `step_json_text` leaves to json.dumps as a whole (keys that are not strings)."""


def _flat_object(value: Any) -> bool:
    return type(value) is dict and _SCALARS.issuperset(map(type, value.values()))


def _layout(value: Any, indent: str, out: list[str]) -> None:
    """Append `value` to `out` as json.dumps(indent=1) lays it out, flat-object lists one item a line."""
    if isinstance(value, dict) and value:
        inner, sep = indent + " ", "{\n"
        for key, item in value.items():
            if type(key) is not str:
                raise _Irregular
            out.append(f"{sep}{inner}{_ONE_LINE.encode(key)}: ")
            _layout(item, inner, out)
            sep = ",\n"
        out.append(f"\n{indent}}}")
    elif isinstance(value, (list, tuple)) and value and _NUMBERS.issuperset(map(type, value)):
        out.append(_ONE_LINE.encode(value))  # [1, 2, 3]: a stitch report lists thousands of tile indices
    elif isinstance(value, (list, tuple)) and value:
        inner, sep = indent + " ", "[\n"
        flat = all(_flat_object(item) for item in value)
        for item in value:
            if flat:
                out.append(f"{sep}{inner}{_ONE_LINE.encode(item)}")
            else:
                out.append(f"{sep}{inner}")
                _layout(item, inner, out)
            sep = ",\n"
        out.append(f"\n{indent}]")
    else:
        out.append(_ONE_LINE.encode(value))


def step_json_text(doc: Any) -> str:
    """`doc` laid out as json.dumps(indent=1, ensure_ascii=False) does, except that a list of flat
    objects (the tiles of tiles.json, a report's failed tiles) holds one object per line and a
    list of numbers is one line.

    json.dumps indents with its pure-Python encoder, ~35 us a tile; each line here comes from the
    C encoder. Any JSON reader reads both layouts the same.
    """
    out: list[str] = []
    try:
        _layout(doc, "", out)
    except _Irregular:
        return json.dumps(doc, indent=1, ensure_ascii=False)
    return "".join(out)


def write_step_json(path: str | os.PathLike[str], kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Stamp `body` with its schema id, validate it and write it atomically; returns the document."""
    doc = {"schema": schema_id(kind), **body}
    if kind != "bulk":  # field notes S6/S10: no secret in files written for users (bulk.json feeds the steps)
        doc = redact_json(doc)
    validate(doc, kind)
    atomic_write_bytes(path, (step_json_text(doc) + "\n").encode())
    return doc


def read_step_json(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read and validate a step file of `kind`; a missing or invalid file is an InputError."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(doc, dict) or not _conforms(doc, kind):
        import jsonschema

        try:
            _validate_with_jsonschema(doc, kind)
        except jsonschema.ValidationError as exc:
            raise InputError(f"{path}: not a valid {schema_id(kind)} file: {exc.message}") from None
    return doc
