"""Acceptance: SIGKILL at 20 random moments loses nothing committed and never breaks order or the chain.

The store runs with `synchronous = "normal"`: SIGKILL ends the process, not the kernel, so every
page SQLite has written (WAL included) is still in the OS page cache and reaches the file; only an
OS crash or power cut can lose the last `normal` commits. `full` would only add an fsync per
batch, which this failure mode cannot observe, and slow the test down.
"""

from __future__ import annotations

import os
import random
import time

from tests.support.configs import base_config, write_config
from tests.support.eventstore import check_delivery, committed_events, outbox_seqs
from tests.support.gateway_proc import run_cli
from tests.support.waiting import wait_until

KILLS = 20
FAST_PROBES = [{"name": f"rack{i}", "driver": "sim", "interval_s": 0.005} for i in range(8)]


def test_sigkill_at_random_moments_loses_nothing(tmp_path, broker, gateway_factory, subscriber):
    seed = int(os.environ.get("DCGATE_CRASH_SEED", random.randrange(2**32)))
    print(f"crash test seed: {seed} (rerun with DCGATE_CRASH_SEED={seed})")
    rng = random.Random(seed)
    data_dir = tmp_path / "gw-data"
    fast = write_config(tmp_path / "fast.toml",
                        base_config(data_dir, broker.port, probes=FAST_PROBES, store={"synchronous": "normal"}))
    gw = gateway_factory(fast)
    database = gw.config.database_path

    kill_points = []
    for kill in range(KILLS):
        if kill:
            gw.start()  # waits until the control socket answers, i.e. the gateway is up again
        # Deliberately let time pass: the probes commit events and the forwarder streams them while
        # the kill comes at a random moment (sometimes right at start-up, before MQTT is connected).
        time.sleep(rng.uniform(0.0, 1.5))
        before = gw.status()["store"]
        gw.kill()
        kill_points.append((before["last_seq"], before["outbox_depth"]))
    print(f"(last_seq, outbox_depth) just before each kill: {kill_points}")

    # The 21st start drains: same data_dir, probes slowed down so the outbox can empty.
    drain = write_config(tmp_path / "drain.toml", base_config(data_dir, broker.port, store={"synchronous": "normal"}))
    gw_drain = gateway_factory(drain)
    wait_until(lambda: gw_drain.status()["store"]["outbox_depth"] == 0, 60,
               message=lambda: f"the outbox to drain: {gw_drain.status()}")
    assert gw_drain.terminate() == 0

    committed = committed_events(database)
    assert outbox_seqs(database) == []
    assert len(committed) > 1000, "the probes should have produced a real stream of events"
    subscriber.wait_for_ids({event.id for event in committed}, timeout=60)
    received = subscriber.events()
    check_delivery(committed, received)
    print(f"{len(committed)} events committed, {len(received) - len(committed)} duplicates received after the kills")

    verify = run_cli("log", "verify", "--config", str(drain))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"OK: {len(committed)} events" in verify.stdout

    starts = [event.fields for event in committed if event.kind == "gateway.started"]
    assert [start["previous_shutdown"] for start in starts] == ["first_start"] + ["unclean"] * KILLS
    stops = [event for event in committed if event.kind == "gateway.stopped"]
    assert len(stops) == 1 and stops[0] == committed[-1] and stops[0].fields["reason"] == "SIGTERM"
