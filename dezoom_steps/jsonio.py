"""Atomic, schema-checked reading and writing of the small JSON files between steps."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from dezoom_steps.errors import InputError
from dezoom_steps.redact import redact_json

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
    schema = contract(kind)
    return jsonschema.validators.validator_for(schema)(schema)


_TILE_INTS = ("index", "col", "row", "x", "y", "w", "h", "crop_x", "crop_y")


def validate(doc: dict[str, Any], kind: str) -> None:
    """Check `doc` against the contract of `kind`; raises jsonschema.ValidationError.

    A tiles.json may list tens of thousands of tiles: the schema checks the first one and a
    plain loop checks the others' keys and types (the full check costs seconds at that size).
    """
    tiles = doc.get("tiles") if kind == "tiles" else None
    if not isinstance(tiles, list) or len(tiles) < 2:
        _validator(kind).validate(doc)
        return
    _validator(kind).validate({**doc, "tiles": tiles[:1]})
    keys = set(tiles[0])
    for i, t in enumerate(tiles):
        if not isinstance(t, dict) or set(t) != keys or not isinstance(t.get("url"), str) or not all(
            type(t[k]) is int and t[k] >= 0 for k in _TILE_INTS
        ) or t["w"] < 1 or t["h"] < 1:
            raise jsonschema.ValidationError(f"tiles[{i}] is not a valid tile: {t!r:.200}")


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


def write_step_json(path: str | os.PathLike[str], kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Stamp `body` with its schema id, validate it and write it atomically; returns the document."""
    doc = {"schema": schema_id(kind), **body}
    if kind != "bulk":  # field notes S6/S10: no secret in files written for users (bulk.json feeds the steps)
        doc = redact_json(doc)
    validate(doc, kind)
    atomic_write_bytes(path, (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode())
    return doc


def read_step_json(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read and validate a step file of `kind`; a missing or invalid file is an InputError."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a JSON file ({exc})") from None
    try:
        validate(doc, kind)
    except jsonschema.ValidationError as exc:
        raise InputError(f"{path}: not a valid {schema_id(kind)} file: {exc.message}") from None
    return doc
