"""Backups (SOP Tegal 7): online copies of a live store, names, report, retention, downloads, schedule, CLI.

Real parts only: real SQLite files, the real StoreWriter thread, the real control socket server.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.backup import (
    REPORT_COLUMNS,
    REPORT_NAME,
    BackupError,
    BackupScheduler,
    backup_database,
    backup_handlers,
    list_backups,
    prune_backups,
    resolve_backup,
)
from gateway.cli import backup_cmd
from gateway.config.loader import load_config
from gateway.config.models import Config
from gateway.datadir import DataDirLock
from gateway.errors import DcgateError, InvalidValueError
from gateway.store.database import open_for_reading
from gateway.store.events import verify
from gateway.store.writer import StoreWriter
from tests.support.configs import base_config, write_config
from tests.support.eventstore import committed_events
from tests.support.gateway_proc import run_cli
from tests.support.ports import free_port
from tests.support.waiting import wait_until

WITA = ZoneInfo("Asia/Makassar")  # UTC+8: local names differ from UTC ones
PREFIX = "dcgate-test-site-test-gw-"


def _write(tmp_path: Path, name: str = "dcgate", **overrides: Any) -> Path:
    overrides.setdefault("access", {"timezone": "Asia/Makassar"})
    # the offline paths never connect to the broker: any port number will do
    data = base_config(tmp_path / f"{name}-data", free_port(), **overrides)
    return write_config(tmp_path / f"{name}.toml", data)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(_write(tmp_path))


@pytest.fixture
def writer(config: Config) -> Iterator[StoreWriter]:
    store = StoreWriter(config.database_path, synchronous="normal")
    store.start()
    yield store
    store.stop()


def _fill(writer: StoreWriter, count: int) -> None:
    last = None
    for i in range(count):
        last = writer.append("test.filler", "test", {"i": i, "pad": "x" * 200})
    if last is not None:
        last.result(60)


def _check_copy(path: Path) -> tuple[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    db = open_for_reading(path)
    try:
        return integrity, verify(db)
    finally:
        db.close()


def _report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == REPORT_COLUMNS
    return [dict(zip(REPORT_COLUMNS, row, strict=True)) for row in rows[1:]]


# -- (1) an online copy of a store that is being written ---------------------------------------------
def test_online_backup_while_the_writer_keeps_appending(tmp_path, config, writer):
    _fill(writer, 20_000)  # some MB, so the copy takes many steps
    stop = threading.Event()

    def keep_appending() -> None:
        n = 0
        while not stop.is_set():
            writer.append_and_wait("test.tick", "test", {"n": n})
            n += 1

    appender = threading.Thread(target=keep_appending)
    appender.start()
    try:
        before = wait_until(lambda: writer.last_seq > 20_050 and writer.last_seq, message="the appender to run")
        # 16 pages a step: hundreds of steps, with commits in between
        result = backup_database(config, tmp_path / "out", by="test", emit=writer.append_and_wait, step_pages=16)
        during = writer.last_seq
    finally:
        stop.set()
        appender.join(10)
    assert during > before, "the writer was not blocked while the copy was made"
    integrity, chain = _check_copy(result.path)
    assert integrity == "ok" and chain.ok, chain.problem
    assert 20_000 < result.last_seq == chain.head_seq <= writer.last_seq
    assert result.integrity == "ok" and result.bytes == result.path.stat().st_size
    # one file, no journal or partial left next to it
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [result.path.name, REPORT_NAME]
    (event,) = committed_events(config.database_path, kind="backup.completed")
    assert event.source == "backup" and event.seq > result.last_seq
    assert event.fields == {"file": result.path.name, "dir": str(tmp_path / "out"), "bytes": result.bytes,
                            "sha256": result.sha256, "last_seq": result.last_seq,
                            "duration_s": result.duration_s, "by": "test"}
    # restored as another gateway's data_dir, `dcgate log verify` finds the chain intact
    restored = _write(tmp_path, "restored")
    restored_config = load_config(restored)
    restored_config.data_dir.mkdir(mode=0o700)
    shutil.copyfile(result.path, restored_config.database_path)
    done = run_cli("log", "verify", "--config", str(restored))
    assert done.returncode == 0, done.stderr
    assert f"OK: {result.last_seq} events" in done.stdout


# -- (2) names ----------------------------------------------------------------------------------------
def test_names_are_local_time_never_overwritten_and_owner_only(tmp_path, config, writer):
    _fill(writer, 10)
    to_dir = tmp_path / "new" / "backups"
    now = datetime(2026, 11, 21, 1, 2, 3, tzinfo=UTC)  # 09.02.03 WITA
    paths = [backup_database(config, to_dir, by="test", emit=writer.append_and_wait, now=now).path
             for _ in range(3)]
    assert [p.name for p in paths] == [f"{PREFIX}20261121-090203.db", f"{PREFIX}20261121-090203-2.db",
                                       f"{PREFIX}20261121-090203-3.db"]
    assert len({p.read_bytes() for p in paths}) == 3  # each a copy of its own moment, none replaced
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(to_dir.stat().st_mode) == 0o700
    listed = list_backups(to_dir, "test-site", "test-gw")
    assert [item["name"] for item in listed] == [p.name for p in reversed(paths)]
    assert listed[0]["taken_at"] == "2026-11-21T09:02:03" and listed[0]["bytes"] == paths[2].stat().st_size


# -- (3) the report -----------------------------------------------------------------------------------
def test_the_report_has_a_line_per_backup_and_gagal_for_a_failure(tmp_path, config, writer):
    _fill(writer, 10)
    to_dir = tmp_path / "out"
    first = backup_database(config, to_dir, by="cli:budi", emit=writer.append_and_wait)
    second = backup_database(config, to_dir, by="jadwal", emit=writer.append_and_wait)
    rows = _report(to_dir / REPORT_NAME)
    assert [(r["berkas (file)"], r["hasil (result)"], r["oleh (by)"]) for r in rows] == [
        (first.path.name, "BERHASIL", "cli:budi"), (second.path.name, "BERHASIL", "jadwal")]
    assert rows[1]["sha256"] == second.sha256 and rows[1]["ukuran (bytes)"] == str(second.bytes)
    assert rows[1]["seq terakhir (last seq)"] == str(second.last_seq)
    assert datetime.fromisoformat(rows[0]["waktu (time)"]).utcoffset() == timedelta(hours=8)

    # a directory below a regular file cannot be made, not even by root
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    bad = blocker / "sub"
    with pytest.raises(BackupError) as caught:
        backup_database(config, bad, by="cli:budi", emit=writer.append_and_wait)
    message = str(caught.value)
    assert str(bad) in message and "backup gagal / backup failed" in message and "Fix" in message
    assert caught.value.exit_code == 1 and isinstance(caught.value, DcgateError)
    # the directory cannot hold the report either: the line goes to the gateway's own data_dir
    (failed,) = _report(config.data_dir / REPORT_NAME)
    assert failed["hasil (result)"] == "GAGAL" and failed["oleh (by)"] == "cli:budi"
    assert str(bad) in failed["keterangan (note)"]
    (event,) = committed_events(config.database_path, kind="backup.failed")
    assert event.fields == {"dir": str(bad), "error": message, "by": "cli:budi"}
    assert len(_report(to_dir / REPORT_NAME)) == 2


def test_a_failed_copy_leaves_no_partial_file_and_its_line_in_the_directory(tmp_path):
    config = load_config(_write(tmp_path))
    config.data_dir.mkdir(mode=0o700)
    config.database_path.write_bytes(b"this is not a database\n" * 500)
    to_dir = tmp_path / "out"
    with pytest.raises(BackupError, match="backup gagal / backup failed"):
        backup_database(config, to_dir, by="test", emit=None)
    assert [p.name for p in to_dir.iterdir()] == [REPORT_NAME]  # the partial copy is gone
    (row,) = _report(to_dir / REPORT_NAME)
    assert row["hasil (result)"] == "GAGAL" and row["sha256"] == ""


# -- (4) retention ------------------------------------------------------------------------------------
def test_prune_deletes_only_own_old_backups_by_the_name(tmp_path, config, writer):
    to_dir = tmp_path / "out"
    to_dir.mkdir()
    now = datetime(2026, 11, 21, 9, 0, 0, tzinfo=WITA)
    old, old_same_second = f"{PREFIX}20251101-080000.db", f"{PREFIX}20251101-080000-2.db"
    kept = [
        f"{PREFIX}20261101-080000.db",  # 20 days old
        f"{PREFIX}20251121-100000.db",  # 364.96 days: not yet over a year
        "dcgate-test-site-other-gw-20240101-000000.db",  # another gateway's
        "dcgate-test-site-test-gw-2-20240101-000000.db",  # gateway "test-gw-2", not ours
        f"{PREFIX}20240101-000000.db.partial",
        f"{PREFIX}20241399-000000.db",  # no such date
        "notes.txt", REPORT_NAME,
    ]
    for name in [old, old_same_second, *kept]:
        (to_dir / name).write_text(name)
    # an old mtime does not make a file old: the name does
    recent = to_dir / kept[0]
    os.utime(recent, (time.time() - 900 * 86400,) * 2)
    (to_dir / f"{PREFIX}20230101-000000.db").mkdir()  # a directory, even with our name, is not a backup
    kept.append(f"{PREFIX}20230101-000000.db")

    deleted = prune_backups(to_dir, 365, site="test-site", gateway="test-gw", emit=writer.append_and_wait, now=now)
    assert [p.name for p in deleted] == [old, old_same_second]  # oldest first
    assert sorted(p.name for p in to_dir.iterdir()) == sorted(kept)
    events = committed_events(config.database_path, kind="backup.deleted")
    assert [e.fields["file"] for e in events] == [old, old_same_second]
    assert all(e.source == "backup" and e.fields["age_days"] == 385.04 for e in events)


def test_a_backup_with_keep_days_prunes_after_it_is_made(tmp_path, config, writer):
    to_dir = tmp_path / "out"
    to_dir.mkdir()
    (to_dir / f"{PREFIX}20200101-000000.db").write_text("old")
    result = backup_database(config, to_dir, by="test", emit=writer.append_and_wait, keep_days=365)
    assert [p.name for p in result.deleted] == [f"{PREFIX}20200101-000000.db"]
    assert sorted(p.name for p in to_dir.iterdir()) == sorted([result.path.name, REPORT_NAME])
    (row,) = _report(to_dir / REPORT_NAME)
    assert row["dihapus (deleted)"] == f"{PREFIX}20200101-000000.db"
    kinds = [e.kind for e in committed_events(config.database_path, kind="backup.*")]
    assert kinds == ["backup.completed", "backup.deleted"]


# -- (5) downloads: only backup names, only inside the directory --------------------------------------
def test_resolve_backup_refuses_everything_but_a_backup_in_the_directory(tmp_path):
    to_dir = tmp_path / "out"
    to_dir.mkdir()
    good = to_dir / f"{PREFIX}20261121-090203.db"
    good.write_text("a backup")
    (to_dir / f"{PREFIX}20261121-090204-2.db").write_text("another")
    secret = tmp_path / "secret.db"
    secret.write_text("outside")
    (to_dir / f"{PREFIX}20261121-000000.db").symlink_to(secret)
    (to_dir / "sub").mkdir()
    (to_dir / "sub" / f"{PREFIX}20261121-090203.db").write_text("nested")

    assert resolve_backup(to_dir, good.name) == good.resolve()
    assert resolve_backup(to_dir, f"{PREFIX}20261121-090204-2.db").read_text() == "another"
    for name in ["../x", "/etc/passwd", "..", "", "../secret.db", f"../out/{good.name}", f"sub/{good.name}",
                 f"{good.name}/../../secret.db", f"{good.name}\n", f" {good.name}", REPORT_NAME,
                 f"{PREFIX}20261121-000000.db",  # the symlink pointing outside
                 f"{PREFIX}20261121-111111.db",  # the right form, but no such file
                 f"{PREFIX}２０２６1121-090203.db"]:  # digits of another script
        with pytest.raises(InvalidValueError):
            resolve_backup(to_dir, name)


# -- (6) the schedule ---------------------------------------------------------------------------------
def test_the_scheduler_backs_up_every_every_days_and_stops_at_once(tmp_path, writer):
    to_dir = tmp_path / "scheduled"
    # 0.00001 days: a backup every 0.864 s
    config = load_config(_write(tmp_path, "sched", backup={"dir": str(to_dir), "every_days": 0.00001}))
    store = StoreWriter(config.database_path, synchronous="normal")
    store.start()
    scheduler = BackupScheduler(config, store.append, first_delay_s=0.05)
    try:
        scheduler.start()
        wait_until(lambda: len(list_backups(to_dir, "test-site", "test-gw")) >= 2, 20, message="two backups")
        started = time.monotonic()
        scheduler.stop()
        assert time.monotonic() - started < 1.0 and not scheduler.alive
        events = wait_until(lambda: committed_events(config.database_path, kind="backup.completed"))
        assert all(e.fields["by"] == "jadwal" and e.fields["dir"] == str(to_dir) for e in events)
        assert len(_report(to_dir / REPORT_NAME)) >= 2
    finally:
        scheduler.stop()
        store.stop()


def test_the_scheduler_counts_from_the_last_backup_in_the_store(tmp_path):
    to_dir = tmp_path / "scheduled"
    config = load_config(_write(tmp_path, "sched", backup={"dir": str(to_dir), "every_days": 7}))
    store = StoreWriter(config.database_path, synchronous="normal")
    store.start()
    try:
        fresh = BackupScheduler(config, store.append_and_wait, first_delay_s=60)
        assert fresh.next_due() == pytest.approx(time.time() + 60, abs=5)  # no backup yet: shortly after start
        done = backup_database(config, to_dir, by="test", emit=store.append_and_wait)
        (event,) = committed_events(config.database_path, kind="backup.completed")
        taken = datetime.fromisoformat(event.ts.replace("Z", "+00:00")).timestamp()
        later = BackupScheduler(config, store.append_and_wait, first_delay_s=60)
        assert later.next_due() == pytest.approx(taken + 7 * 86400, abs=1)
        # a copy elsewhere (a USB disk) does not put off the backup into [backup] dir
        backup_database(config, tmp_path / "usb", by="test", emit=store.append_and_wait)
        assert later.next_due() == pytest.approx(taken + 7 * 86400, abs=1)
        assert done.path.parent == to_dir
    finally:
        store.stop()


def test_a_failed_scheduled_backup_is_retried_later_not_in_a_loop(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    config = load_config(_write(tmp_path, "sched", backup={"dir": str(blocker / "sub"), "every_days": 0.00001}))
    store = StoreWriter(config.database_path, synchronous="normal")
    store.start()
    scheduler = BackupScheduler(config, store.append, first_delay_s=0.0, retry_s=3600)
    try:
        scheduler.start()
        wait_until(lambda: committed_events(config.database_path, kind="backup.failed"), message="backup.failed")
        wait_until(lambda: scheduler.last_error, message="the failure to be noted")
        assert scheduler.next_due() > time.time() + 3500
        assert scheduler.alive
        started = time.monotonic()
        scheduler.stop()
        assert time.monotonic() - started < 1.0
        assert len(committed_events(config.database_path, kind="backup.failed")) == 1
    finally:
        scheduler.stop()
        store.stop()


# -- (7) the command ----------------------------------------------------------------------------------
def _dcgate(*argv: str) -> int:
    """`dcgate ARGV` in-process, with this module's command (main.py registers it separately)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="dcgate")
    parser.add_argument("--config", default=None)
    backup_cmd.register(parser.add_subparsers(dest="command", required=True), common)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except DcgateError as exc:  # as gateway.cli.main does
        print(f"dcgate: {exc}")
        return exc.exit_code


