"""What goes upstream and when: topics, the payload contract, status/Last Will, PUBACK-gated outbox,
authentication, TLS, broker refusals and the bounded outbox. Real mosquitto, real gateway process."""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.eventstore import committed_events, outbox_seqs
from tests.support.mosquitto import Mosquitto
from tests.support.subscriber import Subscriber
from tests.support.waiting import wait_until

BASE = "dcgate/test-site/test-gw"
STATUS_TOPIC = f"{BASE}/status"
ENVELOPE = {"id", "ts", "kind", "site", "gateway", "schema", "source", "seq", "hash", "prev_hash"}
# what a site's ACL grants the gateway besides events: status, retained state, Home Assistant discovery
STATE_ACL = (f"topic write {STATUS_TOPIC}\ntopic write {BASE}/env/#\n"
             "topic write homeassistant/#\ntopic read homeassistant/status\n")
UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


# -- helpers: own brokers (auth, TLS, ACL) and their subscribers --------------------------------------


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    made: list[Mosquitto] = []

    def make(name: str, **kwargs: Any) -> Mosquitto:
        server = Mosquitto(tmp_path / name, **kwargs).start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def own_subscriber() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(server: Mosquitto, topic: str = "dcgate/#", **kwargs: Any) -> Subscriber:
        kwargs.setdefault("client_id", f"own-subscriber-{len(made)}")
        sub = Subscriber(server.host, server.port, topic, **kwargs)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


def mosquitto_passwords(path: Path, users: dict[str, str]) -> Path:
    """A mosquitto password file made by the real `mosquitto_passwd`."""
    for n, (user, password) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if n == 0 else []), str(path), user, password],
                       check=True, capture_output=True)
    return path


def secret_file(path: Path, password: str) -> Path:
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


# -- topics and payload ----------------------------------------------------------------------------


