"""`[[doors]]`: a door's lock relay, reed contact, exit button and timings, and how people authenticate.

    [[doors]]
    name = "ruang-server"
    auth = "face_and_finger"
    lock_pin = 25
    contact_pin = 23
    exit_button_pin = 24
    unlock_s = 5
    held_open_s = 30

    [doors.camera]
    source = 0                      # /dev/video0; or "rtsp://...", a video file, or "sim"
    [doors.fingerprint]
    port = "/dev/serial0"           # the Pi's UART (GPIO14/15); or "sim"
    baudrate = 57600

`DoorList` checks what spans doors (unique names, no pin used twice); `gateway.config.models.Config`
uses it for its ``doors`` key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from gateway.config.base import DEVICE_NAME, FilePath, StrictModel, check_secret_file, read_secret, resolve_path
from gateway.config.power import _pin

AUTH_MODES = ("face", "finger", "face_or_finger", "face_and_finger")


SIM = "sim"
BAUDRATES = (9600, 19200, 38400, 57600, 115200)


class CameraConfig(StrictModel):
    """A door camera, read through OpenCV."""

    source: int | str = Field(
        description='camera: a device index (0 = /dev/video0), an RTSP/HTTP URL, a video file, or "sim" (a '
                    "simulated camera that sees what `dcgate door present` shows it)",
    )
    idle_fps: float = Field(
        2.0, gt=0, le=30, description="frames read per second while nothing moves (a cheap motion check only)",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 <= value <= 63:
            raise ValueError(f"camera source {value} is not a device index 0-63. Fix: ls /dev/video* to find it")
        if isinstance(value, str) and not value.strip():
            raise ValueError('camera source is empty. Fix: give a device index, a URL, a file or "sim"')
        return value

    @property
    def simulated(self) -> bool:
        return self.source == SIM


class FingerprintConfig(StrictModel):
    """An R307/R503/AS608 fingerprint sensor on a serial port (ZFM packet protocol)."""

    port: str = Field(
        description='serial port of the sensor, e.g. "/dev/ttyAMA0" (Pi UART) or "/dev/ttyUSB0"; "sim" for a '
                    "simulated sensor (the real driver talking to an emulator over a pty)",
    )
    baudrate: int = Field(57600, description="the sensor's baud rate: 9600, 19200, 38400, 57600 (default) or 115200")
    password_file: FilePath | None = Field(
        None, description="owner-only file holding the sensor's 32-bit password (decimal or 0x hex), if it was "
                          "changed from the factory 0",
    )
    capacity: int = Field(200, ge=1, le=1000, description="template slots of the sensor: R503 200, AS608 300, "
                                                         "R307 1000; enrolment refuses slots beyond it")

    @field_validator("port")
    @classmethod
    def _port(cls, value: str) -> str:
        if value != SIM and not value.startswith("/dev/"):
            raise ValueError(f'fingerprint port {value!r} is not a device path. Fix: e.g. "/dev/ttyAMA0" or "sim"')
        return value

    @field_validator("baudrate")
    @classmethod
    def _baudrate(cls, value: int) -> int:
        if value not in BAUDRATES:
            raise ValueError(f"baudrate {value} is not one the sensor supports. Fix: one of {BAUDRATES}")
        return value

    _resolve = field_validator("password_file", mode="before")(resolve_path)

    @field_validator("password_file")
    @classmethod
    def _secret(cls, value: FilePath | None) -> FilePath | None:
        check_secret_file(value, "password_file")
        if value is not None:
            text = read_secret(value) or ""
            try:
                number = int(text, 0)
            except ValueError:
                number = -1
            if not 0 <= number <= 0xFFFFFFFF:
                raise ValueError(f"password_file {str(value)!r} does not hold a number 0..0xFFFFFFFF")
        return value

    @property
    def simulated(self) -> bool:
        return self.port == SIM

    def password(self) -> int:
        return int(read_secret(self.password_file) or "0", 0)


class DoorConfig(StrictModel):
    """One door controlled by this gateway."""

    name: str = Field(pattern=DEVICE_NAME, max_length=32,
                      description="door name, [a-z0-9_-], unique in this file; events come from door:<name>")
    auth: Literal["face", "finger", "face_or_finger", "face_and_finger"] = Field(
        "face_and_finger",
        description='what opens the door: "face", "finger", "face_or_finger" (either one), "face_and_finger" '
                    "(default: both, within access.second_factor_s; face recognition alone is less accurate for "
                    "some groups of people, so a server room wants two factors)",
    )
    gpio: Literal["rpi", "sim"] = Field(
        "rpi", description='"rpi": lock, contact, button and buzzer on the Pi\'s GPIO (RPi.GPIO, or rpi-lgpio on '
                           'a Pi 5); "sim": simulated pins, driven with `dcgate sim set door NAME ...`',
    )
    camera: CameraConfig | None = Field(None, description="[doors.camera]: the camera outside the door")
    fingerprint: FingerprintConfig | None = Field(
        None, description="[doors.fingerprint]: the fingerprint sensor outside the door",
    )
    exit_fingerprint: FingerprintConfig | None = Field(
        None, description="[doors.exit_fingerprint]: a fingerprint sensor inside, for logged exits (optional; "
                          "without one, the exit button's press is matched to who is inside)",
    )
    liveness: bool = Field(
        True, description="refuse a face until it blinks (a photo held to the camera is refused); the person "
                          "must look at the camera for a few seconds",
    )
    match_threshold: float = Field(
        0.6, ge=0.3, le=0.8, description="largest face distance that is a match; lower is stricter (0.6 is "
                                         "face_recognition's default, 0.5 suits a strict door)",
    )
    agree_frames: int = Field(3, ge=1, le=30, description="camera frames that must agree before a face decision")
    anti_passback: bool = Field(
        False, description="refuse an entry by someone the logbook already has inside (their exit was not "
                           "recorded: badge-sharing or tailgating)",
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

    @model_validator(mode="after")
    def _readers_for_auth(self) -> DoorConfig:
        needs_face = self.auth in ("face", "face_and_finger")
        needs_finger = self.auth in ("finger", "face_and_finger")
        if needs_face and self.camera is None:
            raise ValueError(f"door {self.name!r}: auth = {self.auth!r} needs a camera. Fix: add [doors.camera] "
                             'source = 0 (or "sim"), or choose auth = "finger"')
        if needs_finger and self.fingerprint is None:
            raise ValueError(f"door {self.name!r}: auth = {self.auth!r} needs a fingerprint sensor. Fix: add "
                             '[doors.fingerprint] port = "/dev/ttyAMA0" (or "sim"), or choose auth = "face"')
        if self.auth == "face_or_finger" and self.camera is None and self.fingerprint is None:
            raise ValueError(f"door {self.name!r}: auth = 'face_or_finger' needs a camera or a fingerprint sensor. "
                             "Fix: add [doors.camera] and/or [doors.fingerprint]")
        ports = [r.port for r in (self.fingerprint, self.exit_fingerprint) if r is not None and not r.simulated]
        if len(ports) == 2 and ports[0] == ports[1]:
            raise ValueError(f"door {self.name!r}: fingerprint and exit_fingerprint are both on {ports[0]}. "
                             "Fix: one serial port per sensor")
        return self

    def pins(self) -> dict[str, int]:
        """The pins this door uses, by key."""
        keys = ("lock_pin", "contact_pin", "exit_button_pin", "buzzer_pin")
        return {key: pin for key in keys if (pin := getattr(self, key)) is not None}


def _check_doors(doors: list[DoorConfig]) -> list[DoorConfig]:
    names: set[str] = set()
    pins: dict[int, str] = {}
    ports: dict[str, str] = {}
    for door in doors:
        for key in ("fingerprint", "exit_fingerprint"):
            reader = getattr(door, key)
            if reader is not None and not reader.simulated:
                if reader.port in ports:
                    raise ValueError(f"serial port {reader.port} is {ports[reader.port]} and door {door.name!r} "
                                     f"{key}. Fix: one port per sensor")
                ports[reader.port] = f"door {door.name!r} {key}"
        if door.name in names:
            raise ValueError(f"two [[doors]] are named {door.name!r}. Fix: give each door its own name")
        names.add(door.name)
        if door.gpio == SIM:
            continue  # simulated pins are per door; they cannot collide with real wiring
        for key, pin in door.pins().items():
            if pin in pins:
                raise ValueError(
                    f"pin {pin} is {pins[pin]} and door {door.name!r} {key}. Fix: one pin per signal"
                )
            pins[pin] = f"door {door.name!r} {key}"
    return doors


#: the ``doors`` key of the config: every door, names unique and no pin shared between doors
DoorList = Annotated[list[DoorConfig], AfterValidator(_check_doors)]

__all__ = ["AUTH_MODES", "SIM", "CameraConfig", "DoorConfig", "DoorList", "FingerprintConfig"]
