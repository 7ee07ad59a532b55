"""`[visits]`: how long guests and vendors may stay, how long a door waits for their escort, and how long
their ID numbers are kept.

    [visits]
    guest_max_min = 10        # the SOP: a guest may only look, 10 minutes
    vendor_max_h = 8          # a vendor works up to 8 hours
    admit_window_s = 60       # a door armed for a visit waits this long for an assigned escort
    id_retention_days = 90    # then the full ID numbers are erased (UU PDP); the masked form stays
    max_window_days = 31      # the longest window an officer may approve

An officer can extend a running visit (`dcgate visit extend`); the limits are where every visit starts.
The lead wires this in as ``Config.visits``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers.errors import InvalidValueError
from gateway.config.base import StrictModel

VisitKind = Literal["guest", "vendor"]


class VisitsConfig(StrictModel):
    """Time limits, the admission window and ID retention for guest and vendor visits."""

    guest_max_min: float = Field(
        10, ge=0.05, le=240,
        description="minutes a guest may stay after first entering before visit.overstay is raised, 0.05 to 240 "
                    "(decimals allowed: 0.5 is 30 s); default 10 (the SOP's limit for guests)",
    )
    vendor_max_h: float = Field(
        8.0, gt=0, le=24,
        description="hours a vendor may stay after first entering before visit.overstay is raised, over 0 and at "
                    "most 24; default 8 (the SOP's limit for vendors)",
    )
    admit_window_s: float = Field(
        60.0, ge=10, le=600,
        description="seconds a door stays armed for a visit, waiting for an assigned escort to authenticate, "
                    "10 to 600; then the arming lapses with visit.refused admit_timeout",
    )
    id_retention_days: int = Field(
        90, ge=1, le=3650,
        description="days after a visit ends (check-out, rejection, or the end of a window nobody entered in) "
                    "before the full ID numbers are erased (UU PDP), 1 to 3650; the masked form is kept",
    )
    max_window_days: int = Field(
        31, ge=1, le=366,
        description="longest visit window (start to end) that may be requested or approved, in days, 1 to 366",
    )

    def limit_min(self, kind: str) -> float:
        """Minutes a visitor of `kind` may stay after first entering, before any extension."""
        if kind == "guest":
            return self.guest_max_min
        if kind == "vendor":
            return round(self.vendor_max_h * 60)
        raise InvalidValueError(f"visit kind {kind!r} is not one of guest, vendor")


__all__ = ["VisitKind", "VisitsConfig"]
