"""GPIO pins behind small interfaces: outputs (relays, buzzer, LED) and inputs (contacts, buttons).

An output backend implements `OutputPin`: `on()` drives the pin to its *active* level (relay energised,
buzzer sounding), `off()` to the inactive one, and `state` is the last level commanded (True = on).
Inputs are dry contacts and reuse `drivers.contacts.ContactInput` / `GpioContact` unchanged (a reed
contact or a push button is a voltage-free switch like an ATS auxiliary contact); `InputPin` is that
protocol under a name that reads well next to `OutputPin`.

Like the contacts, the GPIO backend uses the RPi.GPIO API (the `rpi-lgpio` package provides the
same module on a Raspberry Pi 5), imported on first use so a laptop and the tests need neither. The
simulated backend is `drivers.sim.gpio`.

Fail-secure outputs: an output is set up with ``initial`` as its logical state, converted to the
electrical level by ``active_high`` and passed to ``GPIO.setup(..., initial=level)``, so the pin
never shows the other level, not even for a microsecond, while it is being configured. A relay that
holds a door must be built with ``initial`` = its *locked* state; `close()` drives it back there and
keeps driving it (a released pin floats, and then the relay board, not this code, decides).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Protocol, runtime_checkable

from drivers.contacts import ContactInput, GpioContact, _import_gpio
from drivers.errors import DcgateError, InvalidValueError, SensorError

#: an input pin is a dry contact: `is_closed()`, debounced, raising `SensorError` when unknown
InputPin = ContactInput

__all__ = ["GpioContact", "GpioOutputError", "GpioOutputPin", "InputPin", "OutputPin", "check_bcm"]


class GpioOutputError(DcgateError, OSError):
    """An output pin could not be set up or driven (library missing, no access, pin busy)."""


@runtime_checkable
class OutputPin(Protocol):
    """What an output backend must provide.

    Must: `on()`, `off()` (idempotent, raising `GpioOutputError` when the level could not be set),
    `state` (the last level commanded, True = active), `close()` (back to the initial level).
    """

    name: str

    @property
    def state(self) -> bool:
        """True while the pin is driven to its active level."""
        ...

    def on(self) -> None:
        """Drive the active level."""
        ...

    def off(self) -> None:
        """Drive the inactive level."""
        ...

    def close(self) -> None:
        """Return to the initial (safe) level (idempotent)."""
        ...


def check_bcm(pin: int) -> int:
    if not 0 <= pin <= 27:
        raise InvalidValueError(f"pin {pin} is not a Raspberry Pi GPIO (BCM 0 to 27). Fix: give the BCM number")
    return pin


class GpioOutputPin:
    """One BCM-numbered output through RPi.GPIO, set up at its `initial` logical state.

    Set-up happens on `setup()` or the first `on()`/`off()`: constructing one needs no GPIO, so a
    config check runs anywhere. The owner (e.g. the door controller) calls `setup()` at boot.
    """

    def __init__(self, name: str, pin: int, *, active_high: bool = True, initial: bool = False,
                 gpio: Any = None) -> None:
        self.name, self.pin, self.active_high = name, check_bcm(pin), active_high
        self.initial = initial
        self._gpio = gpio  # injected by tests; otherwise imported on first use
        self._state = initial
        self._set_up = False
        self._lock = threading.Lock()

    @property
    def state(self) -> bool:
        return self._state

    def _level(self, on: bool) -> int:
        return 1 if on == self.active_high else 0

    def setup(self) -> None:
        with self._lock:
            self._setup()

    def _setup(self) -> Any:
        if self._set_up:
            return self._gpio
        try:
            gpio = self._gpio = self._gpio or _import_gpio()
        except SensorError as exc:
            raise GpioOutputError(str(exc)) from None
        try:
            gpio.setwarnings(False)  # a pin left configured by a crashed run is expected: we take it over
            gpio.setmode(gpio.BCM)
            gpio.setup(self.pin, gpio.OUT, initial=self._level(self.initial))
        except (RuntimeError, OSError, ValueError) as exc:
            raise GpioOutputError(
                f"output {self.name!r}: cannot set up GPIO {self.pin} ({exc}). Fix: add the service user to "
                "group gpio, and check that no other program uses the pin"
            ) from None
        self._state, self._set_up = self.initial, True
        return gpio

    def _write(self, on: bool) -> None:
        with self._lock:
            gpio = self._setup()
            try:
                gpio.output(self.pin, self._level(on))
            except (RuntimeError, OSError, ValueError) as exc:
                raise GpioOutputError(f"output {self.name!r}: cannot drive GPIO {self.pin} ({exc})") from None
            self._state = on

    def on(self) -> None:
        self._write(True)

    def off(self) -> None:
        self._write(False)

    def close(self) -> None:
        # back to the safe level and left driven: GPIO.cleanup() would float the pin (see module doc)
        with self._lock:
            if self._set_up and self._gpio is not None:
                with contextlib.suppress(RuntimeError, OSError, ValueError):
                    self._gpio.output(self.pin, self._level(self.initial))
                    self._state = self.initial
