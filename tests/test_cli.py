"""The `dcgate` command line against a real gateway process, a real broker and the real store.

Every command is run as a user would type it (`python -m gateway ...` in a subprocess).
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.common import parse_time
from gateway.errors import InvalidValueError
from tests.support.gateway_proc import REPO, GatewayProcess, run_cli
from tests.support.waiting import wait_until

EVENT_KEYS = {"seq", "id", "ts", "kind", "source", "fields", "prev_hash", "hash"}


def cli(config: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--config", str(config), **kwargs)


def events(config: Path, *args: str) -> list[dict[str, Any]]:
    result = cli(config, "events", "--json", *args)
    assert result.returncode == 0, result
    return [json.loads(line) for line in result.stdout.splitlines()]


def status(config: Path) -> dict[str, Any]:
    result = cli(config, "status")
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def probe_ok(gw: GatewayProcess, name: str = "rack1") -> dict[str, Any] | None:
    probe = gw.status()["devices"]["probes"][name]
    return probe if probe["status"] == "ok" else None


@pytest.fixture
def running(make_config: Callable[..., Path], gateway_factory: Callable[..., GatewayProcess]
            ) -> tuple[Path, GatewayProcess]:
    """A gateway with probe rack1 (read every 60 s) that has taken its first reading and reached the broker."""
    config = make_config()
    gw = gateway_factory(config)
    wait_until(lambda: probe_ok(gw) and gw.status()["mqtt"]["connected"], 10, message="first reading and MQTT link")
    return config, gw


# -- status -------------------------------------------------------------------------------------

def test_status_prints_probes_mqtt_and_outbox_depth(running: tuple[Path, GatewayProcess], broker) -> None:
    config, gw = running
    state = status(config)
    assert state["site"] == "test-site" and state["gateway"] == "test-gw" and state["pid"] == gw.process.pid
    rack1 = state["devices"]["probes"]["rack1"]
    assert rack1["status"] == "ok" and rack1["driver"] == "sim" and rack1["interval_s"] == 60
    assert rack1["temperature_c"] == 21.0 and rack1["humidity_pct"] == 50.0 and rack1["error"] is None
    assert state["mqtt"]["connected"] is True
    assert state["store"]["last_seq"] >= 2 and state["store"]["writer"] == "ok"
    wait_until(lambda: status(config)["store"]["outbox_depth"] == 0, 10, message="everything delivered")

    broker.stop()  # now events pile up in the outbox, and status says so
    wait_until(lambda: not status(config)["mqtt"]["connected"], 10, message="status to show the link down")
    assert cli(config, "sim", "set", "probe", "rack1", "temperature=25").returncode == 0
    wait_until(lambda: status(config)["store"]["outbox_depth"] >= 1, 10, message="the reading to wait in the outbox")
    assert status(config)["mqtt"]["last_error"]


def test_status_without_a_running_gateway_exits_3_and_says_to_start_it(make_config: Callable[..., Path]) -> None:
    config = make_config()
    result = cli(config, "status")
    assert result.returncode == 3, result
    assert "the gateway is not running" in result.stderr
    assert "Fix: start it with `dcgate run`" in result.stderr
    assert result.stdout == ""


def test_status_after_a_crash_exits_3_despite_the_stale_socket(running: tuple[Path, GatewayProcess]) -> None:
    config, gw = running
    gw.kill()
    assert gw.config.control_socket_path.exists()  # SIGKILL leaves the socket file behind
    result = cli(config, "status")
    assert result.returncode == 3, result
    assert "Fix: start it with `dcgate run`" in result.stderr


# -- sim ----------------------------------------------------------------------------------------

def test_sim_set_values_appear_in_the_next_reading(running: tuple[Path, GatewayProcess]) -> None:
    config, _gw = running
    before = events(config)[-1]["seq"]
    result = cli(config, "sim", "set", "probe", "rack1", "temperature=27.5", "humidity=50")
    assert result.returncode == 0, result
    reply = json.loads(result.stdout)
    assert reply["probe"] == "rack1"
    assert reply["state"]["temperature_c"] == 27.5 and reply["state"]["humidity_pct"] == 50.0
    reading = wait_until(
        lambda: next((e for e in events(config, "--kind", "env.reading") if e["seq"] > before), None),
        10, message="the next reading",
    )
    assert reading["fields"] == {"probe": "rack1", "temperature_c": 27.5, "humidity_pct": 50.0}
    assert reading["source"] == "probe:rack1"
    shown = json.loads(cli(config, "sim", "show").stdout)
    assert shown["probes"]["rack1"]["temperature_c"] == 27.5


SIM_SET_ERRORS = {
    "unknown_probe": (["probe", "rack9", "temperature=20"], "no simulated probe 'rack9'; configured: rack1"),
    "unknown_key": (["probe", "rack1", "pressure=3"],
                    "probe has no setting 'pressure'; use one of: temperature, humidity, noise, fault"),
    "temperature_out_of_range": (["probe", "rack1", "temperature=200"], "temperature=200 is outside -40..80"),
    "humidity_out_of_range": (["probe", "rack1", "humidity=-1"], "humidity=-1 is outside 0..100"),
    "not_a_number": (["probe", "rack1", "temperature=warm"], "temperature='warm' is not a number"),
    "unknown_fault": (["probe", "rack1", "fault=melted"],
                      "fault='melted' is not one of none, timeout, checksum, disconnected"),
    "no_equals": (["probe", "rack1", "temperature"], "'temperature' is not KEY=VALUE, e.g. temperature=27.5"),
    "no_key": (["probe", "rack1", "=27"], "'=27' is not KEY=VALUE"),
    "no_value": (["probe", "rack1", "temperature="], "'temperature=' is not KEY=VALUE"),
    "all_or_nothing": (["probe", "rack1", "temperature=30", "humidity=200"], "humidity=200 is outside 0..100"),
    "unknown_device_type": (["valve", "main", "open=1"], "invalid choice: 'valve'"),
    "no_doors_configured": (["door", "main", "open=1"], "no [[doors]] are configured"),
}


@pytest.mark.parametrize("name", sorted(SIM_SET_ERRORS))
def test_sim_set_refuses_bad_input_with_a_clear_message(running: tuple[Path, GatewayProcess], name: str) -> None:
    config, _gw = running
    args, message = SIM_SET_ERRORS[name]
    result = cli(config, "sim", "set", *args)
    assert result.returncode != 0, result
    assert message in result.stderr, result.stderr
    assert result.stdout == ""
    world = json.loads(cli(config, "sim", "show").stdout)["probes"]
    assert world == {"rack1": {"temperature_c": 21.0, "humidity_pct": 50.0, "noise": 0.0, "fault": "none"}}


def test_probe_fault_gives_an_event_and_no_value_then_recovers(
    make_config: Callable[..., Path], gateway_factory: Callable[..., GatewayProcess]
) -> None:
    config = make_config(probes=[{"name": "rack1", "driver": "sim", "interval_s": 0.1}])
    gw = gateway_factory(config)
    wait_until(lambda: probe_ok(gw), 10, message="first reading")

    assert cli(config, "sim", "set", "probe", "rack1", "fault=timeout").returncode == 0
    failed = wait_until(lambda: events(config, "--kind", "env.probe_failed"), 10, message="env.probe_failed")
    assert len(failed) == 1 and failed[0]["fields"]["probe"] == "rack1"
    assert "timeout" in failed[0]["fields"]["error"]
    # several more failed polls: still one failure event, and the probe shows no value at all
    wait_until(lambda: gw.status()["devices"]["probes"]["rack1"]["failures"] >= 5, 10, message="5 failed reads")
    rack1 = status(config)["devices"]["probes"]["rack1"]
    assert rack1["status"] == "fault" and "timeout" in rack1["error"]
    assert rack1["temperature_c"] is None and rack1["humidity_pct"] is None
    assert len(events(config, "--kind", "env.probe_failed")) == 1
    assert not [e for e in events(config, "--kind", "env.reading") if e["seq"] > failed[0]["seq"]]

    assert cli(config, "sim", "set", "probe", "rack1", "fault=none", "temperature=23").returncode == 0
    recovered = wait_until(lambda: events(config, "--kind", "env.probe_recovered"), 10, message="recovery")
    assert recovered[0]["fields"] == {"probe": "rack1"} and recovered[0]["seq"] > failed[0]["seq"]
    readings_after = [e for e in events(config, "--kind", "env.reading") if e["seq"] > failed[0]["seq"]]
    assert readings_after and readings_after[0]["seq"] > recovered[0]["seq"]
    assert readings_after[0]["fields"]["temperature_c"] == 23.0
    rack1 = wait_until(lambda: probe_ok(gw), 10, message="status ok again")
    assert rack1["temperature_c"] == 23.0 and rack1["failures"] == 0 and rack1["error"] is None


# -- events -------------------------------------------------------------------------------------

@pytest.fixture
def history(running: tuple[Path, GatewayProcess]) -> tuple[Path, GatewayProcess, list[dict[str, Any]]]:
    """A log with several kinds, spread over distinct milliseconds."""
    config, gw = running
    for values in (["temperature=24"], ["fault=checksum"], ["fault=none"], ["temperature=26"]):
        before = events(config)[-1]["seq"]
        assert cli(config, "sim", "set", "probe", "rack1", *values).returncode == 0
        wait_until(lambda before=before: events(config)[-1]["seq"] > before, 10, message=f"events after {values}")
    wait_until(lambda: events(config, "--kind", "env.reading")[-1]["fields"]["temperature_c"] == 26.0, 10,
               message="the last reading")
    return config, gw, events(config)


def test_events_json_lines_parse_in_commit_order(history) -> None:
    _config, _gw, everything = history
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert all(set(e) == EVENT_KEYS for e in everything)
    assert everything[0]["kind"] == "gateway.started"
    assert {"env.reading", "env.probe_failed", "env.probe_recovered"} <= {e["kind"] for e in everything}


def test_events_text_output_shows_time_seq_kind_and_fields(history) -> None:
    config, _gw, everything = history
    result = cli(config, "events")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == len(everything)
    last = everything[-1]
    assert lines[-1].startswith(f"{last['ts']}  #{last['seq']:<7} {last['kind']}")
    reading = next(i for i, e in enumerate(everything) if e["kind"] == "env.reading")
    assert '"probe"' not in lines[reading] and 'probe="rack1"' in lines[reading]


def test_events_kind_filter_exact_and_prefix(history) -> None:
    config, _gw, everything = history
    readings = events(config, "--kind", "env.reading")
    assert readings == [e for e in everything if e["kind"] == "env.reading"] and len(readings) >= 3
    env = events(config, "--kind", "env.*")
    assert env == [e for e in everything if e["kind"].startswith("env.")]
    assert {e["kind"] for e in env} == {"env.reading", "env.probe_failed", "env.probe_recovered"}
    assert events(config, "--kind", "env") == []  # exact unless it ends in *
    assert events(config, "--kind", "gateway.*") == [e for e in everything if e["kind"].startswith("gateway.")]


def test_events_since_and_until_relative_and_iso(history) -> None:
    config, _gw, everything = history
    assert events(config, "--since", "10m") == everything
    assert events(config, "--until", "10m") == []
    assert events(config, "--since", "1h", "--until", "0s") == everything  # all committed before the command ran
    pivot = next(e["ts"] for previous, e in pairwise(everything) if e["ts"] > previous["ts"])
    later = [e for e in everything if e["ts"] >= pivot]
    earlier = [e for e in everything if e["ts"] < pivot]
    assert later and earlier
    assert events(config, "--since", pivot) == later
    assert events(config, "--until", pivot) == earlier
    moment = datetime.fromisoformat(pivot.replace("Z", "+00:00"))
    in_jakarta = moment.astimezone(timezone(timedelta(hours=7))).isoformat(timespec="milliseconds")
    assert in_jakarta.endswith("+07:00")
    assert events(config, "--since", in_jakarta) == later
    assert events(config, "--since", pivot, "--until", everything[-1]["ts"]) == [
        e for e in later if e["ts"] < everything[-1]["ts"]
    ]


def test_events_last_n(history) -> None:
    config, _gw, everything = history
    assert events(config, "--last", "3") == everything[-3:]
    readings = [e for e in everything if e["kind"] == "env.reading"]
    assert events(config, "--last", "2", "--kind", "env.reading") == readings[-2:]
    assert events(config, "--last", "1000") == everything


def test_events_last_must_be_one_or_more(history) -> None:
    """Regression: `--last 0` printed the whole log and `--last -3` all but the first three events."""
    config, _gw, _everything = history
    for value, message in (("0", "argument --last: 0 is not 1 or more"),
                           ("-3", "argument --last: -3 is not 1 or more"),
                           ("many", "argument --last: 'many' is not a whole number")):
        result = cli(config, "events", "--last", value)
        assert result.returncode == 2, result
        assert message in result.stderr
        assert result.stdout == ""


def test_events_bad_time_is_refused(running: tuple[Path, GatewayProcess]) -> None:
    config, _gw = running
    result = cli(config, "events", "--since", "yesterday")
    assert result.returncode == 2
    assert "time 'yesterday' not understood; use e.g. 15m, 2h, 7d" in result.stderr


class LineReader:
    """Lines of a subprocess' stdout, collected by a thread so the test can wait with a deadline."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), name="follow-reader")
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def collected(self) -> list[str]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def join(self) -> None:
        self._thread.join(10)
        assert not self._thread.is_alive()


