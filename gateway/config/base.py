"""What every config section shares: strict models, paths relative to the config file, secret files."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo

#: a path given as a TOML string (strict mode would otherwise demand a Path object)
FilePath = Annotated[Path, Field(strict=False)]

SLUG = r"^[a-z0-9][a-z0-9-]*$"
DEVICE_NAME = r"^[a-z0-9][a-z0-9_-]*$"


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored on a door controller."""

    # strict: `port = "1883"` or `port = true` is a mistake to report, not to coerce
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, strict=True)


def resolve_path(value: object, info: ValidationInfo) -> object:
    """Relative paths are relative to the config file, so a config works from any working directory."""
    base = (info.context or {}).get("base_dir")
    if isinstance(value, str) and value and base is not None:
        path = Path(value).expanduser()
        return (path if path.is_absolute() else Path(base) / path).resolve()
    return value


def check_readable_file(path: Path | None, key: str) -> Path | None:
    if path is None:
        return None
    if not path.is_file():
        raise ValueError(
            f"{key} {str(path)!r} does not exist or is not a file. Fix: give the path of an existing file"
        )
    if not os.access(path, os.R_OK):
        raise ValueError(f"{key} {str(path)!r} is not readable by this user. Fix: check its owner and mode")
    return path


class ProbeBase(StrictModel):
    """What every probe has, whatever its driver."""

    name: str = Field(pattern=DEVICE_NAME, max_length=32, description="probe name, [a-z0-9_-], unique in this file")
    thresholds: dict[str, float | bool] | None = Field(
        None,
        description="this probe's changes to the site's [thresholds], e.g. { temperature_high_c = 24 } "
                    "for a probe at a rack's hot exhaust",
    )


def check_secret_file(path: Path | None, key: str) -> Path | None:
    """A password file: readable, owner-only (like ssh keys), and not empty."""
    check_readable_file(path, key)
    if path is not None:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(
                f"{key} {str(path)!r} is readable by other users (mode {stat.S_IMODE(mode):o}). Fix: chmod 600 {path}"
            )
        if not path.read_text(encoding="utf-8").strip():
            raise ValueError(f"{key} {str(path)!r} is empty. Fix: write the password on its first line")
    return path


def read_secret(path: Path | None) -> str | None:
    """The first line of a secret file, or None when none is configured."""
    if path is None:
        return None
    return path.read_text(encoding="utf-8").splitlines()[0].strip()
