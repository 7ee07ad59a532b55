"""`[[doors]]`: a door's lock relay, reed contact, exit button and timings, and how people authenticate.

    [[doors]]
    name = "ruang-server"
    auth = "face_or_finger"
    lock_pin = 23
    contact_pin = 24
    exit_button_pin = 25
    unlock_s = 5
    held_open_s = 30

`DoorList` checks what spans doors (unique names, no pin used twice); `gateway.config.models.Config`
uses it for its ``doors`` key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from gateway.config.base import DEVICE_NAME, StrictModel
from gateway.config.power import _pin

AUTH_MODES = ("face", "finger", "face_or_finger", "face_and_finger")


class DoorConfig(StrictModel):
    """One door controlled by this gateway."""

    name: str = Field(pattern=DEVICE_NAME, max_length=32,
                      description="door name, [a-z0-9_-], unique in this file; events come from door:<name>")
    auth: Literal["face", "finger", "face_or_finger", "face_and_finger"] = Field(
        description='what opens the door: "face", "finger", "face_or_finger" (either one), '
                    '"face_and_finger" (both, one after the other)',
    )
    lock_pin: int = Field(description="BCM pin driving the lock relay")
    lock_active_high: bool = Field(
        True, description="true: the relay is energised by a high pin (most bare relays); false: by a low pin "
                          "(most opto-isolated relay boards, marked 'low level trigger')",
    )
    contact_pin: int = Field(description="BCM pin of the door's reed contact (to GND, internal pull-up)")
    contact_normally_open: bool = Field(
        False, description="false (recommended): the contact is closed while the door is shut, so a cut wire "
                           "reads as open and raises door.forced; true: closed while the door is open",
    )
    exit_button_pin: int | None = Field(
        None, description="BCM pin of the request-to-exit button inside (to GND); none when the door has none",
    )
    buzzer_pin: int | None = Field(
        None, description="BCM pin of a buzzer or LED that sounds while the door is held open or forced",
    )
    unlock_s: float = Field(5.0, ge=1, le=60, description="seconds the lock stays released after a grant, 1 to 60")
    held_open_s: float = Field(
        30.0, ge=5, le=3600, description="seconds the door may stand open before door.held_open, 5 to 3600",
    )
    fail_safe: bool = Field(
        False, description="false (fail-secure, default): the lock stays locked without power (electric strike); "
                           "true (fail-safe): it releases without power (maglock), for fire egress",
    )

    @field_validator("lock_pin", "contact_pin", "exit_button_pin", "buzzer_pin")
    @classmethod
    def _bcm(cls, value: int | None, info: ValidationInfo) -> int | None:
        return _pin(value, info.field_name or "pin")

    @model_validator(mode="after")
    def _distinct_pins(self) -> DoorConfig:
        seen: dict[int, str] = {}
        for key, pin in self.pins().items():
            if pin in seen:
                raise ValueError(
                    f"door {self.name!r}: {seen[pin]} and {key} are both {pin}. Fix: wire each signal to its own pin"
                )
            seen[pin] = key
        return self

    def pins(self) -> dict[str, int]:
        """The pins this door uses, by key."""
        keys = ("lock_pin", "contact_pin", "exit_button_pin", "buzzer_pin")
        return {key: pin for key in keys if (pin := getattr(self, key)) is not None}


def _check_doors(doors: list[DoorConfig]) -> list[DoorConfig]:
    names: set[str] = set()
    pins: dict[int, str] = {}
    for door in doors:
        if door.name in names:
            raise ValueError(f"two [[doors]] are named {door.name!r}. Fix: give each door its own name")
        names.add(door.name)
        for key, pin in door.pins().items():
            if pin in pins:
                raise ValueError(
                    f"pin {pin} is {pins[pin]} and door {door.name!r} {key}. Fix: one pin per signal"
                )
            pins[pin] = f"door {door.name!r} {key}"
    return doors


#: the ``doors`` key of the config: every door, names unique and no pin shared between doors
DoorList = Annotated[list[DoorConfig], AfterValidator(_check_doors)]

__all__ = ["AUTH_MODES", "DoorConfig", "DoorList"]