@pytest.fixture
def follow_process() -> Iterator[Callable[..., tuple[subprocess.Popen[str], LineReader]]]:
    started: list[tuple[subprocess.Popen[str], LineReader]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], LineReader]:
        proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO)
        reader = LineReader(proc.stdout)
        started.append((proc, reader))
        return proc, reader

    yield start
    for proc, reader in started:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)
        reader.join()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_events_follow_prints_an_event_committed_after_it_started(running, follow_process) -> None:
    config, _gw = running
    current = events(config)[-1]["seq"]
    proc, reader = follow_process("events", "--follow", "--json", "--config", str(config))
    wait_until(lambda: any(json.loads(line)["seq"] == current for line in reader.collected()), 10,
               message="follow to print the existing log")
    assert cli(config, "sim", "set", "probe", "rack1", "temperature=31.25").returncode == 0
    new = wait_until(
        lambda: next((e for e in map(json.loads, reader.collected())
                      if e["kind"] == "env.reading" and e["fields"]["temperature_c"] == 31.25), None),
        10, message="follow to print the new reading",
    )
    assert new["seq"] > current
    printed = [json.loads(line)["seq"] for line in reader.collected()]
    assert printed == list(range(1, len(printed) + 1))  # nothing twice, nothing skipped
    assert proc.poll() is None  # still following
    proc.terminate()
    proc.wait(10)


