"""Pipeline throughput: dcgate (store writer + MQTT forwarder) against a bare paho-mqtt publisher.

Run from the repository root:

    .venv/bin/python bench/pipeline.py [--events N] [--window W]

One process, one local mosquitto (started and stopped here), three measurements:

* baseline: a bare paho-mqtt 2.x client (MQTTv5, QoS 1, the forwarder's in-flight window)
  publishing N messages shaped like dcgate's `env.reading` envelopes, timed until every PUBACK;
* dcgate with `store.synchronous = "full"` (the default) and with `"normal"`: a real
  `StoreWriter` + `Forwarder`, wired as in `gateway/service.py`, fed N `env.reading` events as
  fast as a producer thread can append them, timed until all are committed and until all are
  delivered (PUBACKed, handed back to the store, outbox depth 0).

A subscriber on the same broker counts what actually arrived (unique ids, and for dcgate the
seq order), so no figure can be reached by dropping messages. Human-readable lines first; the
last line is one JSON object with the figures, the targets and pass/fail.
"""

from __future__ import annotations

import argparse
import faulthandler
import itertools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion  # noqa: E402

from gateway.config.loader import load_config  # noqa: E402
from gateway.config.models import Config  # noqa: E402
from gateway.mqtt.forwarder import Forwarder  # noqa: E402
from gateway.mqtt.topics import event_topic, wire_payload  # noqa: E402
from gateway.store.events import Event, utc_timestamp  # noqa: E402
from gateway.store.writer import StoreWriter  # noqa: E402
from tests.support.configs import base_config, write_config  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402

TARGET_EVENTS_PER_S = 2000
TARGET_RATIO = 0.5
SITE, GATEWAY = "bench-site", "bench-gw"
POLL_S = 0.002


def log(message: str) -> None:
    print(message, flush=True)


# -- the verifying subscribers ------------------------------------------------------------------
class ProcessSubscriber:
    """`mosquitto_sub` at QoS 1 in its own process, writing one payload per line to a file.

    Out of process so that verifying costs this process (and its GIL) nothing while measuring:
    the same for the baseline and for dcgate. Nothing is parsed until the clock has stopped.
    """

    MARKER = b"bench-subscriber-ready"

    def __init__(self, host: str, port: int, topic: str, workdir: Path) -> None:
        binary = shutil.which("mosquitto_sub")
        if binary is None:
            raise RuntimeError("mosquitto_sub not found (Debian package mosquitto-clients)")
        name = f"bench-sub-{uuid.uuid4().hex[:8]}"
        self.path = workdir / f"{name}.out"
        self._out = self.path.open("wb")
        self.process = subprocess.Popen(
            [binary, "-h", host, "-p", str(port), "-t", topic, "-q", "1", "-i", name, "-V", "5"],
            stdout=self._out, stderr=subprocess.DEVNULL,
        )
        # ready once a marker published under the topic filter comes back (SUBACK is not printed)
        marker_topic = topic.rstrip("#").rstrip("/") + "/bench/ready"
        deadline = time.monotonic() + 15
        while self.MARKER not in self.path.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("mosquitto_sub did not start receiving within 15 s")
            publish_once(host, port, marker_topic, self.MARKER)
            time.sleep(0.1)

    @property
    def payloads(self) -> list[bytes]:
        return [line for line in self.path.read_bytes().splitlines() if line and line != self.MARKER]

    def count(self) -> int:
        data = self.path.read_bytes()
        return data.count(b"\n") - data.count(self.MARKER + b"\n")

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.count() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self._out.close()