def test_the_command_with_the_gateway_stopped(tmp_path, capsys):
    plain = _write(tmp_path, "plain")
    assert _dcgate("backup", "--config", str(plain)) == 2
    assert "--to DIR" in capsys.readouterr().out

    to_dir = tmp_path / "out"
    assert _dcgate("backup", "--to", str(to_dir), "--config", str(plain)) == 0
    line = capsys.readouterr().out
    assert "backup selesai / backup done: " + str(to_dir / PREFIX) in line and "dihapus / deleted 0" in line
    assert _dcgate("backup", "--to", str(to_dir), "--json", "--config", str(plain)) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["integrity"] == "ok" and Path(result["path"]).parent == to_dir
    config = load_config(plain)
    events = committed_events(config.database_path, kind="backup.completed")
    assert len(events) == 2 and all(e.fields["by"].startswith("cli:") for e in events)

    # with [backup]: its dir, and its keep_days prunes there
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / f"{PREFIX}20200101-000000.db").write_text("old")
    with_dir = _write(tmp_path, "withdir", backup={"dir": str(configured)})
    assert _dcgate("backup", "--config", str(with_dir)) == 0
    assert "dihapus / deleted 1" in capsys.readouterr().out
    assert _dcgate("backup", "list", "--json", "--config", str(with_dir)) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["dir"] == str(configured) and len(listing["backups"]) == 1
    assert _dcgate("backup", "list", "--to", str(to_dir), "--config", str(with_dir)) == 0
    assert capsys.readouterr().out.count(PREFIX) == 2  # the two copies made above, newest first
    with pytest.raises(SystemExit) as usage:
        _dcgate("backup", "--keep-days", "0", "--config", str(with_dir))
    assert usage.value.code == 2


