"""A real MQTT subscriber that records everything it receives, for assertions."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.waiting import wait_until


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """Persistent session (clean_session=False), QoS 1: survives broker restarts without losing messages."""

    def __init__(self, host: str, port: int, topic: str = "#", *, client_id: str = "test-subscriber",
                 persistent: bool = True, **tls_and_auth: Any) -> None:
        self.topic = topic
        self._lock = threading.Lock()
        self.messages: list[Received] = []
        self.connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent
        )
        if "username" in tls_and_auth:
            self.client.username_pw_set(tls_and_auth["username"], tls_and_auth.get("password"))
        if "ca_certs" in tls_and_auth:
            self.client.tls_set(ca_certs=tls_and_auth["ca_certs"])
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        wait_until(self.connected.is_set, 10, message="subscriber to connect")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic, qos=1)
            self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, message.payload, bool(message.retain)))

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def events(self) -> list[dict[str, Any]]:
        """Every event message received, in arrival order (duplicates kept)."""
        return [m.json for m in self.snapshot() if "/events/" in m.topic]

    def event_ids(self) -> list[str]:
        return [event["id"] for event in self.events()]

    def on_topic(self, topic: str) -> list[Received]:
        return [m for m in self.snapshot() if m.topic == topic]

    def wait_for_ids(self, ids: set[str], timeout: float = 30.0) -> None:
        wait_until(lambda: ids <= set(self.event_ids()), timeout,
                   message=lambda: f"{len(ids - set(self.event_ids()))} of {len(ids)} events to arrive")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
