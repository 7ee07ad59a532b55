"""The project's one exception hierarchy.

It lives in the lowest layer so that drivers, access and gateway code can all raise
from the same root. Every class also inherits the matching builtin, so callers that
only know ``ValueError`` or ``OSError`` still catch the right things.
"""

from __future__ import annotations


class DcgateError(Exception):
    """Root of every error dcgate raises on purpose."""

    #: process exit status when this error ends a CLI command
    exit_code = 1


class ConfigError(DcgateError, ValueError):
    """The configuration is invalid; the gateway refuses to start."""

    exit_code = 2


class SensorError(DcgateError, OSError):
    """A device could not be read. Never replaced by a made-up value."""


class SensorReadError(SensorError):
    """One read failed (timeout, checksum, no answer)."""


class UnknownDeviceError(DcgateError, KeyError):
    """A command named a device the gateway does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown device"


class InvalidValueError(DcgateError, ValueError):
    """A value given to a device or command is out of range or of the wrong type."""

    exit_code = 2
