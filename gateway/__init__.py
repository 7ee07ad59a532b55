"""dcgate: the server-room gateway service (config, store, event pipeline, MQTT, CLI)."""

__version__ = "0.1.0"

#: version of the JSON payload published upstream; bump on incompatible changes
EVENT_SCHEMA_VERSION = 1
