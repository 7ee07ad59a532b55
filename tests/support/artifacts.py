"""Where tests leave pictures for people to look at: browser screenshots, report pages rendered to PNG.

`$DCGATE_ARTIFACTS`, else `test-artifacts/` at the repository root (ignored by git). CI keeps the
folder after a run, so a reviewer can see what the officer would have seen.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def artifact_path(name: str) -> Path:
    """A file path under the artifacts folder for `name` (made filesystem-safe), its folder created."""
    folder = Path(os.environ.get("DCGATE_ARTIFACTS") or ROOT / "test-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / re.sub(r"[^A-Za-z0-9._-]+", "_", name)
