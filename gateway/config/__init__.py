"""Configuration: one TOML file, validated strictly (see `models`), loaded with clear errors (see `loader`)."""

from gateway.config.loader import CONFIG_ENV, DEFAULT_CONFIG_PATH, default_config_path, load_config
from gateway.config.models import Config, MqttConfig, OutboxConfig, SimProbeConfig, StoreConfig

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG_PATH",
    "Config",
    "MqttConfig",
    "OutboxConfig",
    "SimProbeConfig",
    "StoreConfig",
    "default_config_path",
    "load_config",
]
