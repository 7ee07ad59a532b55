"""Network UPS Tools: a client of `upsd`, so every UPS that NUT supports works with dcgate."""

from drivers.nut.client import (
    DEFAULT_PORT,
    NutAccessDenied,
    NutClient,
    NutConnectionError,
    NutDataStale,
    NutDriverNotConnected,
    NutError,
    NutProtocolError,
    NutServerError,
    NutUnknownUps,
    NutVarNotSupported,
)

__all__ = [
    "DEFAULT_PORT",
    "NutAccessDenied",
    "NutClient",
    "NutConnectionError",
    "NutDataStale",
    "NutDriverNotConnected",
    "NutError",
    "NutProtocolError",
    "NutServerError",
    "NutUnknownUps",
    "NutVarNotSupported",
]
