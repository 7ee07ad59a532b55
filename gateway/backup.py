"""Backups as the SOP asks (Tegal 7): at least weekly, named with date and time, a report line for each,
copies older than one year deleted.

A copy is taken with SQLite's online backup API, a few hundred pages at a time, so the running
writer is never held up for long; the copy is then checked (integrity check and the hash chain) before
it counts. `laporan-backup.csv` in the backup folder is the SOP's report of each backup; the
`backup.completed` / `backup.failed` / `backup.deleted` events are the same record in the log.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.config.models import Config
from gateway.errors import DcgateError, InvalidValueError

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], Any]
REPORT_NAME = "laporan-backup.csv"
REPORT_HEADER = ("waktu (time)", "berkas (file)", "ukuran (bytes)", "sha256", "seq terakhir (last seq)",
                 "durasi (s)", "hasil (result)", "oleh (by)", "dihapus (deleted)", "keterangan (detail)")
STAMP = "%Y%m%d-%H%M%S"
PAGES_PER_STEP = 256  # 1 MB at 4 KiB pages: the writer waits at most one step
#: the scheduler re-checks at least this often (a clock change, a failed backup's retry)
RECHECK_S = 3600.0


class BackupError(DcgateError, OSError):
    """A backup could not be made or did not check out; nothing half-written is left behind."""


@dataclass
class BackupResult:
    path: Path
    bytes: int
    sha256: str
    last_seq: int
    duration_s: float
    integrity: str = "ok"
    deleted: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"], data["deleted"] = str(self.path), [str(p) for p in self.deleted]
        return data

    def line(self) -> str:
        size = f"{self.bytes / 1e6:.1f} MB" if self.bytes >= 1e5 else f"{self.bytes} B"
        gone = f"; {len(self.deleted)} cadangan lama dihapus / old backups deleted" if self.deleted else ""
        return (f"backup {self.path} {size} sha256 {self.sha256[:16]}… seq {self.last_seq} "
                f"in {self.duration_s:.2f} s, integritas/integrity ok{gone}")


def _pattern(site: str, gateway: str) -> re.Pattern[str]:
    return re.compile(rf"dcgate-{re.escape(site)}-{re.escape(gateway)}-(\d{{8}}-\d{{6}})(?:-(\d+))?\.db")


def backup_name(config: Config, moment: datetime, n: int = 1) -> str:
    suffix = "" if n == 1 else f"-{n}"
    return f"dcgate-{config.site}-{config.gateway}-{moment.strftime(STAMP)}{suffix}.db"


def backup_database(config: Config, to_dir: Path, *, by: str, emit: Emit | None,
                    keep_days: float | None = None, now: datetime | None = None) -> BackupResult:
    """Copy the store into `to_dir` (online), check it, report it; then delete this gateway's copies older
    than `keep_days`."""
    zone = config.access.zone
    moment = (now or datetime.now(zone)).astimezone(zone)
    started = time.monotonic()
    to_dir = Path(to_dir)
    target: Path | None = None
    try:
        if not config.database_path.exists():
            raise BackupError(f"backup gagal / backup failed: no database at {config.database_path} yet. "
                              "Fix: start the gateway once, or check data_dir")
        to_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        n = 1
        while (to_dir / backup_name(config, moment, n)).exists():
            n += 1
        target = to_dir / backup_name(config, moment, n)
        partial = target.with_name(target.name + ".partial")
        _copy(config.database_path, partial)
        last_seq = _check(partial)
        digest, size = _sha256(partial)
        os.replace(partial, target)
    except (OSError, sqlite3.Error, BackupError) as exc:
        if target is not None:
            for leftover in (target.with_name(target.name + ".partial"),):
                leftover.unlink(missing_ok=True)
        message = str(exc) if isinstance(exc, BackupError) else (
            f"backup gagal / backup failed into {to_dir}: {exc}. Fix: check that the folder exists or can be "
            "created, is writable by the gateway's user and has free space")
        if emit is not None:
            emit("backup.failed", "backup", {"dir": str(to_dir), "error": message, "by": by})
        _report(to_dir, moment, target.name if target else "", 0, "", 0, time.monotonic() - started, "GAGAL", by,
                [], message)
        raise BackupError(message) from exc
    result = BackupResult(target, size, digest, last_seq, round(time.monotonic() - started, 3))
    if emit is not None:
        emit("backup.completed", "backup", {"file": target.name, "dir": str(to_dir), "bytes": size, "sha256": digest,
                                            "last_seq": last_seq, "duration_s": result.duration_s, "by": by})
    if keep_days is not None:
        result.deleted = prune_backups(to_dir, keep_days, site=config.site, gateway=config.gateway, emit=emit,
                                       now=moment)
    _report(to_dir, moment, target.name, size, digest, last_seq, result.duration_s, "OK", by, result.deleted, "")
    return result


def _copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, even briefly
    os.close(fd)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=PAGES_PER_STEP, sleep=0.005)
        dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()


def _check(path: Path) -> int:
    """Integrity and the hash chain of the copy; its last seq."""
    from gateway.store.database import open_for_reading
    from gateway.store.events import verify

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        status = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    if status != "ok":
        raise BackupError(f"backup gagal / backup failed: the copy {path.name} is damaged ({status}). "
                          "Fix: check the backup disk, then run dcgate backup again")
    db = open_for_reading(path)
    try:
        result = verify(db)
        row = db.conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
    finally:
        db.close()
    if not result.ok:
        raise BackupError(f"backup gagal / backup failed: the copy's hash chain does not verify ({result}). "
                          "Fix: run dcgate log verify on the live store")
    return int(row[0])


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _report(to_dir: Path, moment: datetime, name: str, size: int, digest: str, last_seq: int, duration_s: float,
            outcome: str, by: str, deleted: list[Path], detail: str) -> None:
    """One line of the SOP's backup report; a report that cannot be written is logged, not fatal."""
    report = to_dir / REPORT_NAME
    try:
        new = not report.exists()
        with report.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(REPORT_HEADER)
            writer.writerow([moment.isoformat(timespec="seconds"), name, size, digest, last_seq,
                             f"{duration_s:.3f}", outcome, by, " ".join(p.name for p in deleted), detail])
    except OSError as exc:
        log.error("backup report %s could not be written: %s", report, exc)