def publish_once(host: str, port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.connect(host, port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


class InProcessSubscriber:
    """Fallback when mosquitto_sub is missing: a paho subscriber in this process (it shares the GIL
    with what is measured, which flatters the ratio: its cost weighs on both sides)."""

    def __init__(self, host: str, port: int, topic: str, workdir: Path) -> None:
        self.payloads: list[bytes] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-sub-{uuid.uuid4().hex[:8]}", clean_session=True)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = lambda _c, _u, msg: self.payloads.append(msg.payload)
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("bench subscriber did not get SUBACK within 10 s")

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.payloads) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


SUBSCRIBERS: dict[str, Any] = {"process": ProcessSubscriber, "inprocess": InProcessSubscriber}
subscriber_kind = "process"


def subscribe(broker: Mosquitto, topic: str) -> Any:
    return SUBSCRIBERS[subscriber_kind](broker.host, broker.port, topic, broker.workdir)


def fake_events(count: int, start_seq: int = 1) -> list[Event]:
    """Events shaped like the probe poller's `env.reading`, for the baseline's payloads."""
    events, prev = [], "0" * 64
    for i in range(count):
        seq = start_seq + i
        digest = uuid.uuid4().hex * 2
        payload = json.dumps({"humidity_pct": round(48 + (i % 40) / 10, 2), "probe": "rack1",
                              "temperature_c": round(21 + (i % 30) / 10, 2)}, sort_keys=True, separators=(",", ":"))
        events.append(Event(seq, str(uuid.uuid4()), utc_timestamp(), "env.reading", "probe:rack1", payload, prev,
                            digest))
        prev = digest
    return events


# -- baseline: bare paho -------------------------------------------------------------------------
def run_baseline(broker: Mosquitto, events: int, window: int, warmup: int) -> dict[str, Any]:
    topic = event_topic(f"dcgate/{SITE}/{GATEWAY}", "env.reading")
    total = warmup + events
    payloads = [wire_payload(e, SITE, GATEWAY).encode() for e in fake_events(total)]
    sub = subscribe(broker, f"dcgate/{SITE}/{GATEWAY}/events/#")
    acked = 0
    all_acked = threading.Event()
    target = [warmup]
    connected = threading.Event()

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        nonlocal acked
        if reason.is_failure:
            raise RuntimeError(f"baseline publish refused: {reason}")
        acked += 1
        if acked >= target[0]:
            all_acked.set()

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-paho-baseline",
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(window)
    client.on_connect = lambda *_: connected.set()
    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("baseline client did not connect")
        for payload in payloads[:warmup]:
            client.publish(topic, payload, qos=1)
        if not all_acked.wait(60):
            raise RuntimeError("baseline warm-up not acknowledged")
        sub.wait_for(warmup)
        all_acked.clear()
        target[0] = total
        start, cpu_start = time.perf_counter(), time.process_time()
        for payload in payloads[warmup:]:
            client.publish(topic, payload, qos=1)
        if not all_acked.wait(300):
            raise RuntimeError(f"baseline: only {acked - warmup} of {events} acknowledged")
        elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
        arrived = sub.wait_for(total)
        ids = {json.loads(p)["id"] for p in sub.payloads}
        ok = arrived and len(ids) == total
    finally:
        client.disconnect()
        client.loop_stop()
        sub.close()
    rate = events / elapsed
    cpu_us = cpu_s / events * 1e6
    log(f"baseline paho   : {events} msgs QoS 1 window {window}: {elapsed:.3f} s -> {rate:,.0f} msg/s; "
        f"{cpu_us:.0f} us CPU/msg; subscriber got {len(ids)}/{total} unique incl. {warmup} warm-up")
    if not ok:
        raise RuntimeError("baseline: the subscriber did not receive every message")
    return {"events_per_s": rate, "seconds": elapsed, "cpu_us_per_event": cpu_us, "received_unique": len(ids) - warmup}


# -- dcgate: StoreWriter + Forwarder ----------------------------------------------------------------
@dataclass
class DcgateResult:
    synchronous: str
    committed_s: float
    delivered_s: float
    drained_s: float
    cpu_us_per_event: float  # this process's CPU time (all threads) from the first append to the last PUBACK
    received_unique: int
    in_order: bool


def make_config(workdir: Path, broker: Mosquitto, synchronous: str, window: int) -> Config:
    workdir.mkdir(parents=True, exist_ok=True)
    data = base_config(workdir / "data", broker.port, site=SITE, gateway=GATEWAY,
                       mqtt={"inflight": window}, store={"synchronous": synchronous}, probes=None)
    return load_config(write_config(workdir / "dcgate.toml", data))


def produce(writer: StoreWriter, count: int, offset: int = 0) -> None:
    for i in range(offset, offset + count):
        writer.append("env.reading", "probe:rack1",
                      {"probe": "rack1", "temperature_c": round(21 + (i % 30) / 10, 2),
                       "humidity_pct": round(48 + (i % 40) / 10, 2)})


def wait_for(condition: Any, timeout: float, what: str, state: Any = None, progress: Any = None,
             stall_s: float = 15.0) -> float:
    """Poll `condition` until true; fail after `timeout`, or after `stall_s` without `progress()` changing
    (a hang, e.g. a deadlock, shows up in seconds, with every thread's stack on stderr)."""
    deadline = time.monotonic() + timeout
    last, last_change = progress() if progress else None, time.monotonic()
    while not condition():
        now = time.monotonic()
        if progress is not None:
            current = progress()
            if current != last:
                last, last_change = current, now
        stalled = progress is not None and now - last_change > stall_s
        if now > deadline or stalled:
            faulthandler.dump_traceback(sys.stderr)
            why = f"no progress for {stall_s:g} s" if stalled else f"timed out after {timeout:g} s"
            raise RuntimeError(f"{why} waiting for {what}" + (f"; {state()}" if state else ""))
        time.sleep(POLL_S)
    return time.perf_counter()


def run_dcgate(broker: Mosquitto, workdir: Path, synchronous: str, events: int, window: int,
               warmup: int) -> DcgateResult:
    config = make_config(workdir, broker, synchronous, window)
    sub = subscribe(broker, f"{config.base_topic}/events/#")
    writer = StoreWriter(config.database_path, synchronous=config.store.synchronous, outbox=config.outbox,
                         housekeeping_s=config.store.housekeeping_s)
    forwarder = Forwarder(config, writer.mark_delivered, writer.last_seq)
    writer.on_commit = forwarder.notify_commit
    writer.start()
    forwarder.start()
    try:
        wait_for(lambda: forwarder.status()["connected"], 15, "the forwarder to connect")
        # warm up: same path, not timed
        produce(writer, warmup)
        wait_for(lambda: forwarder.delivered_total >= warmup and writer.outbox_depth == 0, 60, "warm-up delivery")
        sub.wait_for(warmup)
        first_seq = writer.last_seq + 1
        committed_target, delivered_target = writer.committed_total + events, forwarder.delivered_total + events

        def state() -> str:
            return (f"writer last_seq {writer.last_seq} committed_total {writer.committed_total} "
                    f"outbox_depth {writer.outbox_depth}; forwarder {forwarder.status()}")

        producer = threading.Thread(target=produce, args=(writer, events, warmup), name="producer", daemon=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        producer.start()

        committed = wait_for(lambda: writer.committed_total >= committed_target, 600, "all events to be committed",
                             state, lambda: writer.committed_total)
        delivered = wait_for(lambda: forwarder.delivered_total >= delivered_target, 600, "all PUBACKs",
                             state, lambda: forwarder.delivered_total)
        cpu_s = time.process_time() - cpu_start
        drained = wait_for(lambda: writer.outbox_depth == 0, 600, "the outbox to drain",
                           state, lambda: writer.outbox_depth)
        producer.join()

        sub.wait_for(warmup + events)
        seqs: list[int] = []
        ids: set[str] = set()
        for payload in sub.payloads:
            message = json.loads(payload)
            if message["seq"] >= first_seq:
                seqs.append(message["seq"])
                ids.add(message["id"])
        in_order = all(a < b for a, b in itertools.pairwise(seqs))  # strictly: no duplicate either
        complete = set(seqs) == set(range(first_seq, first_seq + events))
        connections = forwarder.connections
    finally:
        forwarder.stop(5.0)
        writer.stop()
        sub.close()
    result = DcgateResult(synchronous, committed - start, delivered - start, drained - start,
                          cpu_s / events * 1e6, len(ids), in_order)
    log(f"dcgate {synchronous:<6}  : {events} events: committed {result.committed_s:.3f} s "
        f"({events / result.committed_s:,.0f}/s), delivered {result.delivered_s:.3f} s "
        f"({events / result.delivered_s:,.0f}/s), outbox empty {result.drained_s:.3f} s; "
        f"{result.cpu_us_per_event:.0f} us CPU/event; subscriber got {len(ids)}/{events} unique, "
        f"in order: {in_order}")
    if len(ids) != events or not complete or not in_order or connections != 1:
        raise RuntimeError(f"dcgate {synchronous}: verification failed ({len(ids)} of {events} received, "
                           f"complete {complete}, in order {in_order}, connections {connections})")
    return result


def median(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per measurement (default 20000)")
    parser.add_argument("--window", type=int, default=None,
                        help="in-flight window (paho and the forwarder); default the config's mqtt.inflight default")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed events sent first in each run (default 1000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of baseline + full + normal; figures are medians (default 3)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where to create the temporary stores (default: the system temp dir); on a Pi, "
                             "point it at the SD card to measure real fsyncs")
    parser.add_argument("--subscriber", choices=sorted(SUBSCRIBERS), default=None,
                        help="verifying subscriber: 'process' (mosquitto_sub, the default when installed) or "
                             "'inprocess' (paho in this process; shares the GIL, so it flatters the ratio)")
    args = parser.parse_args(argv)
    from gateway.config.models import MqttConfig

    global subscriber_kind
    subscriber_kind = args.subscriber or ("process" if shutil.which("mosquitto_sub") else "inprocess")

    window = args.window or MqttConfig.model_fields["inflight"].default
    events, warmup = args.events, args.warmup

    log(f"dcgate pipeline bench: {events} events x {args.repeat} rounds, in-flight window {window}, "
        f"warm-up {warmup}, subscriber {subscriber_kind}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores")
    samples: dict[str, list[float]] = {key: [] for key in (
        "paho", "committed_full", "delivered_full", "drained_full",
        "committed_normal", "delivered_normal", "drained_normal", "cpu_paho", "cpu_full", "cpu_normal")}
    error = None
    with tempfile.TemporaryDirectory(prefix="dcgate-bench-", dir=args.data_dir) as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "mosquitto").start()
        try:
            for round_no in range(1, args.repeat + 1):
                log(f"-- round {round_no} of {args.repeat}")
                baseline = run_baseline(broker, events, window, warmup)
                samples["paho"].append(baseline["events_per_s"])
                samples["cpu_paho"].append(baseline["cpu_us_per_event"])
                for sync in ("full", "normal"):
                    result = run_dcgate(broker, workdir / f"{sync}-{round_no}", sync, events, window, warmup)
                    samples[f"committed_{sync}"].append(events / result.committed_s)
                    samples[f"delivered_{sync}"].append(events / result.delivered_s)
                    samples[f"drained_{sync}"].append(events / result.drained_s)
                    samples[f"cpu_{sync}"].append(result.cpu_us_per_event)
        except RuntimeError as exc:  # a failed verification or a hang: still end with the JSON line
            error = str(exc)
            log(f"FAILED: {error}")
        finally:
            broker.stop()

    med = {key: median(values) if values else 0.0 for key, values in samples.items()}
    ratio = med["delivered_full"] / med["paho"] if med["paho"] else 0.0
    figures: dict[str, Any] = {
        "events": events,
        "rounds": args.repeat,
        "window": window,
        "baseline_paho_events_per_s": round(med["paho"]),
        "dcgate_committed_events_per_s": {s: round(med[f"committed_{s}"]) for s in ("full", "normal")},
        "dcgate_delivered_events_per_s": {s: round(med[f"delivered_{s}"]) for s in ("full", "normal")},
        "dcgate_outbox_empty_events_per_s": {s: round(med[f"drained_{s}"]) for s in ("full", "normal")},
        "ratio_vs_paho": round(ratio, 3),
        "ratio_vs_paho_normal": round(med["delivered_normal"] / med["paho"], 3) if med["paho"] else 0.0,
        # CPU time of this process (all its threads) per event while timed: less sensitive to a busy machine
        "cpu_us_per_event": {"paho": round(med["cpu_paho"], 1), "full": round(med["cpu_full"], 1),
                             "normal": round(med["cpu_normal"], 1)},
        "subscriber": subscriber_kind,
        "samples": {key: [round(v) for v in values] for key, values in samples.items()},
        "targets": {"events_per_s": TARGET_EVENTS_PER_S, "ratio": TARGET_RATIO},
        "pass": {
            "events_per_s": error is None and med["delivered_full"] >= TARGET_EVENTS_PER_S,
            "ratio": error is None and ratio >= TARGET_RATIO,
            "verified": error is None,  # every run checked that the subscriber got every event, in order
        },
        "error": error,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
    log(f"medians of {args.repeat}: bare paho {med['paho']:,.0f} msg/s ({med['cpu_paho']:.0f} us CPU/msg); "
        f"dcgate full: committed {med['committed_full']:,.0f}/s, delivered {med['delivered_full']:,.0f}/s "
        f"({med['cpu_full']:.0f} us CPU/event); dcgate normal: committed {med['committed_normal']:,.0f}/s, "
        f"delivered {med['delivered_normal']:,.0f}/s ({med['cpu_normal']:.0f} us CPU/event)")
    log(f"dcgate (full) delivers {med['delivered_full']:,.0f} events/s = {ratio:.2f} x bare paho "
        f"(targets: >= {TARGET_EVENTS_PER_S}/s: {'pass' if figures['pass']['events_per_s'] else 'FAIL'}; "
        f">= {TARGET_RATIO} x: {'pass' if figures['pass']['ratio'] else 'FAIL'})")
    print(json.dumps(figures), flush=True)
    return 0 if all(figures["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
