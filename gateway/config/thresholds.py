"""Alarm thresholds for one probe: the room standard (Jambi 31/2017: 20–22 °C, 35–65 % RH) by default.

The lead wires this in as a site-level `[thresholds]` table with per-probe overrides; use
`ThresholdConfig.with_overrides()` so an override is validated against the whole result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, model_validator

from gateway.config.base import StrictModel


class ThresholdConfig(StrictModel):
    temperature_low_c: float = Field(
        20.0, ge=-40, le=80, description="below this room temperature (°C) a warning is raised; standard 20"
    )
    temperature_high_c: float = Field(
        22.0, ge=-40, le=80, description="above this room temperature (°C) a warning is raised; standard 22"
    )
    temperature_critical_low_c: float = Field(
        18.0, ge=-40, le=80, description="below this temperature (°C) the alarm is critical; under temperature_low_c"
    )
    temperature_critical_high_c: float = Field(
        25.0, ge=-40, le=80, description="above this temperature (°C) the alarm is critical; over temperature_high_c"
    )
    humidity_low_pct: float = Field(
        35.0, ge=0, le=100, description="below this relative humidity (%) a warning is raised; standard 35"
    )
    humidity_high_pct: float = Field(
        65.0, ge=0, le=100, description="above this relative humidity (%) a warning is raised; standard 65"
    )
    humidity_critical_low_pct: float = Field(
        30.0, ge=0, le=100, description="below this humidity (%) the alarm becomes critical; under humidity_low_pct"
    )
    humidity_critical_high_pct: float = Field(
        70.0, ge=0, le=100, description="above this humidity (%) the alarm becomes critical; over humidity_high_pct"
    )
    temperature_hysteresis_c: float = Field(
        0.5, ge=0, le=10,
        description="a temperature alarm clears only when the value is back inside its limit by this much (°C)",
    )
    humidity_hysteresis_pct: float = Field(
        2.0, ge=0, le=20,
        description="a humidity alarm clears only when the value is back inside its limit by this much (%)",
    )
    min_duration_s: float = Field(
        60.0, ge=0, le=86400,
        description="seconds a condition must hold before its alarm is raised or made more severe (0 = at once)",
    )
    rate_alarm: bool = Field(
        True, description="raise rising_fast (critical) / falling_fast (warning) when the temperature changes quickly"
    )
    rate_delta_c: float = Field(
        2.0, gt=0, le=50,
        description="temperature change (°C) within rate_window_s that raises a rate alarm (air-conditioning failure?)",
    )
    rate_window_s: float = Field(
        600.0, ge=10, le=86400, description="seconds over which the temperature change is measured for the rate alarm"
    )
    stale_after_s: float = Field(
        300.0, ge=1, le=86400,
        description="seconds without a good reading (and no reported fault) before a `stale` alarm is raised",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ThresholdConfig:
        self._check_band(
            "temperature", "°C", self.temperature_critical_low_c, self.temperature_low_c,
            self.temperature_high_c, self.temperature_critical_high_c, self.temperature_hysteresis_c, "_c",
        )
        self._check_band(
            "humidity", "%", self.humidity_critical_low_pct, self.humidity_low_pct,
            self.humidity_high_pct, self.humidity_critical_high_pct, self.humidity_hysteresis_pct, "_pct",
        )
        if self.rate_alarm and self.temperature_hysteresis_c >= self.rate_delta_c:
            raise ValueError(
                f"temperature_hysteresis_c ({self.temperature_hysteresis_c:g}) is not smaller than rate_delta_c "
                f"({self.rate_delta_c:g}), so a rate alarm could never clear. Fix: raise rate_delta_c or lower the "
                "hysteresis"
            )
        return self

    @staticmethod
    def _check_band(
        quantity: str, unit: str, crit_low: float, low: float, high: float, crit_high: float, hyst: float, suffix: str
    ) -> None:
        low_key, high_key = f"{quantity}_low{suffix}", f"{quantity}_high{suffix}"
        crit_low_key, crit_high_key = f"{quantity}_critical_low{suffix}", f"{quantity}_critical_high{suffix}"
        hyst_key = f"{quantity}_hysteresis{suffix}"
        if not low < high:
            raise ValueError(
                f"{low_key} ({low:g} {unit}) is not below {high_key} ({high:g} {unit}). Fix: swap them, "
                f"e.g. {low_key} = 20 and {high_key} = 22 for temperature"
            )
        if not crit_low < low:
            raise ValueError(
                f"{crit_low_key} ({crit_low:g} {unit}) must be below {low_key} ({low:g} {unit}): the critical band "
                f"lies outside the warning band. Fix: lower {crit_low_key}"
            )
        if not crit_high > high:
            raise ValueError(
                f"{crit_high_key} ({crit_high:g} {unit}) must be above {high_key} ({high:g} {unit}): the critical "
                f"band lies outside the warning band. Fix: raise {crit_high_key}"
            )
        # a clear point beyond the opposite limit (or inside the warning band) would make alarms unclearable
        if not 2 * hyst < high - low:
            raise ValueError(
                f"{hyst_key} ({hyst:g} {unit}) is too wide for the band {low:g}–{high:g} {unit}: a high alarm would "
                f"clear only below {high - hyst:g}, a low one only above {low + hyst:g}. Fix: use less than "
                f"{(high - low) / 2:g}"
            )
        narrowest = min(low - crit_low, crit_high - high)
        if not hyst < narrowest:
            raise ValueError(
                f"{hyst_key} ({hyst:g} {unit}) is not smaller than the gap between the warning and critical limits "
                f"({narrowest:g} {unit}), so a critical alarm could not step back to warning. Fix: use less than "
                f"{narrowest:g} or widen the critical band"
            )

    def with_overrides(self, overrides: Mapping[str, Any]) -> ThresholdConfig:
        """This config with some fields replaced (a per-probe override), validated as a whole."""
        return type(self).model_validate({**self.model_dump(), **overrides})