def prune_backups(to_dir: Path, keep_days: float, *, site: str, gateway: str, emit: Emit | None,
                  now: datetime) -> list[Path]:
    """Delete this gateway's own copies whose name says they are older than `keep_days` (never by mtime,
    never another file)."""
    pattern, deleted = _pattern(site, gateway), []
    cutoff = now - timedelta(days=keep_days)
    for path in sorted(Path(to_dir).iterdir()):
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_file() or path.is_symlink():
            continue
        taken = datetime.strptime(match[1], STAMP).replace(tzinfo=now.tzinfo)
        if taken < cutoff:
            path.unlink()
            deleted.append(path)
            if emit is not None:
                emit("backup.deleted", "backup", {"file": path.name, "dir": str(to_dir),
                                                  "age_days": round((now - taken).total_seconds() / 86400, 1)})
    return deleted


def list_backups(to_dir: Path, site: str, gateway: str) -> list[dict[str, Any]]:
    """This gateway's copies in `to_dir`, newest first: name, bytes, taken_at (local, from the name)."""
    pattern, found = _pattern(site, gateway), []
    if not Path(to_dir).is_dir():
        return []
    for path in Path(to_dir).iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_file() and not path.is_symlink():
            taken = datetime.strptime(match[1], STAMP)
            found.append({"name": path.name, "bytes": path.stat().st_size,
                          "taken_at": taken.strftime("%d-%m-%Y %H:%M:%S")})
    return sorted(found, key=lambda b: b["name"], reverse=True)


