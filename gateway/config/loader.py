"""Load the TOML file and turn every validation problem into a message a technician can act on.

Each problem names the file, the line, the key path, the bad value and the fix. The gateway
never starts on a bad config: an access-control system with a half-understood config must
keep the door locked rather than guess.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.config.models import PROBE_DRIVERS, Config
from gateway.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/dcgate/dcgate.toml")
CONFIG_ENV = "DCGATE_CONFIG"


def default_config_path() -> Path:
    """`$DCGATE_CONFIG`, then /etc/dcgate/dcgate.toml."""
    from_env = os.environ.get(CONFIG_ENV)
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH


def load_config(path: Path | str) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found. Fix: pass --config FILE, set ${CONFIG_ENV}, "
            f"or copy hardware/config/pi-example.toml to {DEFAULT_CONFIG_PATH}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc}). Fix: check the file's owner and mode") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}. Fix: correct the syntax at that line") from None
    try:
        return Config.model_validate(raw, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        problems = [_describe(error, text) for error in exc.errors(include_url=False)]
        listing = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(f"{path}: invalid configuration ({len(problems)} problem(s)):\n{listing}") from None


def _normalize(loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], type[BaseModel] | None]:
    """Drop the tag pydantic inserts after a list index of a discriminated union (probes[0].sim.x)."""
    if len(loc) >= 3 and loc[0] == "probes" and isinstance(loc[1], int) and loc[2] in PROBE_DRIVERS:
        return (*loc[:2], *loc[3:]), PROBE_DRIVERS[str(loc[2])]
    return loc, None


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the last key of `loc`, to look up its description."""
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = _inner_model(field.annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    metadata = getattr(annotation, "__origin__", None)
    if metadata is not None and metadata is not annotation:
        return _inner_model(metadata)
    return None


def _fix_for(error: dict[str, Any], loc: tuple[int | str, ...], model: type[BaseModel] | None) -> str:
    key = loc[-1] if loc else ""
    field = model.model_fields.get(key) if model is not None and isinstance(key, str) else None
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(model.model_fields)) if model is not None else "see the documentation"
        return f"remove `{key}` or correct its spelling; keys allowed here: {allowed}"
    if kind == "missing":
        described = f" ({field.description})" if field is not None and field.description else ""
        return f"add `{key} = ...`{described}"
    if kind == "value_error":
        return ""  # our own validators already say how to fix it
    if field is not None and field.description:
        return f"{key} must be: {field.description}"
    return "see the example configs in hardware/config/"


def _describe(error: dict[str, Any], text: str) -> str:
    error = _driver_tag_error(error)
    loc, tagged_model = _normalize(tuple(error["loc"]))
    model = tagged_model if tagged_model is not None and len(loc) == 3 else _model_at(loc)
    key = _key_path(loc) or "(top level)"
    line = _find_line(text, loc)
    where = f"line {line}, " if line else ""
    message = error["msg"].removeprefix("Value error, ")
    quiet = error["type"] in ("missing", "value_error", "model_type", "dict_type", "list_type")
    value = "" if quiet else f" (got {error.get('input')!r})"
    fix = _fix_for(error, loc, model)
    return f"{where}{key}: {message}{value}" + (f". Fix: {fix}" if fix else "")


def _driver_tag_error(error: dict[str, Any]) -> dict[str, Any]:
    """Report a bad or missing `driver` of a [[probes]] entry at its `driver` key, with the drivers there are."""
    loc = tuple(error["loc"])
    if error["type"] not in ("union_tag_invalid", "union_tag_not_found") or loc[:1] != ("probes",):
        return error
    drivers = ", ".join(f'"{name}"' for name in PROBE_DRIVERS)
    if error["type"] == "union_tag_not_found":
        return {**error, "type": "missing", "loc": (*loc, "driver"), "msg": "Field required"}
    return {
        **error, "type": "value_error", "loc": (*loc, "driver"),
        "msg": f"unknown probe driver (got {error['ctx']['tag']!r}). Fix: use one of the drivers of this version: "
               f"{drivers}",
    }


_TABLE = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.\-]+)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


def _find_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line of `loc` in the TOML text: the key's line, else its table's header."""
    names = [part for part in loc if isinstance(part, str)]
    index = next((part for part in loc if isinstance(part, int)), None)
    table, key = ".".join(names[:-1]), (names[-1] if names else "")
    current, array_counts, header_line, own_header = "", {}, None, None
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            current = header.group(2)
            if header.group(1):
                array_counts[current] = array_counts.get(current, -1) + 1
            selected = index is None or array_counts.get(current) == index
            if current == table and selected:
                header_line = number
            if own_header is None and names and current == ".".join(names) and selected:
                own_header = number  # the problem is the table itself (e.g. [mqtt] or one [[probes]])
            continue
        wanted_table = current == table and (index is None or array_counts.get(current) == index)
        match = _KEY.match(line)
        if wanted_table and match and match.group(1) == key:
            return number
        if not table and current == "" and match and match.group(1) == key:
            return number
    if table and header_line is None and len(names) >= 2:
        # a whole table that is missing or wrong: point at its parent table's key if written inline
        return _find_line(text, tuple(names[:-1]))
    return header_line if header_line is not None else own_header