def test_events_and_verify_work_while_the_gateway_is_stopped(running: tuple[Path, GatewayProcess]) -> None:
    config, gw = running
    while_running = events(config)
    gw.kill()
    stopped = events(config)
    assert stopped[: len(while_running)] == while_running
    assert stopped[0]["kind"] == "gateway.started"
    result = cli(config, "log", "verify")
    assert result.returncode == 0 and result.stdout.startswith(f"OK: {len(stopped)} events, chain intact")


# -- the config option, everywhere ----------------------------------------------------------------

COMMANDS = {
    "status": (["status"], lambda out: json.loads(out)["site"] == "test-site"),
    "events": (["events", "--json", "--last", "1"], lambda out: json.loads(out)["seq"] >= 1),
    "log verify": (["log", "verify"], lambda out: out.startswith("OK: ")),
    "sim show": (["sim", "show"], lambda out: "rack1" in json.loads(out)["probes"]),
    "sim set": (["sim", "set", "probe", "rack1", "noise=0"], lambda out: json.loads(out)["probe"] == "rack1"),
    "config check": (["config", "check"], lambda out: ": OK" in out),
}


@pytest.mark.parametrize("form", ["option_after_command", "option_before_command", "environment"])
def test_every_command_takes_config_after_it_before_it_or_from_the_environment(
    running: tuple[Path, GatewayProcess], tmp_path: Path, form: str
) -> None:
    config, gw = running
    elsewhere = {"DCGATE_CONFIG": str(tmp_path / "not-this-one.toml")}
    for name, (args, good) in COMMANDS.items():
        if form == "option_after_command":
            result = run_cli(*args, "--config", str(config), env=elsewhere)
        elif form == "option_before_command":
            result = run_cli("--config", str(config), *args, env=elsewhere)
        else:
            result = run_cli(*args, env={"DCGATE_CONFIG": str(config)})
        assert result.returncode == 0, (name, result)
        assert good(result.stdout), (name, result.stdout)
    # `run` too: a second gateway on the same data_dir is refused, which it can only know from this config
    if form == "option_after_command":
        result = run_cli("run", "--config", str(config), env=elsewhere, timeout=30)
    elif form == "option_before_command":
        result = run_cli("--config", str(config), "run", env=elsewhere, timeout=30)
    else:
        result = run_cli("run", env={"DCGATE_CONFIG": str(config)}, timeout=30)
    assert result.returncode == 2, result
    assert f"another dcgate (pid {gw.process.pid}) is already running on data_dir {gw.config.data_dir}" in result.stderr
    assert gw.running and probe_ok(gw)  # and the first one did not notice


