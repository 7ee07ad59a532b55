"""Dry-contact inputs: a voltage-free switch (ATS auxiliary contact, generator "running" relay) on a pin.

A backend implements `ContactInput`: `is_closed()` answers whether the contact is closed *now*,
already debounced, and raises `SensorError` when it cannot know (library missing, no access to the
GPIO chip, a contact that keeps bouncing). Never a guessed state.

The GPIO backend uses the RPi.GPIO API (the `rpi-lgpio` package provides the same module on
Raspberry Pi 5 and newer kernels), imported on first use so that a laptop, the tests and
`dcgate config check` need neither. Wiring: contact between the pin and GND with the internal
pull-up (`active_low = True`, the usual case: closed pulls the pin low), or between the pin and
3.3 V with the pull-down (`active_low = False`). A normally-closed contact is wired the same way;
what "closed" means is decided where the contact is used (e.g. which ATS position it signals).
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from drivers.errors import InvalidValueError, SensorError, SensorReadError


@runtime_checkable
class ContactInput(Protocol):
    """What a dry-contact backend must provide."""

    name: str

    def is_closed(self) -> bool:
        """The debounced state now; raises `SensorError` when it cannot be read."""
        ...

    def close(self) -> None:
        """Release the pin (idempotent)."""
        ...


def _import_gpio() -> ModuleType:
    try:
        import RPi.GPIO as gpio
    except ImportError as exc:
        raise SensorError(
            f"the GPIO library is not installed ({exc}). Fix: `pip install rpi-lgpio` (Raspberry Pi 5) or "
            "`pip install RPi.GPIO` in the gateway's environment"
        ) from None
    except RuntimeError as exc:  # RPi.GPIO raises this on import when not on a Pi
        raise SensorError(f"the GPIO library cannot run here ({exc}). Fix: run on the Raspberry Pi") from None
    return gpio


class GpioContact:
    """A contact on one BCM-numbered pin, debounced in software.

    Debounce: the pin is sampled every `sample_ms` until it has read the same level for
    `debounce_ms`; a contact still changing after `max(10 × debounce_ms, 100 ms)` is a fault
    (loose wire, or a relay chattering), reported rather than guessed.
    """

    def __init__(self, name: str, pin: int, *, active_low: bool = True, pull: bool = True,
                 debounce_ms: float = 50.0, sample_ms: float = 5.0, gpio: Any = None,
                 clock: Any = time) -> None:
        if not 0 <= pin <= 27:
            raise InvalidValueError(f"pin {pin} is not a Raspberry Pi GPIO (BCM 0 to 27). Fix: give the BCM number")
        if debounce_ms < 0 or sample_ms <= 0:
            raise InvalidValueError("debounce_ms must be >= 0 and sample_ms > 0")
        self.name, self.pin, self.active_low, self.pull = name, pin, active_low, pull
        self.debounce_s, self.sample_s = debounce_ms / 1000, sample_ms / 1000
        self._gpio = gpio  # injected by tests; otherwise imported on first read
        self._clock = clock
        self._lock = threading.Lock()
        self._set_up = False

    def _setup(self) -> Any:
        gpio = self._gpio = self._gpio or _import_gpio()
        if not self._set_up:
            try:
                gpio.setwarnings(False)  # a pin left configured by a previous run is expected, not a problem
                gpio.setmode(gpio.BCM)
                # the pull holds the open contact at the inactive level
                pud = (gpio.PUD_UP if self.active_low else gpio.PUD_DOWN) if self.pull else gpio.PUD_OFF
                gpio.setup(self.pin, gpio.IN, pull_up_down=pud)
            except (RuntimeError, OSError, ValueError) as exc:
                raise SensorError(
                    f"contact {self.name!r}: cannot set up GPIO {self.pin} ({exc}). Fix: add the service user to "
                    "group gpio, and check that no other program uses the pin"
                ) from None
            self._set_up = True
        return gpio

    def _level(self, gpio: Any) -> int:
        try:
            return 1 if gpio.input(self.pin) else 0
        except (RuntimeError, OSError) as exc:
            raise SensorReadError(f"contact {self.name!r}: cannot read GPIO {self.pin} ({exc})") from None

    def is_closed(self) -> bool:
        with self._lock:
            gpio = self._setup()
            level = self._level(gpio)
            if self.debounce_s > 0:
                level = self._stable(gpio, level)
            return (level == 0) if self.active_low else (level == 1)

    def _stable(self, gpio: Any, level: int) -> int:
        start = since = self._clock.monotonic()
        give_up = start + max(10 * self.debounce_s, 0.1)
        while True:
            now = self._clock.monotonic()
            if now - since >= self.debounce_s:
                return level
            if now >= give_up:
                raise SensorReadError(
                    f"contact {self.name!r} on GPIO {self.pin} did not settle within {give_up - start:.2f} s. "
                    "Check: a loose wire or a chattering relay; the cable should be shielded and short"
                )
            self._clock.sleep(self.sample_s)  # the sampling period of the debounce, not a wait on another thread
            now_level = self._level(gpio)
            if now_level != level:
                level, since = now_level, self._clock.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._set_up and self._gpio is not None:
                # nothing useful to do about a pin that will not reset
                with contextlib.suppress(RuntimeError, OSError):
                    self._gpio.cleanup(self.pin)
                self._set_up = False
