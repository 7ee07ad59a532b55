"""`[ups]`: the UPS, read through a Network UPS Tools server (`upsd`), so every UPS NUT supports works."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gateway.config.base import FilePath, StrictModel, check_secret_file, read_secret, resolve_path


class UpsConfig(StrictModel):
    driver: Literal["nut"] = Field(
        description='how the UPS is read; "nut": as a client of a Network UPS Tools server (upsd)'
    )
    host: str = Field("127.0.0.1", min_length=1, description="host name or IP address where upsd listens")
    port: int = Field(3493, ge=1, le=65535, description="TCP port of upsd, 1 to 65535 (NUT's standard is 3493)")
    name: str = Field(
        min_length=1,
        pattern=r"^[^\s\"\\@]+$",
        description="the UPS name as upsd knows it (the [section] in ups.conf; list them with `upsc -l HOST`)",
    )
    username: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[^\s\"\\]+$",
        description="upsd.users user; when set the gateway LOGINs like `upsmon secondary`, which checks the password",
    )
    password_file: FilePath | None = Field(
        None,
        description="file holding the upsd password (first line); must be readable only by its owner (chmod 600)",
    )
    interval_s: float = Field(5.0, ge=0.5, le=300, description="seconds between readings of the UPS, 0.5 to 300")
    timeout_s: float = Field(
        5.0, gt=0, le=60, description="seconds to wait for upsd to connect or answer before it counts as unreachable"
    )

    _resolve_paths = field_validator("password_file", mode="before")(resolve_path)

    @field_validator("password_file")
    @classmethod
    def _password_file_private(cls, value: Path | None) -> Path | None:
        # the same rules as [mqtt] password_file (exists, owner-only, not empty), from the same code
        return check_secret_file(value, "password_file")

    @model_validator(mode="after")
    def _pairs(self) -> UpsConfig:
        if (self.username is None) != (self.password_file is None):
            raise ValueError(
                "username and password_file go together under [ups]. Fix: set both (a user of upsd.users), or neither"
            )
        return self

    def read_password(self) -> str | None:
        return read_secret(self.password_file)
