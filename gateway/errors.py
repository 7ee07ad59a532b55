"""Gateway-level errors, on the project's one root (`drivers.errors.DcgateError`)."""

from __future__ import annotations

from drivers.errors import (
    ConfigError,
    DcgateError,
    InvalidValueError,
    SensorError,
    SensorReadError,
    UnknownDeviceError,
)

__all__ = [
    "AlreadyRunningError",
    "ConfigError",
    "ControlError",
    "DcgateError",
    "InvalidEventError",
    "InvalidValueError",
    "SensorError",
    "SensorReadError",
    "ServiceNotRunningError",
    "StoreError",
    "UnknownDeviceError",
]


class StoreError(DcgateError, RuntimeError):
    """The event store could not be opened, migrated or written."""


class InvalidEventError(DcgateError, ValueError):
    """An event was refused before it reached the store (bad kind, source or fields)."""


class AlreadyRunningError(DcgateError, RuntimeError):
    """Another gateway process already owns this data directory."""

    exit_code = 2


class ServiceNotRunningError(DcgateError, ConnectionError):
    """The CLI could not reach a running gateway through its control socket."""

    exit_code = 3


class ControlError(DcgateError, RuntimeError):
    """The running gateway refused a control request; the message says why."""
