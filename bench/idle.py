"""Idle cost: CPU and peak memory of a running gateway with the simulator's probes and door, against bare Python.

Run from the repository root:

    .venv/bin/python bench/idle.py [--seconds 30]

Starts a local mosquitto and `dcgate run` (as `python -m gateway run`) with the probes and the door of
hardware/config/sim.toml (its fingerprint sensor polled over a pty, its camera idle), but a
temporary data_dir and this bench's broker port. Once the
gateway reports it is connected (and after a short settle time), it measures over `--seconds`:

* CPU time (user + system) of the gateway process, as % of one core;
* its peak resident memory (VmHWM in /proc/PID/status), in MB.

In the same window, an idle `python -c "import time; time.sleep(...)"` from the same interpreter
is measured the same way, so the figures stand against bare Python. The gateway is not queried
during the window (a status call would itself cost CPU). Human-readable lines first; the last
line is one JSON object with the figures, the baseline, the targets and pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.configs import write_config  # noqa: E402
from tests.support.gateway_proc import GatewayProcess  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

SIM_CONFIG = REPO / "hardware" / "config" / "sim.toml"
TARGET_CPU_PCT = 2.0
TARGET_PEAK_RSS_MB = 100.0
#: a door camera loads dlib's models (HOG, 5- and 68-point landmarks, ResNet encoder): ~165 MB on their own
#: (bench/face.py measures it), so a gateway with a face door gets that much more
FACE_MODELS_BUDGET_MB = 200.0

try:  # psutil is in the dev extra; /proc is the fallback (Linux only either way, for VmHWM)
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, flush=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children), in seconds."""
    if psutil is not None:
        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after "pid (comm)": state is field 3, utime field 14 and stime field 15 (1-based, man 5 proc)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory, in MB (10^6 bytes)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) * 1024 / 1e6  # reported in kB
    return {"peak_rss_mb": round(values["VmHWM"], 1), "rss_mb": round(values["VmRSS"], 1)}


def context_switches(pid: int) -> tuple[int, int]:
    """(threads, context switches summed over them): how often the process wakes up, idle or not."""
    total, threads = 0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        threads += 1
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return threads, total


class Sample:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.switches0 = context_switches(pid)[1]
        self.cpu0, self.t0 = cpu_seconds(pid), time.monotonic()

    def finish(self) -> dict[str, float]:
        cpu, elapsed = cpu_seconds(self.pid) - self.cpu0, time.monotonic() - self.t0
        threads, switches = context_switches(self.pid)
        return {"cpu_pct_of_one_core": round(100 * cpu / elapsed, 3), "cpu_s": round(cpu, 4),
                "window_s": round(elapsed, 2), **memory_mb(self.pid), "threads": threads,
                "wakeups_per_s": round((switches - self.switches0) / elapsed, 1)}


def _has_face_door() -> bool:
    config = tomllib.loads(SIM_CONFIG.read_text(encoding="utf-8"))
    return any("camera" in door for door in config.get("doors", []))


