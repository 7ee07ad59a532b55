"""Power: the UPS (through Network UPS Tools) and the outage log the SOP asks for."""

from gateway.power.outages import OutageRecord, build_outages, month_bounds
from gateway.power.ups import UpsMonitor, UpsReading, client_from_config, parse_status

__all__ = [
    "OutageRecord",
    "UpsMonitor",
    "UpsReading",
    "build_outages",
    "client_from_config",
    "month_bounds",
    "parse_status",
]
