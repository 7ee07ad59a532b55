"""Shared fixtures: real mosquitto, real subscriber, real gateway processes, real SQLite files."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.configs import base_config, write_config
from tests.support.gateway_proc import GatewayProcess
from tests.support.mosquitto import Mosquitto
from tests.support.socat import PtyPair
from tests.support.subscriber import Subscriber


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on a free loopback port. Missing mosquitto is an error, never a skip."""
    server = Mosquitto(tmp_path / "mosquitto").start()
    yield server
    server.stop()


@pytest.fixture
def subscriber_factory(broker: Mosquitto) -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(topic: str = "#", **kwargs: Any) -> Subscriber:
        kwargs.setdefault("client_id", f"test-subscriber-{len(made)}")
        sub = Subscriber(broker.host, broker.port, topic, **kwargs)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


@pytest.fixture
def subscriber(subscriber_factory: Callable[..., Subscriber]) -> Subscriber:
    return subscriber_factory("dcgate/#")


@pytest.fixture
def make_config(tmp_path: Path, broker: Mosquitto) -> Callable[..., Path]:
    """Write a config for the test broker; keyword arguments override top-level keys or merge tables."""
    counter = iter(range(1000))

    def make(**overrides: Any) -> Path:
        n = next(counter)
        data = base_config(tmp_path / f"data{n}", broker.port, **overrides)
        return write_config(tmp_path / f"dcgate{n}.toml", data)

    return make


@pytest.fixture
def gateway_factory() -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(config_path: Path, **kwargs: Any) -> GatewayProcess:
        proc = GatewayProcess(config_path, **kwargs)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyPair]:
    """A real serial link: a socat pty pair; the emulated device opens `.a`, the gateway `.b`."""
    pair = PtyPair(tmp_path / "ttyDEVICE", tmp_path / "ttyGATEWAY").start()
    yield pair
    pair.stop()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Like pymodbus' conftest: a test that leaves threads running fails (in-process code must clean up)."""
    before = set(threading.enumerate())
    yield
    new_threads = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in new_threads:  # daemon threads too: a leaked store writer is daemon
        thread.join(5)
    leaked = [t.name for t in new_threads if t.is_alive()]
    assert not leaked, f"test leaked threads: {leaked}"
