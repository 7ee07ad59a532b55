"""The service lifecycle: graceful SIGTERM, one gateway per data_dir, and systemd's sd_notify protocol."""

from __future__ import annotations

import signal
import socket
import tempfile
import time
from pathlib import Path

from gateway.config.loader import load_config
from gateway.service import HEALTH_CHECK_S, Gateway
from tests.support.eventstore import committed_events, outbox_seqs
from tests.support.gateway_proc import run_cli
from tests.support.waiting import wait_until

STATUS_TOPIC = "dcgate/test-site/test-gw/status"


def test_sigterm_stops_gracefully_and_the_next_start_knows(make_config, gateway_factory, subscriber):
    config = make_config()
    gw = gateway_factory(config)
    wait_until(lambda: gw.status()["mqtt"]["connected"], 10, message="the MQTT link up")

    assert gw.terminate() == 0
    events = committed_events(gw.config.database_path)
    assert events[0].kind == "gateway.started"
    stopped = events[-1]
    assert stopped.kind == "gateway.stopped" and stopped.fields["reason"] == "SIGTERM"
    assert stopped.fields["uptime_s"] >= 0
    assert outbox_seqs(gw.config.database_path) == [], "everything, gateway.stopped included, was acknowledged"
    assert "dcgate stopped cleanly" in gw.log_text()

    # gateway.stopped went out before the retained `offline` (same connection, so the order is kept)
    wait_until(lambda: any(m.payload == b"offline" for m in subscriber.on_topic(STATUS_TOPIC)), 10,
               message="offline after SIGTERM")
    messages = subscriber.snapshot()
    stopped_at = next(i for i, m in enumerate(messages) if "/events/" in m.topic and m.json["id"] == stopped.id)
    offline_at = max(i for i, m in enumerate(messages) if m.topic == STATUS_TOPIC and m.payload == b"offline")
    assert stopped_at < offline_at
    assert messages[stopped_at].topic == "dcgate/test-site/test-gw/events/gateway/stopped"

    again = gateway_factory(config)
    started = wait_until(lambda: committed_events(again.config.database_path, kind="gateway.started")[1:], 10,
                         message="the second gateway.started")
    assert started[0].fields["previous_shutdown"] == "clean"
    assert started[0].fields["pid"] == again.process.pid
    assert again.terminate() == 0


def test_a_second_gateway_on_the_same_data_dir_is_refused(make_config, gateway_factory):
    config = make_config()
    first = gateway_factory(config)
    before = first.status()

    second = run_cli("run", "--config", str(config), timeout=30)
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"pid {first.process.pid}" in second.stderr
    assert str(first.config.data_dir) in second.stderr

    assert first.running
    after = first.status()  # the first one still answers on its own control socket
    assert after["pid"] == before["pid"] == first.process.pid
    starts = committed_events(first.config.database_path, kind="gateway.started")
    assert len(starts) == 1, "the refused gateway must not have written to the store"
    assert first.terminate() == 0


def test_sd_notify_ready_watchdog_and_stopping(make_config, gateway_factory):
    # A short path: AF_UNIX addresses are limited to ~107 bytes, pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="dcgate-notify-") as short_dir:
        address = str(Path(short_dir) / "notify.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            sock.setblocking(False)
            received: list[str] = []

            def drain() -> list[str]:
                while True:
                    try:
                        received.append(sock.recv(4096).decode())
                    except BlockingIOError:
                        return received

            gw = gateway_factory(make_config(), env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
            wait_until(lambda: any(m.startswith("READY=1") for m in drain()), 10, message="READY=1")
            ready = next(m for m in received if m.startswith("READY=1"))
            assert "STATUS=forwarding to 127.0.0.1:" in ready
            assert gw.status()["pid"] == gw.process.pid  # READY means the control socket answers

            # WATCHDOG_USEC=1 s: a ping every half second
            wait_until(lambda: drain().count("WATCHDOG=1") >= 3, 5, message="three watchdog pings")
            assert received.index(ready) < received.index("WATCHDOG=1")
            assert "STOPPING=1" not in received

            assert gw.terminate() == 0
            wait_until(lambda: "STOPPING=1" in drain(), 5, message="STOPPING=1")
            assert received[-1] == "STOPPING=1"
            assert received.count(ready) == 1


def test_a_dead_core_thread_stops_the_service_with_a_failure(make_config):
    """Without a systemd watchdog nobody would notice a dead forwarder: the service must stop itself."""
    gateway = Gateway(load_config(make_config()))
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        gateway.start()
        assert gateway.forwarder is not None
        gateway.forwarder.stop(0)  # its thread ends, as it would after an unexpected error
        started = time.monotonic()
        assert gateway.run_until_stopped() is False
        assert time.monotonic() - started <= HEALTH_CHECK_S + 2
    finally:
        gateway.stop()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    stopped = committed_events(gateway.config.database_path, kind="gateway.stopped")
    assert [e.fields["reason"] for e in stopped] == ["core thread died"]
