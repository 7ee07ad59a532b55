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
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
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


# -- the verifying subscriber ---------------------------------------------------------------------
class CountingSubscriber:
    """QoS 1 subscriber that only keeps payloads while measuring (parsing comes after the clock stops)."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.payloads: list[bytes] = []
        self._connected = threading.Event()
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


def fake_events(count: int, start_seq: int = 1) -> list[Event]:
    """Events shaped like the probe poller's `env.reading`, for the baseline's payloads."""
    events, prev = [], "0" * 64
    for i in range(count):
        seq = start_seq + i
        digest = uuid.uuid4().hex * 2
        payload = json.dumps({"humidity_pct": round(48 + (i % 40) / 10, 2), "probe": "rack1",
                              "temperature_c": round(21 + (i % 30) / 10, 2)}, sort_keys=True, separators=(",", ":"))
        events.append(Event(seq, str(uuid.uuid4()), utc_timestamp(), "env.reading", "probe:rack1", payload, prev, digest))
        prev = digest
    return events


# -- baseline: bare paho -------------------------------------------------------------------------
def run_baseline(broker: Mosquitto, events: int, window: int, warmup: int) -> dict[str, Any]:
    topic = event_topic(f"dcgate/{SITE}/{GATEWAY}", "env.reading")
    total = warmup + events
    payloads = [wire_payload(e, SITE, GATEWAY).encode() for e in fake_events(total)]
    sub = CountingSubscriber(broker.host, broker.port, f"dcgate/{SITE}/{GATEWAY}/events/#")
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
        start = time.perf_counter()
        for payload in payloads[warmup:]:
            client.publish(topic, payload, qos=1)
        if not all_acked.wait(300):
            raise RuntimeError(f"baseline: only {acked - warmup} of {events} acknowledged")
        elapsed = time.perf_counter() - start
        arrived = sub.wait_for(total)
        ids = {json.loads(p)["id"] for p in sub.payloads}
        ok = arrived and len(ids) == total
    finally:
        client.disconnect()
        client.loop_stop()
        sub.close()
    rate = events / elapsed
    log(f"baseline paho   : {events} msgs QoS 1 window {window}: {elapsed:.3f} s -> {rate:,.0f} msg/s "
        f"(subscriber got {len(ids)}/{total} unique incl. {warmup} warm-up)")
    if not ok:
        raise RuntimeError("baseline: the subscriber did not receive every message")
    return {"events_per_s": rate, "seconds": elapsed, "received_unique": len(ids) - warmup}


# -- dcgate: StoreWriter + Forwarder ----------------------------------------------------------------
@dataclass
class DcgateResult:
    synchronous: str
    committed_s: float
    delivered_s: float
    drained_s: float
    received_unique: int
    in_order: bool
    extra: dict[str, Any] = field(default_factory=dict)


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


def wait_for(condition: Any, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL_S)
    return time.perf_counter()


def run_dcgate(broker: Mosquitto, workdir: Path, synchronous: str, events: int, window: int,
               warmup: int) -> DcgateResult:
    config = make_config(workdir, broker, synchronous, window)
    sub = CountingSubscriber(broker.host, broker.port, f"{config.base_topic}/events/#")
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

        producer = threading.Thread(target=produce, args=(writer, events, warmup), name="producer")
        start = time.perf_counter()
        producer.start()
        committed = wait_for(lambda: writer.committed_total >= committed_target, 300, "all events to be committed")
        delivered = wait_for(lambda: forwarder.delivered_total >= delivered_target, 300, "all PUBACKs")
        drained = wait_for(lambda: writer.outbox_depth == 0, 60, "the outbox to drain")
        producer.join()

        sub.wait_for(warmup + events)
        seqs: list[int] = []
        ids: set[str] = set()
        for payload in sub.payloads:
            message = json.loads(payload)
            if message["seq"] >= first_seq:
                seqs.append(message["seq"])
                ids.add(message["id"])
        in_order = all(a < b for a, b in zip(seqs, seqs[1:], strict=False))
        extra = {"connections": forwarder.connections, "last_error": forwarder.last_error}
    finally:
        forwarder.stop(5.0)
        writer.stop()
        sub.close()
    result = DcgateResult(synchronous, committed - start, delivered - start, drained - start, len(ids),
                          in_order, extra)
    log(f"dcgate {synchronous:<6}  : {events} events: committed {result.committed_s:.3f} s "
        f"({events / result.committed_s:,.0f}/s), delivered {result.delivered_s:.3f} s "
        f"({events / result.delivered_s:,.0f}/s), outbox empty {result.drained_s:.3f} s; subscriber got "
        f"{len(ids)}/{events} unique, in order: {in_order}")
    if len(ids) != events or not in_order or forwarder.connections != 1:
        raise RuntimeError(f"dcgate {synchronous}: verification failed ({len(ids)} of {events} received, "
                           f"in order {in_order}, connections {forwarder.connections})")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per measurement (default 20000)")
    parser.add_argument("--window", type=int, default=None,
                        help="in-flight window; default the config's mqtt.inflight default")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed events sent first (default 1000)")
    args = parser.parse_args(argv)
    from gateway.config.models import MqttConfig

    window = args.window or MqttConfig.model_fields["inflight"].default
    events, warmup = args.events, args.warmup

    log(f"dcgate pipeline bench: {events} events, in-flight window {window}, warm-up {warmup}, "
        f"Python {platform.python_version()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="dcgate-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "mosquitto").start()
        try:
            baseline = run_baseline(broker, events, window, warmup)
            full = run_dcgate(broker, workdir / "full", "full", events, window, warmup)
            normal = run_dcgate(broker, workdir / "normal", "normal", events, window, warmup)
        finally:
            broker.stop()

    paho_rate = baseline["events_per_s"]
    figures: dict[str, Any] = {
        "events": events,
        "window": window,
        "baseline_paho_events_per_s": round(paho_rate),
    }
    for result in (full, normal):
        figures[f"dcgate_committed_events_per_s_{result.synchronous}"] = round(events / result.committed_s)
        figures[f"dcgate_delivered_events_per_s_{result.synchronous}"] = round(events / result.delivered_s)
        figures[f"dcgate_outbox_empty_events_per_s_{result.synchronous}"] = round(events / result.drained_s)
    delivered_full = events / full.delivered_s
    ratio = delivered_full / paho_rate
    figures["ratio_vs_paho"] = round(ratio, 3)
    figures["ratio_vs_paho_normal"] = round(events / normal.delivered_s / paho_rate, 3)
    figures["targets"] = {"events_per_s": TARGET_EVENTS_PER_S, "ratio": TARGET_RATIO}
    figures["pass"] = {
        "events_per_s": delivered_full >= TARGET_EVENTS_PER_S,
        "ratio": ratio >= TARGET_RATIO,
        "verified": True,
    }
    figures["python"] = platform.python_version()
    figures["cores"] = os.cpu_count()
    log(f"dcgate (full) delivers {delivered_full:,.0f} events/s = {ratio:.2f} x bare paho "
        f"(targets: >= {TARGET_EVENTS_PER_S}/s and >= {TARGET_RATIO} x)")
    print(json.dumps(figures), flush=True)
    return 0 if all(figures["pass"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
