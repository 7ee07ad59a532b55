"""Modbus RTU poll cycle: 8 dcgate probes on one bus against a bare pymodbus client loop.

Run from the repository root:

    .venv/bin/python bench/modbus_poll.py [--cycles 30] [--rounds 5] [--units 8]

A `socat` pty pair is the bus; the emulated XY-MD02 units (`python -m drivers.sim.modbus_device`,
its own process, so it does not share this process's GIL) answer on one end. On the other end:

* baseline: a bare `pymodbus.client.ModbusSerialClient` reading input registers 1-2 of each unit
  in a loop, scaling by 10;
* dcgate: one poll cycle as the probe poller does it, `probe.read()` of 8 `ModbusClimateProbe`s
  sharing one `ModbusBus` from a `BusRegistry`.

Both sides read the same registers in the same run, alternating rounds, and every reading is
checked. A pty does not throttle to the baud rate, so the measured time is software time; the
wire time a real 9600-baud bus would add is computed from the frame sizes and shown next to it.
Human-readable lines first; the last line is one JSON object with the figures and pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pymodbus.client import ModbusSerialClient  # noqa: E402

from drivers.climate import ClimateReading  # noqa: E402
from drivers.modbus import BusRegistry, ModbusClimateProbe, SerialSettings, built_in  # noqa: E402
from tests.support.socat import PtyPair  # noqa: E402

TARGET_RATIO = 1.2
BAUD = 9600
REQUEST_BYTES = 8  # unit, function, address (2), count (2), CRC (2)
RESPONSE_BYTES = 9  # unit, function, byte count, 2 registers (4), CRC (2)


def wire_time_ms(baud: int = BAUD) -> float:
    """One read of 2 registers at 8N1: both frames plus the 3.5-character silence after each."""
    char_s = 10 / baud
    return 1000 * char_s * (REQUEST_BYTES + RESPONSE_BYTES + 2 * 3.5)


def expected(unit: int) -> ClimateReading:
    return ClimateReading(round(20.0 + unit / 10, 1), round(40.0 + unit, 1))


def start_device(port: Path, units: int) -> subprocess.Popen[str]:
    device = subprocess.Popen(
        [sys.executable, "-m", "drivers.sim.modbus_device", "--port", str(port), "--units", f"1-{units}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    assert device.stdout is not None and device.stdin is not None
    line = device.stdout.readline()  # blocks until the emulator listens: its first line is "ready: ..."
    if not line.startswith("ready"):
        raise RuntimeError(f"modbus emulator did not start: {line!r}")
    for unit in range(1, units + 1):
        value = expected(unit)
        device.stdin.write(f"set {unit} temperature={value.temperature_c} humidity={value.humidity_pct}\n")
        device.stdin.flush()
        device.stdout.readline()  # the emulator confirms each change before the next
    return device


def bare_cycle(client: ModbusSerialClient, units: list[int]) -> list[ClimateReading]:
    readings = []
    for unit in units:
        response = client.read_input_registers(1, count=2, device_id=unit)
        if response.isError():
            raise RuntimeError(f"bare client: unit {unit} answered {response}")
        t, h = (r - 0x10000 if r & 0x8000 else r for r in response.registers)
        readings.append(ClimateReading(t / 10, h / 10))
    return readings


def dcgate_cycle(probes: list[ModbusClimateProbe]) -> list[ClimateReading]:
    return [probe.read() for probe in probes]


def timed(cycle: Any, cycles: int, want: list[ClimateReading]) -> tuple[float, float]:
    """Median wall seconds per cycle, and this process's CPU seconds per cycle."""
    cycle()  # warm: the port was just (re)opened
    times = []
    cpu0 = time.process_time()
    for _ in range(cycles):
        t0 = time.perf_counter()
        got = cycle()
        times.append(time.perf_counter() - t0)
        if got != want:
            raise RuntimeError(f"wrong readings: {got} != {want}")
    return statistics.median(times), (time.process_time() - cpu0) / cycles


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30, help="poll cycles per round and side (default 30)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--units", type=int, default=8, help="probes on the bus (default 8)")
    args = parser.parse_args(argv)
    units = list(range(1, args.units + 1))
    want = [expected(u) for u in units]
    result: dict[str, Any] = {"units": args.units, "cycles": args.cycles, "rounds": args.rounds, "baud": BAUD}
    samples: dict[str, list[float]] = {"bare_ms": [], "dcgate_ms": [], "bare_cpu_ms": [], "dcgate_cpu_ms": []}
    error = None
    with tempfile.TemporaryDirectory(prefix="dcgate-modbus-bench-") as tmp:
        pair = PtyPair(Path(tmp) / "ttyDEVICE", Path(tmp) / "ttyGATEWAY").start()
        device = start_device(pair.a, args.units)
        registry = BusRegistry()
        settings = SerialSettings(str(pair.b), BAUD)
        probes = [ModbusClimateProbe(f"p{u}", registry.rtu(settings), u, built_in("xy-md02"), timeout_s=0.5)
                  for u in units]
        bare = ModbusSerialClient(str(pair.b), baudrate=BAUD, timeout=0.5, retries=0)
        try:
            for _ in range(args.rounds):
                # one side at a time holds the port: both open it exclusively, like the real gateway
                bare.connect()
                wall, cpu = timed(lambda: bare_cycle(bare, units), args.cycles, want)
                bare.close()
                samples["bare_ms"].append(1000 * wall)
                samples["bare_cpu_ms"].append(1000 * cpu)
                wall, cpu = timed(lambda: dcgate_cycle(probes), args.cycles, want)
                probes[0].bus.close()
                samples["dcgate_ms"].append(1000 * wall)
                samples["dcgate_cpu_ms"].append(1000 * cpu)
        except Exception as exc:  # still print the JSON line, marked failed
            error = f"{type(exc).__name__}: {exc}"
        finally:
            bare.close()
            for probe in probes:
                probe.close()
            assert device.stdin is not None
            device.stdin.close()  # end of input stops the emulator
            device.wait(10)
            if device.stdout:
                device.stdout.close()
            pair.stop()
    if error is None:
        bare_ms, dcgate_ms = statistics.median(samples["bare_ms"]), statistics.median(samples["dcgate_ms"])
        ratio = dcgate_ms / bare_ms
        per_tx = {"bare": bare_ms / len(units), "dcgate": dcgate_ms / len(units)}
        cpu_tx = {side: statistics.median(samples[f"{side}_cpu_ms"]) / len(units) for side in ("bare", "dcgate")}
        wire = wire_time_ms()
        print(f"{len(units)} XY-MD02 probes on one pty bus at {BAUD} baud, {args.rounds} rounds × {args.cycles} cycles")
        print(f"bare pymodbus loop: {bare_ms:7.2f} ms per cycle, {per_tx['bare']:5.2f} ms per transaction "
              f"({cpu_tx['bare']:.2f} ms CPU)")
        print(f"dcgate probes:      {dcgate_ms:7.2f} ms per cycle, {per_tx['dcgate']:5.2f} ms per transaction "
              f"({cpu_tx['dcgate']:.2f} ms CPU)")
        print(f"ratio dcgate / bare: {ratio:.3f} (target ≤ {TARGET_RATIO})")
        print(f"wire time at {BAUD} baud (not simulated by the pty): {wire:.1f} ms per transaction, "
              f"{wire * len(units):.0f} ms per cycle")
        result.update({
            "bare_ms_per_cycle": round(bare_ms, 3), "dcgate_ms_per_cycle": round(dcgate_ms, 3),
            "ratio": round(ratio, 3),
            "software_ms_per_transaction": {k: round(v, 3) for k, v in per_tx.items()},
            "cpu_ms_per_transaction": {k: round(v, 3) for k, v in cpu_tx.items()},
            "wire_ms_per_transaction": round(wire, 2),
            "samples": {k: [round(v, 3) for v in vs] for k, vs in samples.items()},
        })
        passed = ratio <= TARGET_RATIO
    else:
        print(f"bench failed: {error}", file=sys.stderr)
        passed = False
    result.update({"targets": {"ratio": TARGET_RATIO}, "pass": {"ratio": passed, "verified": error is None},
                   "error": error, "python": platform.python_version(), "cores": os.cpu_count()})
    print(json.dumps(result), flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
