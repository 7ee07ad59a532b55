"""The gateway service: owns the data directory, wires store, forwarder, devices and control socket.

Start order follows the data flow (store first, so nothing is produced before it can be kept);
stop order is the reverse, so the last events (`gateway.stopped`) are committed and, within
`shutdown_flush_s`, forwarded before `offline` is published.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from typing import Any

from drivers.sim import SimWorld
from gateway import __version__
from gateway.alarms import AlarmManager
from gateway.config.models import Config
from gateway.datadir import DataDirLock
from gateway.devices import Buses, build_probes
from gateway.errors import InvalidValueError
from gateway.mqtt.discovery import (
    env_state_payload,
    env_state_topic,
    power_discovery,
    probe_discovery,
    ups_discovery,
    ups_state_topic,
)
from gateway.mqtt.forwarder import Forwarder
from gateway.power.ups import UpsMonitor, client_from_config
from gateway.probes import ProbePoller, ProbeState
from gateway.store.events import utc_timestamp
from gateway.store.writer import StoreWriter
from gateway.systemd import SystemdNotifier

log = logging.getLogger(__name__)

#: seconds between checks that the writer and forwarder threads are alive (also the longest
#: watchdog ping interval)
HEALTH_CHECK_S = 5.0


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.world = SimWorld()
        self._stop = threading.Event()
        self._stop_reason = "requested"
        self._ready = False
        self._notifier = SystemdNotifier()
        self._lock: DataDirLock | None = None
        self._started_at = time.time()
        self.writer: StoreWriter | None = None
        self.forwarder: Forwarder | None = None
        self.poller: ProbePoller | None = None
        self._control: Any = None
        self.alarms: AlarmManager | None = None
        self.ups: UpsMonitor | None = None
        self.power: Any = None
        self.doors: Any = None  # gateway.doors.DoorSet, when [[doors]] are configured
        self.desk: Any = None  # gateway.access_desk.AccessDesk
        self.visit_desk: Any = None  # gateway.visit_desk.VisitDesk
        self.users: Any = None  # gateway.web.users.UserBook
        self.web: Any = None  # gateway.web.server.WebServer, when [web] is configured
        self.backups: Any = None  # gateway.backup.BackupScheduler, when [backup] is configured
        self._console: Any = None  # gateway.web.context.ConsoleContext

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        # handlers first: a SIGTERM during start-up still ends in a clean stop, not a killed writer
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: self.request_stop(signal.Signals(number).name))
        cfg = self.config
        self._lock = DataDirLock(cfg.data_dir)
        self._lock.acquire()
        previous = _previous_shutdown(cfg)
        self.writer = StoreWriter(
            cfg.database_path,
            synchronous=cfg.store.synchronous,
            outbox=cfg.outbox,
            housekeeping_s=cfg.store.housekeeping_s,
            readings=cfg.store,
        )
        self.forwarder = Forwarder(cfg, self.writer.mark_delivered, self.writer.last_seq)
        self.writer.on_commit = self.forwarder.notify_commit
        self.writer.start()
        self.writer.append_and_wait(
            "gateway.started", "gateway",
            {"version": __version__, "pid": os.getpid(), "previous_shutdown": previous,
             "probes": [p.name for p in cfg.probes]},
        )
        self.forwarder.start()
        if cfg.mqtt.discovery:
            configs = [probe_discovery(cfg, probe.name) for probe in cfg.probes]
            if cfg.ups is not None:
                configs.append(ups_discovery(cfg))
            if cfg.power is not None:
                configs.append(power_discovery(cfg, ats=cfg.power.ats is not None,
                                               generator=cfg.power.generator is not None))
            for entities in configs:
                for topic, payload in entities.items():
                    self.forwarder.publish_retained(topic, payload)
        self.alarms = AlarmManager(cfg, self._emit)
        buses = Buses()
        self.poller = ProbePoller(build_probes(cfg, self.world, buses), {p.name: p.interval_s for p in cfg.probes},
                                  self._emit, on_state=self._on_probe_state)
        self.poller.start()
        if cfg.ups is not None:
            self.ups = UpsMonitor(client_from_config(cfg.ups), cfg.ups.name, cfg.ups.interval_s, self._emit)
            self.ups.start()
        if cfg.power is not None:
            from gateway.power.generator import PowerMonitor, build_power_readers

            readers = build_power_readers(cfg.power, buses.registry)
            self.power = PowerMonitor(readers.ats, readers.running, readers.fuel, cfg.power, self._emit,
                                      learned=_learned_burn_rate(cfg))
            self.power.start()
        self._start_access()
        from gateway.control.server import ControlServer  # only the service needs the server side

        if cfg.backup is not None:
            from gateway.backup import BackupScheduler

            self.backups = BackupScheduler(cfg, self._emit)
            self.backups.start()
        ops = self._control_handlers()  # one set for both: the console and the socket share desks and locks
        if cfg.web is not None:  # before the control socket: once `dcgate status` answers, the console does too
            self._start_console(ops)
        self._control = ControlServer(cfg.control_socket_path, ops)
        self._control.start()
        self._notifier.ready(f"forwarding to {cfg.mqtt.host}:{cfg.mqtt.port}")
        self._ready = True

    def _start_access(self) -> None:
        """People, templates and doors; the door hardware is only touched when [[doors]] are configured."""
        from access.crypto import TemplateCipher
        from access.people import PeopleRegistry
        from gateway.access_desk import AccessDesk

        cfg = self.config
        assert self.writer is not None
        cipher = TemplateCipher.from_file(cfg.access.key_file) if cfg.access.key_file is not None else None
        registry = PeopleRegistry(cfg.database_path, self.writer, cipher)
        if cfg.doors:
            from gateway.doors import DoorSet

            self.doors = DoorSet(cfg, registry, self._emit)
            self.doors.start()
        self.desk = AccessDesk(cfg, registry, self.doors)
        self._start_visits(registry)

    def _start_visits(self, registry: Any) -> None:
        """Guests and vendors: the visit book always; arming doors for escorts only when there are doors."""
        from gateway.visit_desk import VisitDesk, build_visit_book

        book = build_visit_book(self.config, self.writer, registry)
        admissions = None
        if self.doors is not None:
            from access.admission import Admissions

            admissions = Admissions(book, self.doors.presence, self.config.visits.admit_window_s, self._emit)
            self.doors.attach_visits(book, admissions)
            self.desk.on_revoked = admissions.escort_revoked
        self.visit_desk = VisitDesk(self.config, book, self.doors, admissions)

    def _start_console(self, ops: dict[str, Any]) -> None:
        """The web console: the same operations as the control socket, called in-process."""
        from gateway.web.app import build_app
        from gateway.web.context import ConsoleContext
        from gateway.web.server import WebServer
        from gateway.web.sessions import SessionStore
        from gateway.web.throttle import LoginThrottle

        web = self.config.web
        assert web is not None and self.users is not None
        sessions = SessionStore(web.session_idle_min * 60, web.session_max_h * 3600)

        def account_changed(user: str, what: str) -> None:
            if sessions.end_user(user):  # a disabled, demoted or re-keyed account is signed out everywhere
                self._emit("console.logout", "console", {"user": user, "reason": "account_changed", "change": what})

        self.users.on_change = account_changed
        ctx = ConsoleContext(
            config=self.config, ops=ops, status=self.status, users=self.users,
            sessions=sessions, throttle=LoginThrottle(web.login_attempts, web.login_lockout_min * 60),
            emit=self._emit,
        )
        self._console = ctx
        self.web = WebServer(build_app(ctx), web)
        self.web.start()

    def run_until_stopped(self) -> bool:
        """Block until SIGTERM/SIGINT (or `request_stop`), pinging the systemd watchdog meanwhile.

        Returns False if it stopped because a core thread died: the process then exits non-zero so
        that systemd (Restart=on-failure) starts a fresh one, watchdog or not.
        """
        interval = min(self._notifier.watchdog_interval_s or HEALTH_CHECK_S, HEALTH_CHECK_S)
        while not self._stop.wait(interval):
            if not self._healthy():
                log.critical("a core thread (store writer or MQTT forwarder) has died; stopping to be restarted")
                self.request_stop("core thread died")
                return False
            self._notifier.watchdog()
            self._periodic()
        return True

    def _periodic(self) -> None:
        """Every health check: time-based alarms (a silent probe goes stale) and the UPS state topic."""
        if self.alarms is not None:
            self.alarms.tick()
        if self.doors is not None:
            self.doors.tick()
        if self._console is not None:  # sessions that ended by themselves are audited as sign-outs
            for session, reason in self._console.sessions.sweep():
                self._emit("console.logout", "console", {"user": session.user, "reason": reason,
                                                         "address": session.address})
        if self.forwarder is None:
            return
        states = {}
        if self.ups is not None:
            states[ups_state_topic(self.config.base_topic)] = self.ups.state()
        if self.power is not None:
            states[f"{self.config.base_topic}/power/ats"] = self.power.ats_state()
            states[f"{self.config.base_topic}/power/generator"] = self.power.generator_state()
        if self.doors is not None:
            for name, snapshot in self.doors.snapshot().items():
                states[f"{self.config.base_topic}/door/{name}"] = {
                    k: snapshot[k] for k in ("state", "locked", "door_open", "held_open", "forced", "faults")
                } | {"inside": len(self.doors.presence)}
        if self.visit_desk is not None:
            try:
                states[f"{self.config.base_topic}/visits"] = self.visit_desk.state()
            except Exception as exc:  # a state topic must not stop the health loop
                log.error("visits state topic: %s", exc)
        for topic, state in states.items():
            self.forwarder.publish_retained(topic, json.dumps(state, separators=(",", ":"), default=str))

    def request_stop(self, reason: str = "requested") -> None:
        self._stop_reason = reason
        self._stop.set()

    def stop(self) -> None:
        if self._ready:
            self._notifier.stopping()
        if self.web is not None:
            self.web.stop()
        if self._control is not None:
            self._control.stop()
        if self.backups is not None:
            self.backups.stop()
        if self.poller is not None:
            self.poller.stop()
        if self.ups is not None:
            self.ups.stop()
        if self.power is not None:
            self.power.stop()
        if self.doors is not None:
            self.doors.stop()  # every door locked before the last events are written
        if self.writer is not None and self.writer.alive:
            try:
                self.writer.append_and_wait(
                    "gateway.stopped", "gateway",
                    {"reason": self._stop_reason,
                     "uptime_s": round(time.time() - self._started_at, 3)},
                )
            except Exception as exc:  # keep shutting down; the next start records it as unclean
                log.error("could not record gateway.stopped: %s", exc)
        if self.forwarder is not None:
            self.forwarder.stop(self.config.shutdown_flush_s)
        if self.writer is not None:
            self.writer.stop()
        if self._lock is not None:
            self._lock.release()

    def _healthy(self) -> bool:
        return bool(self.writer and self.writer.alive and self.forwarder and self.forwarder.alive)

    def console_status(self) -> dict[str, Any] | None:
        return None if self.web is None else {"url": self.web.url, "alive": self.web.alive}

    def _on_probe_state(self, name: str, state: ProbeState) -> None:
        assert self.forwarder is not None and self.alarms is not None
        self.alarms.observe(name, state.temperature_c, state.humidity_pct, "ok" if state.status == "ok" else "fault")
        moment = state.last_attempt_ts or time.time()
        self.forwarder.publish_retained(
            env_state_topic(self.config.base_topic, name),
            env_state_payload(state.temperature_c, state.humidity_pct, state.status,
                              utc_timestamp(int(moment * 1e9)), state.error),
        )

    def _emit(self, kind: str, source: str, fields: Mapping[str, Any]) -> None:
        assert self.writer is not None
        self.writer.append(kind, source, fields)

    # -- control socket --------------------------------------------------------------------
    def _control_handlers(self) -> dict[str, Any]:
        return {
            "status": lambda _params: self.status(),
            "sim.set": self._sim_set,
            "sim.show": lambda _params: self.world.snapshot(),
            "alarm.list": lambda _params: self._alarms().active(),
            "probe.read": self._probe_read,
            "alarm.ack": self._alarm_ack,
            **(self.desk.handlers() if self.desk is not None else {}),
            **(self.visit_desk.handlers() if self.visit_desk is not None else {}),
            **self._user_handlers(),
            **self._backup_handlers(),
        }

    def _user_handlers(self) -> dict[str, Any]:
        from gateway.web.users import UserBook, UserDesk

        if self.users is None:
            self.users = UserBook(self.config.database_path, self.writer)
        return UserDesk(self.users).handlers()

    def _backup_handlers(self) -> dict[str, Any]:
        from gateway.backup import backup_handlers

        return backup_handlers(self.config, self._emit, self.backups)

    def _sim_set(self, params: Mapping[str, Any]) -> dict[str, Any]:
        device, name, values = params.get("device"), params.get("name"), params.get("values")
        if not isinstance(device, str) or not isinstance(name, str) or not isinstance(values, dict):
            raise InvalidValueError("sim.set needs device, name and values")
        if device == "door":
            from gateway.sim_doors import set_sim_door

            return {device: name, "state": set_sim_door(self.doors, name, values)}
        state = self.world.set(device, name, values)
        if device == "probe" and self.poller is not None:
            self.poller.read_soon(name)
        return {device: name, "state": state}

    def _probe_read(self, params: Mapping[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise InvalidValueError("probe.read needs the probe's name")
        assert self.poller is not None
        return self.poller.read_now(name)

    def _alarms(self) -> AlarmManager:
        assert self.alarms is not None
        return self.alarms

    def _alarm_ack(self, params: Mapping[str, Any]) -> dict[str, Any]:
        alarm_id, by, note = params.get("alarm_id"), params.get("by"), params.get("note", "")
        if not isinstance(alarm_id, str) or not isinstance(by, str) or not isinstance(note, str):
            raise InvalidValueError("alarm.ack needs alarm_id and by (and an optional note) as text")
        return self._alarms().acknowledge(alarm_id, by, note)

    def status(self) -> dict[str, Any]:
        cfg = self.config
        writer, forwarder, poller = self.writer, self.forwarder, self.poller
        assert writer is not None and forwarder is not None and poller is not None
        probe_states = poller.states()
        return {
            "site": cfg.site,
            "gateway": cfg.gateway,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self._started_at, 1),
            "store": {
                "path": str(cfg.database_path),
                "last_seq": writer.last_seq,
                "outbox_depth": writer.outbox_depth,
                "writer": "ok" if writer.alive and not writer.last_error else "failing",
                "last_error": writer.last_error,
            },
            "mqtt": forwarder.status(),
            "devices": {
                "probes": {
                    p.name: {"driver": p.driver, "interval_s": p.interval_s, **probe_states[p.name]}
                    for p in cfg.probes
                },
                **({"ups": self.ups.state()} if self.ups is not None else {}),
                **({"ats": self.power.ats_state(), "generator": self.power.generator_state()}
                   if self.power is not None else {}),
            },
            "alarms": self._alarms().active(),
            **({"doors": self.doors.snapshot(), "inside": self.doors.inside()} if self.doors is not None else {}),
            **({"visits": self.visit_desk.state()} if self.visit_desk is not None else {}),
            **({"console": self.console_status()} if self.web is not None else {}),
        }


def _learned_burn_rate(config: Config) -> dict[str, Any] | None:
    """The generator's burn rate learned on earlier runs, from the last `power.generator_stopped`."""
    if not config.database_path.exists():
        return None
    from gateway.store.database import open_for_reading

    db = open_for_reading(config.database_path)
    try:
        row = db.conn.execute(
            "SELECT payload FROM events WHERE kind = 'power.generator_stopped' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    if row is None:
        return None
    fields = json.loads(row[0])
    return {"burn_rate_pct_h": fields.get("burn_rate_pct_h"), "burn_learned_h": fields.get("burn_learned_h")}


def _previous_shutdown(config: Config) -> str:
    """'clean', 'unclean' (crash, power cut, SIGKILL) or 'first_start', from the log itself."""
    if not config.database_path.exists():
        return "first_start"
    from gateway.store.database import open_for_reading

    db = open_for_reading(config.database_path)
    try:
        row = db.conn.execute(
            "SELECT kind FROM events WHERE kind IN ('gateway.started', 'gateway.stopped') ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    except Exception:
        return "unknown"
    finally:
        db.close()
    if row is None:
        return "first_start"
    return "clean" if row[0] == "gateway.stopped" else "unclean"
