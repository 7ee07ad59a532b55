"""`dcgate sim set door NAME ...`: push, force or close a simulated door, press its exit button.

    open=1        push the door (opens only if the lock lets it)
    open=0        let it swing shut
    force=1       open it whatever the lock says (a crowbar)
    exit=1        press the request-to-exit button (released again once the controller has seen it)
    lock_power=0  cut the lock's supply (fail-safe releases, fail-secure holds); lock_power=1 restores it
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from drivers.errors import InvalidValueError

KEYS = ("open", "force", "exit", "lock_power")
EXIT_HOLD_S = 0.5  # a real press lasts a few hundred ms; long enough for the 0.1 s poll to see it


def _flag(key: str, text: str) -> bool:
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InvalidValueError(f"{key}={text!r}: give 1 or 0")


def set_sim_door(doors: Any, name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    if doors is None:
        raise InvalidValueError("no [[doors]] are configured")
    door = doors.door(name)
    sim = door.sim_door
    if sim is None:
        raise InvalidValueError(f'door {name!r} is wired to real GPIO; only a door with gpio = "sim" can be pushed')
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise InvalidValueError(f"door settings {unknown} are unknown; use {', '.join(KEYS)}")
    result: dict[str, Any] = {}
    for key, raw in values.items():
        on = _flag(key, str(raw).strip().lower())
        if key == "open":
            if on:
                result["opened"] = sim.push_open()
            else:
                sim.close()
        elif key == "force" and on:
            sim.force_open()
        elif key == "exit" and on:
            sim.press_exit()
            # released by a timer, not by the caller: the CLI returns at once, as a person's finger would leave
            threading.Timer(EXIT_HOLD_S, sim.release_exit).start()
        elif key == "lock_power":
            sim.cut_lock_power(not on)
    return result | sim_door_state(sim)


def sim_door_state(sim: Any) -> dict[str, Any]:
    return {"open": sim.is_open, "lock_released": sim.lock_released, "relay_energised": sim.relay_energised}