def test_the_command_goes_through_the_running_gateway(tmp_path, capsys):
    from gateway.control.server import ControlServer

    path = _write(tmp_path)
    config = load_config(path)
    # what the service holds while it runs: the data directory's lock, the writer, the control socket
    lock = DataDirLock(config.data_dir)
    lock.acquire()
    store = StoreWriter(config.database_path, synchronous="normal")
    store.start()
    server = ControlServer(config.control_socket_path, backup_handlers(config, store.append))
    server.start()
    try:
        to_dir = tmp_path / "out"
        assert _dcgate("backup", "--to", str(to_dir), "--keep-days", "30", "--config", str(path)) == 0
        assert "backup selesai / backup done" in capsys.readouterr().out
        (event,) = wait_until(lambda: committed_events(config.database_path, kind="backup.completed"))
        assert event.fields["by"].startswith("cli:") and event.fields["dir"] == str(to_dir)
    finally:
        server.stop()
        store.stop()
        lock.release()


def test_dcgate_backup_as_a_user_types_it_with_the_gateway_stopped(tmp_path):
    plain = _write(tmp_path, "plain")
    refused = run_cli("backup", "--config", str(plain))
    assert refused.returncode == 2 and "--to DIR" in refused.stderr
    to_dir = tmp_path / "out"
    done = run_cli("backup", "--to", str(to_dir), "--config", str(plain))
    assert done.returncode == 0, done.stderr
    assert "backup selesai / backup done: " + str(to_dir / PREFIX) in done.stdout
    listed = run_cli("backup", "list", "--to", str(to_dir), "--json", "--config", str(plain))
    assert [b["name"] for b in json.loads(listed.stdout)["backups"]] == [p.name for p in to_dir.glob("*.db")]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    failed = run_cli("backup", "--to", str(blocker / "sub"), "--config", str(plain))
    assert failed.returncode == 1 and "backup gagal / backup failed" in failed.stderr


def test_dcgate_backup_through_the_running_gateway(tmp_path, make_config, gateway_factory):
    configured = tmp_path / "configured"
    path = make_config(backup={"dir": str(configured)})
    gateway = gateway_factory(path)
    done = run_cli("backup", "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert "backup selesai / backup done: " + str(configured) in done.stdout
    (event,) = wait_until(lambda: committed_events(gateway.config.database_path, kind="backup.completed"))
    assert event.fields["by"].startswith("cli:") and event.fields["dir"] == str(configured)
    # the copy was made by the running gateway (it holds the data directory: an offline copy is refused)
    assert gateway.process is not None and gateway.process.poll() is None
    (row,) = _report(configured / REPORT_NAME)
    assert row["hasil (result)"] == "BERHASIL"
