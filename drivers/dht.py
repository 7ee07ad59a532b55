"""DHT22 / DHT11 on a GPIO pin, through adafruit-circuitpython-dht (the `pi` extra).

These sensors fail often on a Pi (checksum errors, short frames) and measure at most once per 2 s.
`DhtProbe.read()`:

* spaces its measurements more than 2 s apart (2.1 s). The library silently returns its previous
  values when asked sooner, so a quick retry after a failure would report an old value as new;
* retries up to `tries` times, waiting 2.1 s, then 4.2 s, ... (worst case about 6.3 s with 3 tries;
  give the probe an interval of at least 10 s);
* rejects values outside the model's range and jumps of more than `max_jump_c` / `max_jump_pct`
  from the last accepted reading as suspect. If the change is real, `confirm_jump` consistent
  suspect readings in a row are accepted as the new level, so the probe cannot lock itself out;
* returns the median of the last `median_of` good readings taken within `max_age_s`; the newest is
  always included, so the value is never older than the last successful measurement;
* within 2 s of a *successful* measurement, returns the current median without touching the sensor
  (the sensor cannot give a newer value); within 2 s of a *failed* one, waits instead;
* raises `SensorReadError` naming the model, pin, tries and cause when no valid reading is found.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from drivers.climate import ClimateReading
from drivers.errors import InvalidValueError, SensorError, SensorReadError

#: the library refuses to measure again until strictly more than 2 s passed; keep a margin
MIN_SPACING_S = 2.1


class DhtBackend(Protocol):
    """What `adafruit_dht.DHT22` / `DHT11` offer (and `drivers.sim.dht.SimDht` mirrors)."""

    @property
    def temperature(self) -> float | None: ...

    @property
    def humidity(self) -> float | None: ...

    def exit(self) -> None: ...


@dataclass(frozen=True)
class DhtModel:
    label: str
    temperature_range: tuple[float, float]
    humidity_range: tuple[float, float]


# datasheet ranges; DHT11 humidity widened to 5–95 % as on newer DHT11 datasheets, so a dry room is
# reported rather than treated as a broken sensor
MODELS: dict[str, DhtModel] = {
    "dht22": DhtModel("DHT22", (-40.0, 80.0), (0.0, 100.0)),
    "dht11": DhtModel("DHT11", (0.0, 50.0), (5.0, 95.0)),
}

# library messages -> short causes for our error text
_CAUSES = {
    "Checksum did not validate": "checksum error",
    "A full buffer was not returned": "incomplete data",
    "DHT sensor not found": "sensor not found",
    "Received unplausible data": "implausible data",
}
_HINTS = {
    "checksum error": "check the 10 kΩ pull-up and cable length",
    "incomplete data": "check the 10 kΩ pull-up and cable length",
    "sensor not found": "check the wiring: data to the GPIO pin, 3.3 V and ground",
    "no data": "check the wiring: data to the GPIO pin, 3.3 V and ground",
    "out of range": "the sensor may be failing; replace it",
    "implausible data": "the sensor may be failing; replace it",
    "suspect jump": "readings jumped; a real change is accepted after consistent readings",
}


class DhtProbe:
    def __init__(
        self,
        name: str,
        pin: int,
        model: Literal["dht22", "dht11"] = "dht22",
        backend: DhtBackend | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        tries: int = 3,
        median_of: int = 3,
        max_age_s: float = 60.0,
        max_jump_c: float = 5.0,
        max_jump_pct: float = 20.0,
        confirm_jump: int = 3,
    ) -> None:
        if model not in MODELS:
            raise InvalidValueError(f"DHT model {model!r} is not one of {', '.join(MODELS)}")
        if isinstance(pin, bool) or not isinstance(pin, int) or not 0 <= pin <= 27:
            raise InvalidValueError(f"GPIO pin {pin!r} is not a Raspberry Pi GPIO number (0 to 27)")
        if tries < 1 or median_of < 1 or confirm_jump < 1:
            raise InvalidValueError(
                f"tries={tries}, median_of={median_of}, confirm_jump={confirm_jump}: each must be at least 1"
            )
        self.name = name
        self.pin = pin
        self.model = MODELS[model]
        self._where = f"{self.model.label} on GPIO{pin}"
        self._backend = backend if backend is not None else _real_backend(model, pin, self._where)
        self._clock, self._sleep = clock, sleep
        self._tries, self._max_age_s = tries, max_age_s
        self._max_jump = (max_jump_c, max_jump_pct)
        self._confirm_jump = confirm_jump
        self._samples: deque[tuple[float, float, float]] = deque(maxlen=median_of)
        self._suspects: list[tuple[float, float, float]] = []
        self._last_attempt: float | None = None
        self._last_ok: float | None = None

    def read(self) -> ClimateReading:
        now = self._clock()
        if self._last_ok is not None and self._last_ok == self._last_attempt and now - self._last_ok < MIN_SPACING_S:
            return self._median(now)  # as fresh as the sensor can give
        causes: list[str] = []
        for attempt in range(self._tries):
            wait = 0.0 if self._last_attempt is None else self._last_attempt + MIN_SPACING_S - self._clock()
            if attempt:
                wait = max(wait, MIN_SPACING_S * 2 ** (attempt - 1))  # back off: 2.1 s, 4.2 s, ...
            if wait > 0:
                self._sleep(wait)
            self._last_attempt = at = self._clock()
            cause = self._measure_once(at)
            if cause is None:
                self._last_ok = at
                return self._median(at)
            causes.append(cause)
        main = Counter(causes).most_common(1)[0][0]
        detail = ", ".join(f"{n}× {c}" for c, n in Counter(causes).most_common()) if len(set(causes)) > 1 else main
        raise SensorReadError(
            f"{self._where} (probe {self.name!r}): no valid reading in {self._tries} tries ({detail}); "
            f"{_HINTS.get(main, 'check the sensor and its wiring')}"
        )

    def close(self) -> None:
        """Release the pin (the real library stops its libgpiod_pulsein helper process)."""
        exit_ = getattr(self._backend, "exit", None)
        if exit_ is not None:
            exit_()

    # -- internals -----------------------------------------------------------------------
    def _measure_once(self, at: float) -> str | None:
        """One measurement; None if it was accepted, else a short cause."""
        try:
            # temperature first: if it fails, reading humidity would return the library's old value
            temperature = self._backend.temperature
            humidity = self._backend.humidity
        except (RuntimeError, OSError) as exc:
            text = str(exc)
            return next((cause for key, cause in _CAUSES.items() if text.startswith(key)), text or "read error")
        if temperature is None or humidity is None:
            return "no data"
        t_low, t_high = self.model.temperature_range
        h_low, h_high = self.model.humidity_range
        if not (t_low <= temperature <= t_high and h_low <= humidity <= h_high):
            return "out of range"
        sample = (at, float(temperature), float(humidity))
        reference = self._samples[-1] if self._samples and at - self._samples[-1][0] <= self._max_age_s else None
        if reference is not None and not self._close(reference, sample):
            if self._suspects and not self._close(self._suspects[0], sample):
                self._suspects = []  # not the same new level: start counting again
            self._suspects.append(sample)
            if len(self._suspects) < self._confirm_jump:
                return "suspect jump"
            # several consistent readings: the room really changed (or the probe was moved)
            self._samples.clear()
            for suspect in self._suspects[:-1]:
                self._samples.append(suspect)
        self._suspects = []
        self._samples.append(sample)
        return None

    def _close(self, a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
        return abs(a[1] - b[1]) <= self._max_jump[0] and abs(a[2] - b[2]) <= self._max_jump[1]

    def _median(self, now: float) -> ClimateReading:
        fresh = [s for s in self._samples if now - s[0] <= self._max_age_s] or [self._samples[-1]]
        return ClimateReading(
            temperature_c=round(statistics.median(s[1] for s in fresh), 2),
            humidity_pct=round(statistics.median(s[2] for s in fresh), 2),
        )


def _real_backend(model: str, pin: int, where: str) -> DhtBackend:
    """The adafruit library, imported only here: it exists only on a Pi (`pip install 'dcgate[pi]'`)."""
    try:
        import adafruit_dht  # type: ignore[import-not-found]
        import board  # type: ignore[import-not-found]
    except (ImportError, NotImplementedError, RuntimeError) as exc:  # board raises on non-Pi boards
        raise SensorError(
            f"{where} needs adafruit-circuitpython-dht and Adafruit-Blinka, which are not usable here ({exc}). "
            "Fix: on the Raspberry Pi run pip install 'dcgate[pi]'; on other machines use a sim probe"
        ) from exc
    board_pin = getattr(board, f"D{pin}", None)
    if board_pin is None:
        raise InvalidValueError(f"{where}: this board has no pin D{pin}. Fix: use the GPIO (BCM) number")
    try:
        return adafruit_dht.DHT11(board_pin) if model == "dht11" else adafruit_dht.DHT22(board_pin)
    except (RuntimeError, OSError, ValueError) as exc:
        raise SensorError(f"{where}: could not open the pin ({exc}); is another process using it?") from exc
