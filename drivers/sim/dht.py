"""A simulated DHT22/DHT11 with the interface and quirks of `adafruit_dht.DHT22` (library 4.x).

Mirrored from adafruit_dht.py:

* `temperature` and `humidity` are properties; each calls `measure()`.
* `measure()` talks to the sensor only if it is the first call or more than 2 s (strictly) passed since
  the previous *attempt*; otherwise it does nothing, so the properties silently return the values of
  the last *successful* measurement (or None before the first). That is what lets a caller read
  `temperature` then `humidity` from one measurement, and also why retrying within 2 s of a failure
  returns an old value without any error.
* The attempt time is recorded before the measurement, so a failed attempt also starts the 2 s.
* Failures are RuntimeErrors with the library's exact texts, and the stored values are only replaced
  after the checksum (and humidity 0–100) checks pass.
* DHT22 values have 0.1 resolution; DHT11 humidity is whole percent, temperature 0.1 °C.

Test controls: `set()`, a seeded failure rate, `script()` for exact outcome sequences, `wired`,
and `measurements` (how many times the simulated sensor was really triggered).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

CHECKSUM = "Checksum did not validate. Try again."
FULL_BUFFER = "A full buffer was not returned. Try again."
NOT_FOUND = "DHT sensor not found, check wiring"
IMPLAUSIBLE = "Received unplausible data. Try again."

Outcome = Literal["ok", "checksum", "buffer", "missing", "implausible"]
#: the library waits this long between measurements (datasheet: at most one reading every 2 s)
DELAY_BETWEEN_READINGS = 2


class SimDht:
    def __init__(
        self,
        model: Literal["dht22", "dht11"] = "dht22",
        *,
        temperature_c: float = 21.0,
        humidity_pct: float = 50.0,
        failure_rate: float = 0.0,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.true_temperature_c = temperature_c
        self.true_humidity_pct = humidity_pct
        self.failure_rate = failure_rate
        self.wired = True
        self.measurements = 0
        self.closed = False
        self._rng = random.Random(seed)
        self._clock = clock
        self._script: deque[tuple[Outcome, float | None, float | None]] = deque()
        self._last_called = 0.0
        self._temperature: float | None = None
        self._humidity: float | None = None

    # -- test controls -------------------------------------------------------------------
    def set(self, temperature_c: float | None = None, humidity_pct: float | None = None) -> None:
        """What the sensor senses from now on."""
        if temperature_c is not None:
            self.true_temperature_c = temperature_c
        if humidity_pct is not None:
            self.true_humidity_pct = humidity_pct

    def script(self, *outcomes: Outcome | tuple[float, float]) -> None:
        """The next measurements' outcomes, in order; a (temperature, humidity) pair is a good reading of
        exactly those values (e.g. a corrupted frame whose checksum happens to pass)."""
        for outcome in outcomes:
            if isinstance(outcome, tuple):
                self._script.append(("ok", outcome[0], outcome[1]))
            else:
                self._script.append((outcome, None, None))

    # -- the adafruit_dht interface ------------------------------------------------------
    @property
    def temperature(self) -> float | None:
        self.measure()
        return self._temperature

    @property
    def humidity(self) -> float | None:
        self.measure()
        return self._humidity

    def exit(self) -> None:
        """Release the pin (the real one stops its libgpiod_pulsein helper)."""
        self.closed = True

    def measure(self) -> None:
        if self.closed:
            raise RuntimeError("sensor was released with exit()")
        now = self._clock()
        if self._last_called != 0 and now - self._last_called <= DELAY_BETWEEN_READINGS:
            return  # too soon: the library keeps the previous values, without an error
        self._last_called = now
        self.measurements += 1
        outcome, temperature, humidity = self._next_outcome()
        if outcome == "missing":
            raise RuntimeError(NOT_FOUND)
        if outcome == "buffer":
            raise RuntimeError(FULL_BUFFER)
        if outcome == "checksum":
            raise RuntimeError(CHECKSUM)
        assert temperature is not None and humidity is not None
        if outcome == "implausible" or not 0 <= humidity <= 100:
            raise RuntimeError(IMPLAUSIBLE)
        self._temperature, self._humidity = temperature, humidity

    def _next_outcome(self) -> tuple[Outcome, float | None, float | None]:
        if not self.wired:
            return "missing", None, None
        if self._script:
            outcome, temperature, humidity = self._script.popleft()
            if outcome == "ok" and temperature is not None and humidity is not None:
                return "ok", *self._encode(temperature, humidity)
            return outcome, None, None
        if self.failure_rate and self._rng.random() < self.failure_rate:
            # on a real Pi checksum errors are the most common, then short frames
            return ("checksum" if self._rng.random() < 0.7 else "buffer"), None, None
        return "ok", *self._encode(self.true_temperature_c, self.true_humidity_pct)

    def _encode(self, temperature: float, humidity: float) -> tuple[float, float]:
        """Round as the sensor's frame does."""
        if self.model == "dht11":
            return round(temperature, 1), float(round(humidity))
        return round(temperature, 1), round(humidity, 1)