# -- the control socket -------------------------------------------------------------------------

def test_control_socket_and_data_dir_are_owner_only(running: tuple[Path, GatewayProcess]) -> None:
    _config, gw = running
    sock = os.stat(gw.config.control_socket_path)
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(gw.config.data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(gw.config.database_path).st_mode) == 0o600


def test_malformed_control_requests_get_errors_and_the_gateway_keeps_working(
    running: tuple[Path, GatewayProcess]
) -> None:
    config, gw = running
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(gw.config.control_socket_path))
        stream = sock.makefile("rwb")

        def ask(raw: bytes) -> dict[str, Any]:
            stream.write(raw)
            stream.flush()
            return json.loads(stream.readline())

        reply = ask(b"not json\n")
        assert reply["ok"] is False and reply["error"].startswith("malformed request")
        assert ask(b'{"params": {}}\n')["error"].startswith("malformed request")
        assert ask(b'{"op": "status", "params": [1]}\n')["error"].startswith("malformed request")
        assert ask(b"[1, 2]\n")["error"].startswith("malformed request")
        unknown = ask(b'{"op": "reboot"}\n')
        known = ("alarm.ack, alarm.list, backup.list, backup.run, door.present, door.status, enroll.face, "
                 "enroll.finger, finger.sync, inside, person.activate, person.add, person.deactivate, person.list, "
                 "person.revoke, probe.read, sim.set, sim.show, status, user.add, user.disable, user.enable, "
                 "user.list, user.passwd, user.role, visit.admit, visit.approve, visit.arrive, visit.checkout, "
                 "visit.extend, visit.list, visit.minutes, visit.reject, visit.request, visit.show")
        assert unknown == {"ok": False, "error": f"unknown operation 'reboot'; known: {known}"}
        bad_params = ask(b'{"op": "sim.set", "params": {"device": "probe"}}\n')
        assert bad_params == {"ok": False, "error": "sim.set needs device, name and values", "exit_code": 2}
        # the same connection still answers a good request
        good = ask(b'{"op": "status"}\n')
        assert good["ok"] is True and good["result"]["devices"]["probes"]["rack1"]["status"] == "ok"
        too_large = ask(b"x" * (70 * 1024) + b"\n")
        assert too_large == {"ok": False, "error": "request too large"}
        stream.close()

    assert cli(config, "sim", "set", "probe", "rack1", "temperature=22.5").returncode == 0
    wait_until(lambda: any(e["fields"]["temperature_c"] == 22.5 for e in events(config, "--kind", "env.reading")),
               10, message="a reading after the malformed requests")
    assert status(config)["store"]["writer"] == "ok"