def resolve_backup(to_dir: Path, name: str) -> Path:
    """The backup file `name` in `to_dir`, refusing anything that is not exactly one of the copies there."""
    if not re.fullmatch(r"dcgate-[a-z0-9-]+-\d{8}-\d{6}(?:-\d+)?\.db", name or ""):
        raise InvalidValueError(f"{name!r} bukan nama berkas cadangan / is not a backup file name")
    folder = Path(to_dir).resolve()
    path = folder / name
    if path.is_symlink() or not path.is_file() or path.resolve().parent != folder:
        raise InvalidValueError(f"cadangan {name!r} tidak ada / no such backup")
    return path


def _by_default() -> str:
    return "cli:" + (os.environ.get("SUDO_USER") or getpass.getuser())


class BackupScheduler:
    """Runs a backup every `[backup] every_days`, counted from the last `backup.completed` in the store.

    Sleeps on an Event until the next one is due (never polls); a failure is retried after an hour.
    """

    def __init__(self, config: Config, emit: Emit, *, first_delay_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        assert config.backup is not None
        self.config, self.emit, self.clock = config, emit, clock
        self.first_delay_s = first_delay_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one backup at a time, scheduled or asked for
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="backup-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_now(self, by: str, to_dir: Path | None = None) -> BackupResult:
        backup = self.config.backup
        assert backup is not None
        with self._lock:
            return backup_database(self.config, to_dir or backup.dir, by=by, emit=self.emit,
                                   keep_days=backup.keep_days)

    def next_due(self) -> float:
        backup = self.config.backup
        assert backup is not None
        last = _last_backup_time(self.config)
        if last is None:
            return self.clock() + self.first_delay_s
        return last + backup.every_days * 86400

    def _run(self) -> None:
        due = self.next_due()
        while not self._stop.wait(max(0.0, min(due - self.clock(), RECHECK_S))):
            if self.clock() < due:
                continue
            try:
                result = self.run_now("jadwal")
                self.last_error = None
                log.info("%s", result.line())
                due = self.next_due()
            except Exception as exc:  # logged and recorded (backup.failed); tried again in an hour
                self.last_error = str(exc)
                log.error("scheduled backup failed: %s", exc)
                due = self.clock() + RECHECK_S


def _last_backup_time(config: Config) -> float | None:
    from gateway.store.database import open_for_reading

    if not config.database_path.exists():
        return None
    db = open_for_reading(config.database_path)
    try:
        row = db.conn.execute(
            "SELECT ts FROM events WHERE kind = 'backup.completed' ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        db.close()
    if row is None:
        return None
    return datetime.fromisoformat(row[0].replace("Z", "+00:00")).timestamp()


def backup_handlers(config: Config, emit: Emit, scheduler: BackupScheduler | None = None) -> dict[str, Any]:
    """Control operations: `backup.run {to?, by?}` and `backup.list {to?}`."""
    lock = threading.Lock()

    def folder(params: Mapping[str, Any]) -> Path:
        given = params.get("to")
        if given:
            return Path(str(given)).expanduser().resolve()
        if config.backup is None:
            raise InvalidValueError("tidak ada folder cadangan / no backup folder: give --to DIR, or set [backup] dir")
        return config.backup.dir

    def run(params: Mapping[str, Any]) -> dict[str, Any]:
        by = str(params.get("by") or _by_default())
        keep = params.get("keep_days", config.backup.keep_days if config.backup else None)
        with scheduler._lock if scheduler is not None else lock:
            result = backup_database(config, folder(params), by=by, emit=emit,
                                     keep_days=float(keep) if keep is not None else None)
        return result.as_dict() | {"line": result.line()}

    def listing(params: Mapping[str, Any]) -> dict[str, Any]:
        where = folder(params)
        return {"dir": str(where), "backups": list_backups(where, config.site, config.gateway)}

    return {"backup.run": run, "backup.list": listing}
