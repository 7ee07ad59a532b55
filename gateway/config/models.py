"""The configuration schema: one TOML file, validated strictly.

Field names are a contract that users' files and other modules rely on: extend, never rename.
Every field has a description; `gateway.config.loader` uses it to tell the user how to fix a value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from gateway.config.access import AccessConfig
from gateway.config.base import (
    SLUG,
    FilePath,
    ProbeBase,
    StrictModel,
    check_readable_file,
    check_secret_file,
    read_secret,
    resolve_path,
)
from gateway.config.doors import DoorList
from gateway.config.modbus import ModbusRtuProbeConfig, ModbusTcpProbeConfig, bus_conflicts
from gateway.config.power import PowerConfig
from gateway.config.thresholds import ThresholdConfig
from gateway.config.ups import UpsConfig
from gateway.config.visits import VisitsConfig
from gateway.config.web import BackupConfig, WebConfig


class MqttConfig(StrictModel):
    host: str = Field(
        "127.0.0.1", min_length=1, title="Broker host", description="host name or IP address of the MQTT broker"
    )
    port: int = Field(1883, ge=1, le=65535, title="Broker port", description="TCP port of the broker, 1 to 65535")
    username: str | None = Field(None, min_length=1, description="user name for the broker, if it requires one")
    password_file: FilePath | None = Field(
        None,
        description="file holding the broker password (first line); must be readable only by its owner (chmod 600)",
    )
    tls_ca: FilePath | None = Field(
        None, description="CA certificate (PEM) that signed the broker's certificate; enables TLS"
    )
    tls_cert: FilePath | None = Field(None, description="client certificate (PEM) for mutual TLS; needs tls_key")
    tls_key: FilePath | None = Field(None, description="client private key (PEM) for mutual TLS; needs tls_cert")
    base_topic: str | None = Field(
        None,
        min_length=1,
        pattern=r"^[^#+\s]+[^#+\s/]$",
        description='topic prefix for everything published; default "dcgate/{site}/{gateway}"; no wildcards',
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=64, description='MQTT client id; default "dcgate-{site}-{gateway}"'
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="seconds between MQTT keep-alive pings, 5 to 3600")
    reconnect_min_s: float = Field(1.0, gt=0, le=60, description="first reconnect delay in seconds (doubles each try)")
    reconnect_max_s: float = Field(60.0, gt=0, le=3600, description="longest reconnect delay in seconds")
    discovery: bool = Field(
        True, strict=True, description="announce every probe and power quantity to Home Assistant (MQTT discovery)"
    )
    discovery_prefix: str = Field(
        "homeassistant", pattern=r"^[A-Za-z0-9_-]+$", description="Home Assistant's discovery topic prefix"
    )
    inflight: int = Field(
        200, ge=1, le=10000, description="QoS 1 messages sent but not yet acknowledged by the broker, at most"
    )

    _resolve_paths = field_validator("password_file", "tls_ca", "tls_cert", "tls_key", mode="before")(resolve_path)

    @field_validator("password_file")
    @classmethod
    def _password_file_private(cls, value: Path | None) -> Path | None:
        return check_secret_file(value, "password_file")

    @field_validator("tls_ca", "tls_cert", "tls_key")
    @classmethod
    def _tls_file_readable(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return check_readable_file(value, info.field_name)

    @model_validator(mode="after")
    def _pairs(self) -> MqttConfig:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file is set but username is not. Fix: add username = \"...\" under [mqtt]")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together. Fix: set both, or neither")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is smaller than reconnect_min_s. Fix: make it at least as large")
        return self

    def read_password(self) -> str | None:
        return read_secret(self.password_file)


class OutboxConfig(StrictModel):
    max_rows: int = Field(
        1_000_000,
        ge=100,
        description="undelivered events kept for MQTT at most; the oldest are dropped (and that drop recorded) beyond",
    )
    max_age_days: float = Field(
        90.0, gt=0, description="undelivered events older than this many days are dropped from the outbox (recorded)"
    )


class StoreConfig(StrictModel):
    synchronous: Literal["full", "normal"] = Field(
        "full",
        description='SQLite durability: "full" survives power loss (default), "normal" is faster on slow SD cards',
    )
    housekeeping_s: float = Field(
        10.0, gt=0, le=3600, description="seconds between outbox bound checks done by the store writer"
    )
    readings_raw_days: float = Field(
        7.0, gt=0, description="days each raw env.reading keeps its payload; older readings live on as per-minute "
                               "aggregates (the chain keeps their hashes, so `dcgate log verify` still checks it)"
    )
    readings_minute_days: float = Field(
        90.0, gt=0, description="days per-minute aggregates are kept; older ones are folded into hourly "
                                "aggregates, which are kept for good"
    )


class SimProbeConfig(ProbeBase):
    driver: Literal["sim"] = Field(description='probe driver; "sim" simulates a probe on any machine')
    interval_s: float = Field(
        10.0, ge=0.001, le=86400, description="seconds between readings of this probe (0.001 to 86400 for sim)"
    )
    temperature_c: float = Field(21.0, ge=-40, le=80, description="simulated starting room temperature, °C")
    humidity_pct: float = Field(50.0, ge=0, le=100, description="simulated starting relative humidity, %")
    noise: float = Field(0.0, ge=0, le=5, description="simulated random variation added to each reading (± this much)")


class DhtProbeConfig(ProbeBase):
    driver: Literal["dht22", "dht11"] = Field(description='"dht22" (AM2302) or "dht11" on a GPIO pin of the Pi')
    pin: int = Field(ge=0, le=27, description="the GPIO (BCM) number the data line is on, e.g. 4 for GPIO4 (pin 7)")
    interval_s: float = Field(
        30.0, ge=10, le=86400,
        description="seconds between readings, at least 10: one reading may retry for about 6 s "
                    "(the sensor answers at most every 2 s)",
    )


ProbeConfig = Annotated[
    SimProbeConfig | DhtProbeConfig | ModbusRtuProbeConfig | ModbusTcpProbeConfig, Field(discriminator="driver")
]

#: `driver = "..."` value -> its config class; the loader uses it to explain errors inside [[probes]]
PROBE_DRIVERS: dict[str, type[BaseModel]] = {
    "sim": SimProbeConfig, "dht22": DhtProbeConfig, "dht11": DhtProbeConfig,
    "modbus-rtu": ModbusRtuProbeConfig, "modbus-tcp": ModbusTcpProbeConfig,
}


class LoggingConfig(StrictModel):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="least severe log level written")


class Config(StrictModel):
    site: str = Field(pattern=SLUG, max_length=48, description='site slug, [a-z0-9-], e.g. "diskominfo-jambi"')
    gateway: str = Field(
        pattern=SLUG, max_length=48, description='this gateway\'s slug, [a-z0-9-], e.g. "ruang-server-1"'
    )
    data_dir: FilePath = Field(
        description="directory for the database and control socket; relative paths are relative to the config file"
    )
    mqtt: MqttConfig = Field(description="the upstream MQTT broker")
    store: StoreConfig = Field(default_factory=StoreConfig, description="event store settings")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="bounds of the MQTT outbox")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="service logging")
    shutdown_flush_s: float = Field(
        5.0, ge=0, le=120, description="on SIGTERM, seconds to keep forwarding the outbox before disconnecting"
    )
    probes: list[ProbeConfig] = Field(default_factory=list, description="temperature and humidity probes")
    thresholds: ThresholdConfig = Field(
        default_factory=ThresholdConfig,
        description="alarm limits for every probe (the room standard by default); a probe may change some",
    )
    ups: UpsConfig | None = Field(None, description="the UPS, read through Network UPS Tools (upsd)")
    power: PowerConfig | None = Field(
        None, description="the automatic transfer switch (ATS), the generator and its fuel: [power.ats], "
                          "[power.generator]"
    )
    access: AccessConfig = Field(
        default_factory=AccessConfig,
        description="who may enter when: the template key, the time zone, second-factor window, role rules",
    )
    doors: DoorList = Field(default_factory=list, description="[[doors]]: the doors this gateway controls")
    visits: VisitsConfig = Field(
        default_factory=VisitsConfig,
        description="guest and vendor visits: time limits, the escort's admission window, ID number retention",
    )
    web: WebConfig | None = Field(
        None, description="the web console served on the LAN: listen address, port, HTTPS, sessions, sign-in "
                          "throttling; without [web] there is no console",
    )
    backup: BackupConfig | None = Field(
        None, description="scheduled database backups: directory, interval (weekly) and how long they are kept "
                          "(one year); without [backup] only `dcgate backup --to DIR` makes them",
    )

    @model_validator(mode="after")
    def _doors_need_a_key_and_free_pins(self) -> Config:
        if self.doors and self.access.key_file is None:
            raise ValueError(
                "[[doors]] are configured but access.key_file is not set; biometric templates are stored "
                "encrypted. Fix: dcgate key generate /etc/dcgate/biometric.key, then [access] key_file = that path"
            )
        power_pins: dict[int, str] = {}
        if self.power is not None:
            ats = self.power.ats
            for key in ("mains_pin", "generator_pin"):
                if ats is not None and getattr(ats, key, None) is not None:
                    power_pins[getattr(ats, key)] = f"power.ats.{key}"
            generator = self.power.generator
            if generator is not None and getattr(generator, "running_pin", None) is not None:
                power_pins[generator.running_pin] = "power.generator.running_pin"
        for door in self.doors:
            if door.gpio == "sim":
                continue
            for key, pin in door.pins().items():
                if pin in power_pins:
                    raise ValueError(f"pin {pin} is {power_pins[pin]} and door {door.name!r} {key}. "
                                     "Fix: one pin per signal")
        return self

    @model_validator(mode="after")
    def _probe_thresholds(self) -> Config:
        for probe in self.probes:
            if probe.thresholds:
                try:
                    self.thresholds.with_overrides(probe.thresholds)
                except ValidationError as exc:
                    problems = "; ".join(
                        f"{'.'.join(map(str, e['loc'])) or 'thresholds'}: {e['msg'].removeprefix('Value error, ')}"
                        for e in exc.errors(include_url=False)
                    )
                    raise ValueError(f"probe {probe.name!r} thresholds: {problems}") from None
        return self

    def thresholds_for(self, probe: str) -> ThresholdConfig:
        """The site's thresholds with this probe's own changes applied."""
        overrides = next((p.thresholds for p in self.probes if p.name == probe), None)
        return self.thresholds.with_overrides(overrides) if overrides else self.thresholds

    _resolve_data_dir = field_validator("data_dir", mode="before")(resolve_path)

    @field_validator("probes")
    @classmethod
    def _unique_probe_names(cls, probes: list[ProbeBase]) -> list[ProbeBase]:
        # a field validator (not a model one) so the error names `probes` and is reported with the other problems
        seen: set[str] = set()
        for probe in probes:
            if probe.name in seen:
                raise ValueError(f"probe name {probe.name!r} is used twice. Fix: give every [[probes]] its own name")
            seen.add(probe.name)
        conflicts = bus_conflicts(probes)
        if conflicts:
            raise ValueError("; ".join(conflicts))
        return probes

    @property
    def base_topic(self) -> str:
        return self.mqtt.base_topic or f"dcgate/{self.site}/{self.gateway}"

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"dcgate-{self.site}-{self.gateway}"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "dcgate.db"

    @property
    def control_socket_path(self) -> Path:
        return self.data_dir / "control.sock"

    @property
    def secrets(self) -> list[str]:
        """Values that must never reach a log line."""
        password = self.mqtt.read_password()
        ups_password = self.ups.read_password() if self.ups else None
        sensors = [read_secret(reader.password_file) for door in self.doors
                   for reader in (door.fingerprint, door.exit_fingerprint) if reader is not None]
        return [s for s in (password, ups_password, *sensors) if s]
