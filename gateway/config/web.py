"""`[web]`: the console the gateway serves on the LAN, and `[backup]`: the SOP's weekly database copies.

    [web]
    listen = "0.0.0.0"          # or a LAN address; 127.0.0.1 keeps the console on this machine
    port = 8080
    tls_cert = "/etc/dcgate/web.crt"   # with tls_key: HTTPS, and session cookies marked Secure
    tls_key = "/etc/dcgate/web.key"
    session_idle_min = 30       # signed out after this long without a request
    session_max_h = 12          # and after this long in any case
    login_attempts = 5          # failed sign-ins per user or per address ...
    login_lockout_min = 15      # ... within this many minutes lock that user or address out for as long

    [backup]
    dir = "/var/backups/dcgate"
    every_days = 7              # the SOP: data at least weekly
    keep_days = 365             # the SOP: backups older than one year are deleted

Without a `[web]` table there is no console; without `[backup]` no scheduled backup (`dcgate backup
--to DIR` still works). The lead wires both in as ``Config.web`` and ``Config.backup``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gateway.config.base import FilePath, StrictModel, check_readable_file, check_secret_file, resolve_path


class WebConfig(StrictModel):
    """The web console: where it listens, HTTPS, sessions and sign-in throttling."""

    listen: str = Field(
        "127.0.0.1",
        description='IP address the console listens on: "0.0.0.0" for every interface (the LAN), a LAN '
                    'address, or "127.0.0.1" (default) for this machine only',
    )
    port: int = Field(8080, ge=1, le=65535, description="TCP port of the console, 1 to 65535; default 8080")
    tls_cert: FilePath | None = Field(
        None, description="certificate (PEM) for HTTPS; with tls_key the console speaks HTTPS only and marks "
                          "its session cookie Secure",
    )
    tls_key: FilePath | None = Field(None, description="private key (PEM) of tls_cert; owner-only (chmod 600)")
    session_idle_min: float = Field(
        30, gt=0, le=1440, description="minutes without a request after which a session ends, over 0 to 1440",
    )
    session_max_h: float = Field(
        12, gt=0, le=168, description="hours after sign-in after which a session ends in any case, over 0 to 168",
    )
    login_attempts: int = Field(
        5, ge=1, le=100,
        description="failed sign-ins for one user name, or from one address, within login_lockout_min that "
                    "lock it out, 1 to 100",
    )
    login_lockout_min: float = Field(
        15, gt=0, le=1440, description="minutes a locked-out user name or address waits, over 0 to 1440",
    )

    _resolve_paths = field_validator("tls_cert", "tls_key", mode="before")(resolve_path)

    @field_validator("listen")
    @classmethod
    def _an_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f"listen {value!r} is not an IP address. Fix: use 0.0.0.0 (the LAN), a LAN address such as "
                "192.168.1.20, or 127.0.0.1"
            ) from None
        return value

    @field_validator("tls_cert")
    @classmethod
    def _readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return check_readable_file(value, info.field_name or "tls_cert")

    @field_validator("tls_key")
    @classmethod
    def _private(cls, value: Path | None) -> Path | None:
        return check_secret_file(value, "tls_key")

    @model_validator(mode="after")
    def _pair(self) -> WebConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together. Fix: set both, or neither")
        return self

    @property
    def https(self) -> bool:
        return self.tls_cert is not None


class BackupConfig(StrictModel):
    """Scheduled online copies of the database, as the SOP asks (weekly, kept one year)."""

    dir: FilePath = Field(
        description="directory the copies go to (created if missing), ideally another disk or a network share",
    )
    every_days: float = Field(
        7, gt=0, le=366, description="days between scheduled backups, over 0 to 366; default 7 (the SOP: weekly)",
    )
    keep_days: float = Field(
        365, gt=0, le=3650,
        description="backups older than this many days are deleted after each backup, over 0 to 3650; "
                    "default 365 (the SOP: one year)",
    )

    _resolve_dir = field_validator("dir", mode="before")(resolve_path)


__all__ = ["BackupConfig", "WebConfig"]
