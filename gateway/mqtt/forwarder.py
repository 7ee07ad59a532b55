"""Forward committed events upstream over MQTT, QoS 1, in commit order, losing nothing.

The outbox in SQLite is the only queue that matters: an event leaves it only after the
broker's PUBACK. Each connection gets a fresh paho client, and every (re)connection starts
again from the oldest undelivered event, so after a broker outage or a crash an event may
arrive twice (same id) but never out of order and never not at all.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from gateway.config.models import Config
from gateway.mqtt.topics import event_topic, status_topic, wire_payload
from gateway.store.database import open_for_reading
from gateway.store.events import pending_after

log = logging.getLogger(__name__)

CONNACK_TIMEOUT_S = 10.0
OFFLINE_PUBLISH_TIMEOUT_S = 3.0


class Forwarder:
    def __init__(self, config: Config, mark_delivered: Callable[[list[int]], None], last_seq: int) -> None:
        self._config = config
        self._mark_delivered = mark_delivered
        self._committed_seq = last_seq
        self._status_topic = status_topic(config.base_topic)
        self._password = config.mqtt.read_password()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop_requested = threading.Event()
        self._flush_deadline = 0.0
        self._thread: threading.Thread | None = None
        self._connected = threading.Event()
        self._connack = threading.Event()
        self._inflight: dict[int, int | str] = {}  # mid -> seq of an event, or the topic of a retained state
        # refill the window when fewer than this are in flight; PUBACKs wake the forwarder thread only then
        self._refill_below = max(1, config.mqtt.inflight * 3 // 4)
        self._early_acks: dict[int, bool] = {}  # PUBACKs that overtook the recording of their mid -> refused?
        self._acked: list[int] = []
        # latest-value state (retained, not events): topic -> payload, and the topics still to send
        self._retained: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._refused_states: set[str] = set()
        mqtt_cfg = config.mqtt
        self._birth_topic = f"{mqtt_cfg.discovery_prefix}/status" if mqtt_cfg.discovery else None
        self._refused: str | None = None
        self._refusal_pending = False
        # for `dcgate status`
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.delivered_total = 0
        self.connections = 0

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-forwarder", daemon=True)
        self._thread.start()

    def notify_commit(self, seq: int) -> None:
        """Called by the store writer after each commit."""
        self._committed_seq = seq
        self._wake.set()

    def publish_retained(self, topic: str, payload: str) -> None:
        """Set a retained state topic (e.g. `{base}/env/rack1`, a discovery config).

        Only the latest value matters, so it is kept in memory, not in the outbox: sent as soon as
        connected, and again after every reconnect and whenever Home Assistant announces itself.
        """
        with self._lock:
            if self._retained.get(topic) == payload:
                return
            self._retained[topic] = payload
            self._dirty.add(topic)
        self._wake.set()

    def stop(self, flush_s: float) -> None:
        """Keep forwarding for up to `flush_s` seconds, then publish `offline` and disconnect."""
        self._flush_deadline = time.monotonic() + flush_s
        self._stop_requested.set()
        self._wake.set()
        self._connack.set()  # do not sit out a CONNACK timeout when asked to stop
        if self._thread is not None:
            self._thread.join(flush_s + CONNACK_TIMEOUT_S + OFFLINE_PUBLISH_TIMEOUT_S + 2)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> dict[str, Any]:
        mqtt_cfg = self._config.mqtt
        return {
            "connected": self._connected.is_set(),
            "broker": f"{'mqtts' if mqtt_cfg.tls_ca else 'mqtt'}://{mqtt_cfg.host}:{mqtt_cfg.port}",
            "base_topic": self._config.base_topic,
            "connected_since": self.connected_since,
            "inflight": len(self._inflight),
            "delivered_total": self.delivered_total,
            "connections": self.connections,
            "last_error": self.last_error,
        }

    # -- the forwarder thread ------------------------------------------------------------------
    def _run(self) -> None:
        reader = open_for_reading(self._config.database_path)
        cfg = self._config.mqtt
        delay = cfg.reconnect_min_s
        try:
            while not self._stop_requested.is_set():
                client = self._new_client()
                if self._connect(client):
                    delivered_before = self.delivered_total
                    self._send_until_disconnected(client, reader)
                    if self.delivered_total > delivered_before:
                        # back to quick retries only after a connection that really delivered:
                        # a broker that accepts the connection but refuses every event keeps backing off
                        delay = cfg.reconnect_min_s
                    if self._stop_requested.is_set() and self._connected.is_set():
                        self._say_offline(client)
                self._close(client)
                if self._stop_requested.is_set():
                    break
                # capped exponential backoff with jitter, so a fleet does not reconnect in lockstep
                wait = delay * random.uniform(0.8, 1.2)
                log.debug("mqtt: reconnecting in %.1f s", wait)  # the error itself was logged once
                self._stop_requested.wait(wait)
                delay = min(delay * 2, cfg.reconnect_max_s)
        except Exception:
            log.exception("mqtt forwarder stopped by an unexpected error")
            self.last_error = "forwarder crashed; see the service log"
        finally:
            reader.close()

    def _new_client(self) -> mqtt.Client:
        cfg = self._config.mqtt
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._config.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        # The forwarder itself never has more than `cfg.inflight` messages unacknowledged (see
        # _send_until_disconnected), so paho's own cap is off: with a cap, paho walks every outstanding
        # message on each PUBACK looking for queued ones (O(window) per ack, ~6 % of the CPU per event).
        client.max_inflight_messages_set(0)
        client.will_set(self._status_topic, "offline", qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, self._password)
        if cfg.tls_ca:
            client.tls_set(
                ca_certs=str(cfg.tls_ca),
                certfile=str(cfg.tls_cert) if cfg.tls_cert else None,
                keyfile=str(cfg.tls_key) if cfg.tls_key else None,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect(self, client: mqtt.Client) -> bool:
        cfg = self._config.mqtt
        self._refused = None
        self._connack.clear()
        try:
            client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
        except (OSError, ValueError) as exc:
            self._note_error(f"cannot reach broker {cfg.host}:{cfg.port}: {exc}")
            return False
        client.loop_start()
        self._connack.wait(CONNACK_TIMEOUT_S)
        if not self._connected.is_set():
            self._note_error(self._refused or f"no CONNACK from {cfg.host}:{cfg.port} within {CONNACK_TIMEOUT_S:.0f} s")
            return False
        self.connections += 1
        self.connected_since = time.time()
        if not self._refusal_pending:
            self.last_error = None  # a refusal stays visible until an event gets through again
        with self._lock:  # a fresh client numbers its messages from 1 again
            self._inflight.clear()
            self._early_acks.clear()
            self._dirty = set(self._retained)  # the broker may have lost them (restart without persistence)
        self._publish(client, self._status_topic, "online", seq=None, retain=True)
        if self._birth_topic:
            client.subscribe(self._birth_topic, qos=1)
        log.info("mqtt: connected to %s:%s, forwarding to %s/events/#", cfg.host, cfg.port, self._config.base_topic)
        return True

    def _send_until_disconnected(self, client: mqtt.Client, reader: Any) -> None:
        window = self._config.mqtt.inflight
        refill_below = self._refill_below
        cursor = 0  # every connection starts again from the oldest undelivered event
        while self._connected.is_set():
            self._wake.clear()
            self._hand_over_acks()
            if self._dirty and not self._send_retained(client):
                return
            stopping = self._stop_requested.is_set()
            if stopping and (time.monotonic() >= self._flush_deadline or self._drained(cursor)):
                return
            target = self._committed_seq  # read before the query: all up to it is visible to it
            if len(self._inflight) < refill_below and target > cursor:
                room = window - len(self._inflight)
                events = pending_after(reader, cursor, room)
                for event in events:
                    topic = event_topic(self._config.base_topic, event.kind)
                    if not self._publish(client, topic, wire_payload(event, self._config.site, self._config.gateway),
                                         seq=event.seq):
                        return
                    cursor = event.seq
                if len(events) < room:
                    cursor = max(cursor, target)  # nothing else undelivered up to target
                elif len(self._inflight) < refill_below:
                    continue
            self._wake.wait(0.2 if stopping else 5.0)
        self._hand_over_acks()

    def _publish(self, client: mqtt.Client, topic: str, payload: str, *, seq: int | None,
                 retain: bool = False) -> mqtt.MQTTMessageInfo | None:
        """`seq` None: a retained status/state message, not an event."""
        """Publish at QoS 1 and remember which event the message id stands for.

        Never hold our lock while calling paho: paho calls on_publish with its own mutex held,
        and publish() takes that mutex, so holding ours across it would deadlock.
        """
        info = client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            if info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:  # a lost link is noted, with its cause, by whoever saw it
                self._note_error(f"publish failed: {mqtt.error_string(info.rc)}")
            return None
        with self._lock:
            refused = self._early_acks.pop(info.mid, None)  # the PUBACK came back before we got here
            if refused is None:
                self._inflight[info.mid] = topic if seq is None else seq
            elif not refused and seq is not None:
                self._acked.append(seq)
        if refused:
            if seq is None:
                self._state_refused(topic, "refused by the broker")
            else:
                self._refuse(client, seq, "refused by the broker")
        return info

    def _send_retained(self, client: mqtt.Client) -> bool:
        with self._lock:
            batch = [(topic, self._retained[topic]) for topic in sorted(self._dirty)]
            self._dirty.clear()
        for index, (topic, payload) in enumerate(batch):
            if self._publish(client, topic, payload, seq=None, retain=True) is None:
                with self._lock:  # not sent: try again on the next connection
                    self._dirty.update(t for t, _ in batch[index:])
                return False
        return True

    def _drained(self, cursor: int) -> bool:
        return not self._inflight and cursor >= self._committed_seq

    def _hand_over_acks(self) -> None:
        with self._lock:
            acked, self._acked = self._acked, []
        if acked:
            self.delivered_total += len(acked)
            self.last_error, self._refusal_pending = None, False  # events are getting through again
            self._mark_delivered(acked)

    def _say_offline(self, client: mqtt.Client) -> None:
        info = self._publish(client, self._status_topic, "offline", seq=None, retain=True)
        try:
            if info is not None:
                info.wait_for_publish(OFFLINE_PUBLISH_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            log.warning("mqtt: could not publish offline status: %s", exc)
        client.disconnect()

    def _close(self, client: mqtt.Client) -> None:
        client.loop_stop()
        if self._connected.is_set():
            client.disconnect()
        self._connected.clear()
        self.connected_since = None

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            log.warning("mqtt: %s", message)
        self.last_error = message

    # -- paho callbacks (network thread) ---------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = f"broker refused the connection: {reason}"
        else:
            self._connected.set()
        self._connack.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        # a disconnect we asked for (e.g. after a refused publish) is not an error, and must not hide the one noted
        if reason.is_failure and self._connected.is_set() and not self._stop_requested.is_set():
            self._note_error(f"disconnected from broker: {reason}")
        self._connected.clear()
        self._connack.set()
        self._wake.set()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # runs with paho's _out_message_mutex held: take only our own lock, briefly, and never call paho under it
        refused = None
        with self._lock:
            if mid not in self._inflight:
                self._early_acks[mid] = bool(reason.is_failure)
                return
            entry = self._inflight.pop(mid)
            if isinstance(entry, int):
                if reason.is_failure:
                    refused = entry
                else:
                    self._acked.append(entry)
            # Wake the forwarder thread only when it has something to do: room to refill the window, or a
            # stop waiting for the last acks. Waking it on every PUBACK cost a loop turn and a small outbox
            # DELETE transaction (an fsync with synchronous = "full") per handful of acks; the acks kept
            # here meanwhile are handed over on its next turn, at most a quarter of the window later.
            wake = len(self._inflight) < self._refill_below or self._stop_requested.is_set()
        if isinstance(entry, str) and reason.is_failure:
            self._state_refused(entry, str(reason))
        if refused is not None:
            self._refuse(client, refused, str(reason))
        if wake or refused is not None:
            self._wake.set()

    def _state_refused(self, topic: str, reason: str) -> None:
        """A refused state or discovery topic costs no events: say so once per topic, keep forwarding."""
        if topic not in self._refused_states:
            self._refused_states.add(topic)
            log.warning("mqtt: broker refused retained topic %s: %s (check the broker's ACL)", topic, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Home Assistant's birth message: it has (re)started and wants the discovery configs again
        if message.topic == self._birth_topic and message.payload == b"online":
            with self._lock:
                self._dirty = set(self._retained)
            self._wake.set()

    def _refuse(self, client: mqtt.Client, seq: int, reason: str) -> None:
        """The broker refused an event (e.g. not authorised for its topic): keep it in the outbox,
        reconnect after the backoff and try again, rather than lose it."""
        self._note_error(f"broker refused event seq {seq}: {reason}")
        self._refusal_pending = True
        client.disconnect()