# -- parse_time ---------------------------------------------------------------------------------

NOW = datetime(2026, 11, 21, 8, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("30s", "2026-11-21T08:29:45.123Z"),
    ("15m", "2026-11-21T08:15:15.123Z"),
    ("2h", "2026-11-21T06:30:15.123Z"),
    ("1.5h", "2026-11-21T07:00:15.123Z"),
    ("7d", "2026-11-14T08:30:15.123Z"),
    (" 10 m ", "2026-11-21T08:20:15.123Z"),
    ("0s", "2026-11-21T08:30:15.123Z"),
])
def test_parse_time_relative(text: str, expected: str) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-21T08:30+07:00", "2026-11-21T01:30:00.000Z"),
    ("2026-11-21T01:30:00Z", "2026-11-21T01:30:00.000Z"),
    ("2026-11-21T01:30:00.987654+00:00", "2026-11-21T01:30:00.987Z"),  # milliseconds, truncated
    ("2026-11-21 08:30:00-05:00", "2026-11-21T13:30:00.000Z"),
])
def test_parse_time_iso_with_zone(text: str, expected: str) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.fixture
def western_indonesia_time() -> Iterator[None]:
    """This machine's local time set to UTC+7 (a POSIX TZ rule: no tz database needed)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "WIB-7"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_parse_time_naive_is_local_time(western_indonesia_time: None) -> None:
    assert parse_time("2026-11-21T08:30") == "2026-11-21T01:30:00.000Z"
    assert parse_time("2026-11-21") == "2026-11-20T17:00:00.000Z"


@pytest.mark.parametrize("text", ["yesterday", "10x", "", "-5m", "15 minutes", "2026-13-01", "m"])
def test_parse_time_refuses_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(InvalidValueError, match=re.escape("not understood; use e.g. 15m, 2h, 7d")):
        parse_time(text, now=NOW)