def test_topic_per_kind_and_the_payload_contract(make_config, gateway_factory, subscriber):
    # The gateway runs 7 h east of UTC: timestamps must still be UTC.
    gw = gateway_factory(make_config(), env={"TZ": "WIB-7"})
    gw.control("sim.set", {"device": "probe", "name": "rack1", "values": {"temperature": "27.5", "humidity": "61"}})
    reading = wait_until(
        lambda: next((m for m in subscriber.snapshot() if "/events/" in m.topic
                      and m.json["kind"] == "env.reading" and m.json["temperature_c"] == 27.5), None),
        10, message="the 27.5 °C reading upstream",
    )
    assert reading.topic == f"{BASE}/events/env/reading"
    assert not reading.retain
    payload = reading.json
    assert set(payload) == ENVELOPE | {"probe", "temperature_c", "humidity_pct"}
    assert payload["kind"] == "env.reading" and payload["source"] == "probe:rack1" and payload["probe"] == "rack1"
    assert payload["humidity_pct"] == 61
    assert payload["site"] == "test-site" and payload["gateway"] == "test-gw" and payload["schema"] == 1
    assert UTC_MS.match(payload["ts"]), payload["ts"]
    sent = dt.datetime.strptime(payload["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - sent).total_seconds()) < 60, "ts must be UTC"
    assert re.fullmatch(r"[0-9a-f]{64}", payload["hash"]) and re.fullmatch(r"[0-9a-f]{64}", payload["prev_hash"])

    # exactly what the store committed, chain fields included
    stored = {e.id: e for e in committed_events(gw.config.database_path)}
    event = stored[payload["id"]]
    assert (payload["seq"], payload["ts"], payload["hash"], payload["prev_hash"]) == (
        event.seq, event.ts, event.hash, event.prev_hash)
    assert {k: payload[k] for k in event.fields} == event.fields

    # every event goes to {base}/events/{kind with dots as slashes}
    events = [m for m in subscriber.snapshot() if "/events/" in m.topic]
    assert {m.topic for m in events} >= {f"{BASE}/events/gateway/started", f"{BASE}/events/env/reading"}
    for message in events:
        assert message.topic == f"{BASE}/events/" + message.json["kind"].replace(".", "/")
    started = next(m.json for m in events if m.json["kind"] == "gateway.started")
    assert started["seq"] == 1 and started["prev_hash"] == "0" * 64 and started["source"] == "gateway"
    assert started["previous_shutdown"] == "first_start" and started["probes"] == ["rack1"]


def test_custom_base_topic_is_used_for_events_and_status(make_config, gateway_factory, subscriber_factory):
    everything = subscriber_factory("#", client_id="everything")
    base = "pemda/jambi/ruang-server-1"
    gw = gateway_factory(make_config(mqtt={"base_topic": base}))
    wait_until(lambda: everything.on_topic(f"{base}/events/gateway/started"), 10, message="gateway.started")
    wait_until(lambda: [m for m in everything.on_topic(f"{base}/status") if m.payload == b"online"], 10,
               message="online on the custom status topic")
    assert gw.status()["mqtt"]["base_topic"] == base
    assert gw.terminate() == 0
    wait_until(lambda: everything.on_topic(f"{base}/events/gateway/stopped"), 10, message="gateway.stopped")
    wait_until(lambda: [m.payload for m in everything.on_topic(f"{base}/status")][-1:] == [b"offline"], 10,
               message="offline")
    # everything is under the base topic, except the Home Assistant discovery configs
    outside = {m.topic for m in everything.snapshot() if not m.topic.startswith(base + "/")}
    assert outside and all(t.startswith("homeassistant/sensor/") for t in outside), outside
    for topic in outside:
        assert json.loads(everything.on_topic(topic)[-1].payload)["state_topic"] == f"{base}/env/rack1"


# -- retained status and Last Will -------------------------------------------------------------------


def retained_status(subscriber_factory, name: str, topic: str = STATUS_TOPIC) -> bytes:
    """What a subscriber connecting now is told: the retained status."""
    late = subscriber_factory(topic, persistent=False, client_id=name)
    message = wait_until(lambda: late.on_topic(topic), 10, message=f"the retained {topic}")[0]
    assert message.retain
    return message.payload


def test_retained_online_on_connect_and_offline_on_sigterm(make_config, gateway_factory, subscriber,
                                                           subscriber_factory):
    gw = gateway_factory(make_config())
    wait_until(lambda: gw.status()["mqtt"]["connected"], 10, message="the MQTT link up")
    wait_until(lambda: subscriber.on_topic(STATUS_TOPIC), 10, message="online")
    assert retained_status(subscriber_factory, "late-1") == b"online"
    assert gw.terminate() == 0
    assert retained_status(subscriber_factory, "late-2") == b"offline"
    wait_until(lambda: [m.payload for m in subscriber.on_topic(STATUS_TOPIC)] == [b"online", b"offline"], 10,
               message=lambda: f"online then offline, got {subscriber.on_topic(STATUS_TOPIC)}")


def test_last_will_says_offline_after_sigkill(make_config, gateway_factory, subscriber, subscriber_factory):
    gw = gateway_factory(make_config())
    wait_until(lambda: gw.status()["mqtt"]["connected"], 10, message="the MQTT link up")
    assert retained_status(subscriber_factory, "late-1") == b"online"
    gw.kill()  # no chance to say goodbye: only the broker's Last Will can
    wait_until(lambda: [m.payload for m in subscriber.on_topic(STATUS_TOPIC)][-1:] == [b"offline"], 10,
               message="the Last Will")
    assert retained_status(subscriber_factory, "late-2") == b"offline"
    assert "gateway.stopped" not in {e.kind for e in committed_events(gw.config.database_path)}


# -- the outbox is emptied by PUBACKs only ---------------------------------------------------------------


def test_events_stay_in_the_outbox_until_the_broker_acknowledges(make_config, gateway_factory, broker, subscriber):
    broker.stop()  # the subscriber's persistent session keeps what is published for it later
    gw = gateway_factory(make_config())
    gw.control("sim.set", {"device": "probe", "name": "rack1", "values": {"temperature": "30"}})
    status = wait_until(lambda: (s := gw.status())["store"]["last_seq"] >= 3 and s, 10, message="3 events")
    wait_until(lambda: gw.status()["mqtt"]["last_error"], 10, message="the connection error")
    status = gw.status()
    assert status["mqtt"]["connected"] is False and status["mqtt"]["delivered_total"] == 0
    assert f"127.0.0.1:{broker.port}" in status["mqtt"]["last_error"]
    assert status["store"]["outbox_depth"] == status["store"]["last_seq"] >= 3
    assert outbox_seqs(gw.config.database_path) == list(range(1, status["store"]["last_seq"] + 1))

    broker.start()
    wait_until(lambda: gw.status()["store"]["outbox_depth"] == 0, 30, message="the outbox to empty")
    status = gw.status()
    assert status["mqtt"]["connected"] is True and status["mqtt"]["last_error"] is None
    assert status["mqtt"]["delivered_total"] >= 3
    committed = committed_events(gw.config.database_path)
    subscriber.wait_for_ids({e.id for e in committed}, 10)
    assert outbox_seqs(gw.config.database_path) == []


# -- username / password -------------------------------------------------------------------------------


@pytest.fixture
def auth_broker(tmp_path, own_broker) -> Mosquitto:
    passwords = mosquitto_passwords(tmp_path / "mosquitto.passwd", {"gw": "s3cret-Gateway-pw", "reader": "r34d"})
    return own_broker("mq-auth", allow_anonymous=False, extra_conf=f"password_file {passwords}\n")


def test_username_and_password_file_deliver(tmp_path, make_config, gateway_factory, auth_broker, own_subscriber):
    sub = own_subscriber(auth_broker, username="reader", password="r34d")
    password_file = secret_file(tmp_path / "gw.pw", "s3cret-Gateway-pw")
    gw = gateway_factory(make_config(mqtt={"port": auth_broker.port, "username": "gw",
                                           "password_file": str(password_file)}, logging={"level": "debug"}))
    wait_until(lambda: gw.status()["store"]["outbox_depth"] == 0 and gw.status()["mqtt"]["connected"], 10,
               message="delivery with the right password")
    sub.wait_for_ids({e.id for e in committed_events(gw.config.database_path)}, 10)
    assert gw.terminate() == 0
    assert "s3cret-Gateway-pw" not in gw.log_text()


def test_wrong_password_keeps_events_and_never_logs_the_password(tmp_path, make_config, gateway_factory,
                                                                  auth_broker, own_subscriber):
    sub = own_subscriber(auth_broker, username="reader", password="r34d")
    password_file = secret_file(tmp_path / "gw.pw", "Wr0ng-pa55word-xyz")
    gw = gateway_factory(make_config(mqtt={"port": auth_broker.port, "username": "gw",
                                           "password_file": str(password_file)}, logging={"level": "debug"}))
    error = wait_until(lambda: gw.status()["mqtt"]["last_error"], 15, message="the refusal")
    assert "refused" in error and ("password" in error.lower() or "authori" in error.lower()), error
    status = gw.status()
    assert status["mqtt"]["connected"] is False and status["mqtt"]["connections"] == 0
    assert status["mqtt"]["delivered_total"] == 0
    assert status["store"]["outbox_depth"] >= 1
    assert gw.terminate() == 0
    assert 1 in outbox_seqs(gw.config.database_path), "gateway.started must still wait in the outbox"
    assert sub.events() == []
    log_text = gw.log_text()
    assert "refused" in log_text
    assert "Wr0ng-pa55word-xyz" not in log_text


# -- TLS -------------------------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_ca(directory: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert, _write_cert(cert, directory / f"{name}.pem")


def make_server_cert(directory: Path, ca_key, ca_cert) -> tuple[Path, Path]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _write_cert(cert, directory / "server.pem"), _write_key(key, directory / "server.key")


@pytest.fixture
def tls_broker(tmp_path, own_broker) -> tuple[Mosquitto, Path]:
    """A mosquitto whose only listener speaks TLS with a certificate from a CA made for this test."""
    certs = tmp_path / "certs"
    certs.mkdir()
    ca_key, ca_cert, ca_path = make_ca(certs, "test-ca")
    cert_path, key_path = make_server_cert(certs, ca_key, ca_cert)
    server = own_broker("mq-tls", extra_conf=f"cafile {ca_path}\ncertfile {cert_path}\nkeyfile {key_path}\n")
    return server, ca_path


def test_tls_with_the_right_ca_delivers(make_config, gateway_factory, tls_broker, own_subscriber):
    server, ca_path = tls_broker
    sub = own_subscriber(server, ca_certs=str(ca_path))
    gw = gateway_factory(make_config(mqtt={"port": server.port, "tls_ca": str(ca_path)}))
    wait_until(lambda: gw.status()["store"]["outbox_depth"] == 0 and gw.status()["mqtt"]["connected"], 10,
               message=lambda: f"delivery over TLS: {gw.status()['mqtt']}")
    assert gw.status()["mqtt"]["broker"] == f"mqtts://127.0.0.1:{server.port}"
    sub.wait_for_ids({e.id for e in committed_events(gw.config.database_path)}, 10)
    wait_until(lambda: sub.on_topic(STATUS_TOPIC), 10, message="online over TLS")


def test_tls_with_another_ca_does_not_connect(tmp_path, make_config, gateway_factory, tls_broker):
    server, _ = tls_broker
    _, _, stranger_ca = make_ca(tmp_path, "stranger-ca")
    gw = gateway_factory(make_config(mqtt={"port": server.port, "tls_ca": str(stranger_ca)}))
    error = wait_until(lambda: gw.status()["mqtt"]["last_error"], 15, message="the TLS failure")
    assert "certificate" in error.lower(), error
    status = gw.status()
    assert status["mqtt"]["connected"] is False and status["mqtt"]["connections"] == 0
    assert status["store"]["outbox_depth"] >= 1


# -- the broker refuses a publish (ACL): PUBACK with a failure reason code ----------------------------------


def test_refused_publish_stays_in_the_outbox_and_is_retried(tmp_path, make_config, gateway_factory, own_broker,
                                                            own_subscriber):
    passwords = mosquitto_passwords(tmp_path / "mosquitto.passwd", {"gw": "gw-pw-1", "reader": "r34d"})
    acl = tmp_path / "mosquitto.acl"
    # the gateway may say online/offline and publish its state, but may not publish events
    acl.write_text(f"user gw\n{STATE_ACL}\nuser reader\ntopic read dcgate/#\n")
    server = own_broker("mq-acl", allow_anonymous=False, extra_conf=f"password_file {passwords}\nacl_file {acl}\n")
    sub = own_subscriber(server, username="reader", password="r34d")
    gw = gateway_factory(make_config(mqtt={"port": server.port, "username": "gw",
                                           "password_file": str(secret_file(tmp_path / "gw.pw", "gw-pw-1"))}))
    error = wait_until(lambda: gw.status()["mqtt"]["last_error"], 15, message="the refusal")
    assert re.fullmatch(r"broker refused event seq \d+: Not authorized", error), error
    wait_until(lambda: gw.status()["mqtt"]["connections"] >= 3, 15, message="the gateway to retry")
    status = gw.status()
    assert status["mqtt"]["delivered_total"] == 0
    assert status["store"]["outbox_depth"] == status["store"]["last_seq"]
    assert outbox_seqs(gw.config.database_path)[0] == 1
    assert "broker refused event seq 1" in gw.log_text()
    assert sub.events() == []
    wait_until(lambda: [m.payload for m in sub.on_topic(STATUS_TOPIC)][:1] == [b"online"], 10,
               message="online: the gateway did get in")

    # once the broker allows it, the kept events go out: nothing was lost to the refusals
    acl.write_text(f"user gw\ntopic write {BASE}/#\n\nuser reader\ntopic read dcgate/#\n")
    server.restart()
    wait_until(lambda: gw.status()["store"]["outbox_depth"] == 0, 30, message="the outbox to drain")
    assert gw.status()["mqtt"]["last_error"] is None
    sub.wait_for_ids({e.id for e in committed_events(gw.config.database_path)}, 10)


# -- the bounded outbox ----------------------------------------------------------------------------------


def test_outbox_bound_drops_the_oldest_records_the_drop_and_forwards_the_record(make_config, gateway_factory,
                                                                               broker, subscriber):
    broker.stop()
    gw = gateway_factory(make_config(outbox={"max_rows": 100}, store={"synchronous": "normal", "housekeeping_s": 0.2}))
    database = gw.config.database_path
    # 160 events while the broker is down: one reading per `sim set`, no more afterwards
    n = 0
    while gw.status()["store"]["last_seq"] < 160:
        n += 1
        gw.control("sim.set", {"device": "probe", "name": "rack1", "values": {"temperature": str(20 + n % 10)}})
    produced = gw.status()["store"]["last_seq"]
    # the next bound check trims the outbox back to max_rows, the drop record included
    wait_until(lambda: gw.status()["store"]["outbox_depth"] <= 100, 5, message="the outbox back within its bound")
    drops = committed_events(database, kind="outbox.dropped")
    assert drops
    first = drops[0].fields
    assert first["reason"] == "max_rows" and first["detail"] == "over 100 rows"
    assert first["first_seq"] == 1 and first["count"] == first["last_seq"], "the oldest go first, none skipped"
    covered = {seq for d in drops for seq in range(d.fields["first_seq"], d.fields["last_seq"] + 1)}
    assert sum(d.fields["count"] for d in drops) == len(covered) >= produced - 100
    # bounds are checked every housekeeping_s, so drops (and their records) are at least that far apart
    times = [dt.datetime.strptime(d.ts, "%Y-%m-%dT%H:%M:%S.%fZ") for d in drops]
    assert all((b - a).total_seconds() >= 0.15 for a, b in itertools.pairwise(times)), [d.ts for d in drops]
    assert set(outbox_seqs(database)).isdisjoint(covered)
    assert {d.seq for d in drops} <= set(outbox_seqs(database)), "the records of the drops wait for the broker"

    broker.start()
    wait_until(lambda: gw.status()["store"]["outbox_depth"] == 0, 30, message="the outbox to drain")
    assert gw.terminate() == 0
    committed = committed_events(database)
    subscriber.wait_for_ids({e.id for e in committed if e.seq not in covered}, 30)
    received = set(subscriber.event_ids())
    assert {d.id for d in drops} <= received, "every record of a drop goes upstream"
    assert not [e.seq for e in committed if e.seq in covered and e.id in received], "dropped events are not sent"
    assert committed[-1].kind == "gateway.stopped" and committed[-1].id in received


def test_refused_publishes_back_off_instead_of_retrying_every_second(tmp_path, make_config, gateway_factory,
                                                                    own_broker):
    """Regression: each accepted connection used to reset the backoff, so a broker that refuses every
    event was hit with a connect and a refused publish every `reconnect_min_s`, forever."""
    passwords = mosquitto_passwords(tmp_path / "mosquitto.passwd", {"gw": "gw-pw-1"})
    acl = tmp_path / "mosquitto.acl"
    acl.write_text(f"user gw\n{STATE_ACL}")
    server = own_broker("mq-acl-backoff", allow_anonymous=False,
                        extra_conf=f"password_file {passwords}\nacl_file {acl}\n")
    gw = gateway_factory(make_config(mqtt={"port": server.port, "username": "gw", "reconnect_min_s": 0.2,
                                           "reconnect_max_s": 2.0,
                                           "password_file": str(secret_file(tmp_path / "gw.pw", "gw-pw-1"))}))
    wait_until(lambda: gw.status()["mqtt"]["last_error"], 15, message="the first refusal")
    first = gw.status()["mqtt"]["connections"]
    time.sleep(4)  # deliberately let 4 s of retries happen: the count over that time is what is checked
    retries = gw.status()["mqtt"]["connections"] - first
    # backing off 0.2, 0.4, 0.8, 1.6, 2.0 s gives about 4 connections in 4 s; without backoff it was ~20
    assert 1 <= retries <= 6, f"{retries} connections in 4 s"
    # the first events of the window are all refused; the error names whichever PUBACK came last
    assert re.fullmatch(r"broker refused event seq \d+: Not authorized", gw.status()["mqtt"]["last_error"])