def sim_config(data_dir: Path, port: int) -> dict[str, Any]:
    """hardware/config/sim.toml with this bench's data_dir and broker port."""
    config = tomllib.loads(SIM_CONFIG.read_text(encoding="utf-8"))
    config["data_dir"] = str(data_dir)
    config["mqtt"] = {**config.get("mqtt", {}), "host": "127.0.0.1", "port": port}
    if "web" in config:  # the console listens, idle: nobody is signed in during the window
        from tests.support.ports import free_port

        config["web"] = {**config["web"], "port": free_port()}
    if "backup" in config:
        config["backup"] = {**config["backup"], "dir": str(data_dir.parent / "backups")}
    if "access" in config:  # the sim door's template key, made for this run
        from access.crypto import generate_key_file

        config["access"]["key_file"] = str(generate_key_file(data_dir.parent / "biometric.key"))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measurement window (default 30)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to wait after the gateway is connected, before measuring (default 3)")
    args = parser.parse_args(argv)

    log(f"dcgate idle bench: {args.seconds:g} s window after {args.settle:g} s settle, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"CPU via {'psutil' if psutil is not None else '/proc/PID/stat'}, peak RSS via /proc/PID/status VmHWM")
    with tempfile.TemporaryDirectory(prefix="dcgate-idle-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "mosquitto").start()
        gateway: GatewayProcess | None = None
        sleeper: subprocess.Popen[bytes] | None = None
        try:
            config_path = write_config(workdir / "dcgate.toml", sim_config(workdir / "data", broker.port))
            gateway = GatewayProcess(config_path).start()
            wait_until(lambda: gateway.status()["mqtt"]["connected"], 30, message="the gateway to connect")
            probes = sorted(gateway.status()["devices"]["probes"])
            sleeper = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({args.seconds + 60:g})"])
            time.sleep(args.settle)  # let start-up work (first readings, first publish) pass
            before = gateway.status()["store"]["last_seq"]
            assert gateway.process is not None
            gw_sample, py_sample = Sample(gateway.process.pid), Sample(sleeper.pid)
            time.sleep(args.seconds)
            gw, py = gw_sample.finish(), py_sample.finish()
            status = gateway.status()
            events = status["store"]["last_seq"] - before
            if not status["mqtt"]["connected"] or status["store"]["outbox_depth"] > len(probes):
                raise RuntimeError(f"gateway not forwarding during the window: {status['mqtt']}, "
                                   f"outbox depth {status['store']['outbox_depth']}")
        finally:
            if sleeper is not None:
                sleeper.kill()
                sleeper.wait(10)
            if gateway is not None and gateway.running:
                gateway.terminate()
            broker.stop()

    log(f"gateway      : {gw['cpu_pct_of_one_core']:.2f} % of one core ({gw['cpu_s']:.3f} s CPU in "
        f"{gw['window_s']:.1f} s), peak RSS {gw['peak_rss_mb']:.1f} MB (now {gw['rss_mb']:.1f} MB), "
        f"{gw['threads']} threads, {gw['wakeups_per_s']:.1f} wake-ups/s; "
        f"{events} events committed in the window from probes {', '.join(probes)}")
    log(f"bare python  : {py['cpu_pct_of_one_core']:.2f} % of one core ({py['cpu_s']:.3f} s CPU), "
        f"peak RSS {py['peak_rss_mb']:.1f} MB, {py['wakeups_per_s']:.1f} wake-ups/s")
    rss_target = TARGET_PEAK_RSS_MB + (FACE_MODELS_BUDGET_MB if _has_face_door() else 0.0)
    passed = {"cpu": gw["cpu_pct_of_one_core"] < TARGET_CPU_PCT, "peak_rss": gw["peak_rss_mb"] < rss_target}
    log(f"targets: idle CPU < {TARGET_CPU_PCT:g} % of one core: {'pass' if passed['cpu'] else 'FAIL'}; "
        f"peak RSS < {rss_target:g} MB ({TARGET_PEAK_RSS_MB:g} + {FACE_MODELS_BUDGET_MB:g} for the face models when "
        f"a door has a camera): {'pass' if passed['peak_rss'] else 'FAIL'}")
    result = {
        "seconds": args.seconds,
        "probes": probes,
        "events_in_window": events,
        "gateway": gw,
        "baseline_bare_python": py,
        "gateway_minus_baseline": {
            "cpu_pct_of_one_core": round(gw["cpu_pct_of_one_core"] - py["cpu_pct_of_one_core"], 3),
            "peak_rss_mb": round(gw["peak_rss_mb"] - py["peak_rss_mb"], 1),
        },
        "targets": {"cpu_pct_of_one_core": TARGET_CPU_PCT, "peak_rss_mb": rss_target},
        "pass": passed,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "cpu_source": "psutil" if psutil is not None else "/proc",
        "cpu_resolution_pct": round(100 / CLK_TCK / args.seconds, 3),  # one clock tick over the window
    }
    print(json.dumps(result), flush=True)
    return 0 if all(passed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
