"""Database backups as the SOP asks (Tegal 7): at least weekly, named with date and time, a report of
each, and copies older than one year deleted.

A backup is SQLite's online backup of the live database into
``DIR/dcgate-{site}-{gateway}-YYYYMMDD-HHMMSS.db`` (the site's local time, ``[access] timezone``),
checked (``PRAGMA integrity_check`` and the hash chain) before it gets its name, owner-only, with one
line in ``DIR/laporan-backup.csv`` and a ``backup.completed`` event. ``BackupScheduler`` does this every
``[backup] every_days``; ``backup_handlers`` serves ``backup.run`` and ``backup.list`` on the control
socket. See docs/console.md, "Backups".
"""

from __future__ import annotations

import contextlib
import csv
import errno
import getpass
import hashlib
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import sqlite_utils

from gateway.config.models import Config
from gateway.errors import DcgateError, InvalidValueError
from gateway.store.database import BUSY_TIMEOUT_MS
from gateway.store.events import verify

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], Any]

SOURCE = "backup"
REPORT_NAME = "laporan-backup.csv"
REPORT_COLUMNS = (
    "waktu (time)", "berkas (file)", "ukuran (bytes)", "sha256", "seq terakhir (last seq)", "durasi (s)",
    "hasil (result)", "oleh (by)", "dihapus (deleted)", "keterangan (note)",
)
RESULT_OK, RESULT_FAILED = "BERHASIL", "GAGAL"
BY_SCHEDULE = "jadwal"
#: pages copied per backup step (4 MiB at SQLite's default 4 KiB page)
PAGES_PER_STEP = 1024
STAMP_FORMAT = "%Y%m%d-%H%M%S"
#: any gateway's backup name; [0-9] not \d, which would also match other scripts' digits
ANY_NAME = re.compile(r"dcgate-[a-z0-9-]+-([0-9]{8}-[0-9]{6})(?:-([0-9]{1,4}))?\.db", re.ASCII)
#: before this the Pi's clock is unset (no RTC until NTP answers): no backup is named or pruned by it
CLOCK_FLOOR = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
_MAX_SAME_SECOND = 999
# one backup at a time in this process: the scheduler and a console or CLI request never race for the
# disk, the report file or a name
_ONE_AT_A_TIME = threading.Lock()


class BackupError(DcgateError, OSError):
    """A backup could not be made; the message names the directory and the fix."""


class BackupCancelled(BackupError):
    """The gateway is stopping; the partial copy was removed."""


@dataclass(slots=True)
class BackupResult:
    path: Path
    bytes: int
    sha256: str
    last_seq: int
    duration_s: float
    integrity: str = "ok"
    deleted: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """What the control socket and `--json` return."""
        return {
            "path": str(self.path), "file": self.path.name, "dir": str(self.path.parent), "bytes": self.bytes,
            "sha256": self.sha256, "last_seq": self.last_seq, "duration_s": self.duration_s,
            "integrity": self.integrity, "deleted": [str(p) for p in self.deleted],
        }


# -- names -------------------------------------------------------------------------------------------
def backup_prefix(site: str, gateway: str) -> str:
    return f"dcgate-{site}-{gateway}-"


def own_name_pattern(site: str, gateway: str) -> re.Pattern[str]:
    """This gateway's names only: a gateway called "gw-2" never matches the pattern of "gw"."""
    return re.compile(re.escape(backup_prefix(site, gateway)) + r"([0-9]{8}-[0-9]{6})(?:-([0-9]{1,4}))?\.db",
                      re.ASCII)


def _taken_at(stamp: str, zone: tzinfo | None) -> datetime | None:
    try:
        return datetime.strptime(stamp, STAMP_FORMAT).replace(tzinfo=zone)
    except ValueError:  # 20261399-...: matches the digits, is no date; such a file is not ours to touch
        return None


def _own_backups(to_dir: Path, site: str, gateway: str) -> list[tuple[Path, str, int]]:
    """(path, stamp, same-second number) of this gateway's regular backup files in to_dir."""
    pattern = own_name_pattern(site, gateway)
    found = []
    try:
        entries = list(os.scandir(to_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            found.append((Path(entry.path), match.group(1), int(match.group(2) or 1)))
    return found


# -- one backup --------------------------------------------------------------------------------------
def backup_database(config: Config, to_dir: Path, *, by: str, emit: Emit | None, now: datetime | None = None,
                    keep_days: float | None = None, cancel: threading.Event | None = None,
                    step_pages: int = PAGES_PER_STEP) -> BackupResult:
    """Copy the live database into `to_dir`, check the copy, report it; then prune with `keep_days`.

    Safe while the gateway's writer runs: the copy is one read snapshot (WAL readers never block the
    writer). Raises BackupError (after a `backup.failed` event and a GAGAL report line).
    """
    zone = config.access.zone
    now = (now or datetime.now(UTC)).astimezone(zone)
    to_dir = Path(to_dir).absolute()
    stem = backup_prefix(config.site, config.gateway) + now.strftime(STAMP_FORMAT)
    with _ONE_AT_A_TIME:
        started = time.monotonic()
        try:
            path, size, digest, last_seq = _make_copy(config.database_path, to_dir, stem, cancel, step_pages)
        except Exception as exc:
            error = _explain(exc, to_dir)
            report = _append_report(to_dir, _row(now, stem + ".db", result=RESULT_FAILED, by=by, note=str(error)),
                                    fallback=config.data_dir)
            _emit(emit, "backup.failed", {"dir": str(to_dir), "error": str(error), "by": by})
            log.error("%s (report: %s)", error, report)
            raise error from exc
        duration = round(time.monotonic() - started, 3)
        _emit(emit, "backup.completed", {"file": path.name, "dir": str(to_dir), "bytes": size, "sha256": digest,
                                         "last_seq": last_seq, "duration_s": duration, "by": by})
        deleted = (prune_backups(to_dir, keep_days, site=config.site, gateway=config.gateway, emit=emit, now=now)
                   if keep_days is not None else [])
        result = BackupResult(path, size, digest, last_seq, duration, "ok", deleted)
        _append_report(to_dir, _row(now, path.name, result=RESULT_OK, by=by, done=result), fallback=config.data_dir)
        log.info("backup: %s (%d bytes, last seq %d, %.1f s, %d old copies deleted)",
                 path, size, last_seq, duration, len(deleted))
        return result


def _make_copy(source: Path, to_dir: Path, stem: str, cancel: threading.Event | None,
               step_pages: int) -> tuple[Path, int, str, int]:
    """The checked copy under its final name: (path, bytes, sha256, last seq). Nothing is left on failure."""
    if not source.exists():
        raise BackupError(f"no event store at {source}. Perbaiki / Fix: start the gateway once, or check data_dir")
    to_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp: O_EXCL, mode 0600 from birth; the dot and suffix keep it out of every backup pattern
    fd, name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".partial", dir=to_dir)
    os.close(fd)
    partial = Path(name)
    try:
        _copy(source, partial, cancel, step_pages)
        last_seq = _check(partial)
        size, digest = _fsync_and_hash(partial)
        path = _place(partial, to_dir, stem)
    except BaseException:
        _remove_partial(partial)
        raise
    _fsync_dir(to_dir)
    return path, size, digest, last_seq


def _open_read_only(path: Path) -> sqlite3.Connection:
    uri = "file:" + urllib.parse.quote(str(path)) + "?mode=ro"  # quoted: a '?' or '#' in a directory name
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _copy(source: Path, partial: Path, cancel: threading.Event | None, step_pages: int) -> None:
    src = _open_read_only(source)
    try:
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            # one read transaction across all steps: every step sees the same snapshot, so the writer's
            # commits meanwhile neither wait for it (WAL) nor restart it (which, with a commit every few
            # seconds and a database of many steps, could go on for ever)
            src.execute("BEGIN")
            src.execute("SELECT count(*) FROM sqlite_master").fetchone()
            src.backup(dst, pages=step_pages, progress=_progress(cancel))
            src.execute("COMMIT")
            # the copy inherits WAL mode; a backup is one self-contained file, readable on any machine
            dst.execute("PRAGMA journal_mode = DELETE")
        finally:
            dst.close()
    finally:
        src.close()


def _progress(cancel: threading.Event | None) -> Callable[[int, int, int], None]:
    def step(_status: int, _remaining: int, _total: int) -> None:
        if cancel is not None and cancel.is_set():  # raising here aborts the copy
            raise BackupCancelled("backup dibatalkan, gateway berhenti / backup cancelled, the gateway is stopping")
    return step


def _check(partial: Path) -> int:
    """integrity_check and the hash chain of the copy; its last seq."""
    conn = _open_read_only(partial)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise _IntegrityError("; ".join(problems[:5]))
        chain = verify(sqlite_utils.Database(conn))
    finally:
        conn.close()
    if not chain.ok:
        raise _IntegrityError(f"hash chain: {chain.problem}")
    return chain.head_seq


class _IntegrityError(Exception):
    """The copy is not sound; explained with its fix by `_explain`."""


def _fsync_and_hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        os.fsync(f.fileno())  # on the disk before it has a name: a power cut leaves no half backup
        return os.fstat(f.fileno()).st_size, digest.hexdigest()


def _place(partial: Path, to_dir: Path, stem: str) -> Path:
    """Give the copy its name, never replacing a file: stem.db, stem-2.db, stem-3.db ..."""
    for n in range(1, _MAX_SAME_SECOND + 1):
        path = to_dir / (f"{stem}.db" if n == 1 else f"{stem}-{n}.db")
        try:
            os.link(partial, path)  # fails if the name exists: no check-then-rename race
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK):
                raise
            # no hard links (a FAT USB disk, some network shares): check, then rename
            if path.exists():
                continue
            os.rename(partial, path)
            return path
        partial.unlink()
        return path
    raise FileExistsError(errno.EEXIST, f"{_MAX_SAME_SECOND} backups named {stem} already exist")


def _remove_partial(partial: Path) -> None:
    for extra in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(str(partial) + extra).unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened for this
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (a bare container)
        return str(os.getuid())


def _explain(exc: BaseException, to_dir: Path) -> BackupError:
    """Every failure as one BackupError naming the directory and the fix, Indonesian first."""
    head = f"backup gagal / backup failed: {to_dir}"
    if isinstance(exc, BackupCancelled):
        return exc
    if isinstance(exc, BackupError):
        return BackupError(f"{head}: {exc}")
    where = "--to DIR atau / or [backup] dir"
    if isinstance(exc, _IntegrityError):
        return BackupError(
            f"{head}: salinan rusak / the copy failed its check ({exc}). Perbaiki / Fix: run `dcgate log verify` "
            "on the live database, check the disks (dmesg), then try again")
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_FULL" or (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)):
        return BackupError(
            f"{head}: disk penuh / disk full. Perbaiki / Fix: free space there (or lower [backup] keep_days), "
            f"or choose another disk: {where}")
    if isinstance(exc, OSError | sqlite3.OperationalError):
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return BackupError(
            f"{head}: tidak dapat menulis / cannot write there ({why}). Perbaiki / Fix: make it a directory user "
            f"{_user()!r} can write to (mkdir, chown, chmod 700), or choose another: {where}")
    return BackupError(f"{head}: {exc}. Perbaiki / Fix: check the database with `dcgate log verify`, then retry")


def _emit(emit: Emit | None, kind: str, fields: Mapping[str, Any]) -> None:
    if emit is None:
        return
    try:
        emit(kind, SOURCE, fields)
    except Exception as exc:  # the backup (or its failure) stands; the report line records it either way
        log.error("backup: could not record %s: %s", kind, exc)


# -- the report --------------------------------------------------------------------------------------
def _row(now: datetime, name: str, *, result: str, by: str, done: BackupResult | None = None,
         note: str = "") -> list[str]:
    if done is None:
        return [now.isoformat(timespec="seconds"), name, "", "", "", "", result, by, "", note]
    return [now.isoformat(timespec="seconds"), name, str(done.bytes), done.sha256, str(done.last_seq),
            f"{done.duration_s:.3f}", result, by, " ".join(p.name for p in done.deleted), note]


def _append_report(to_dir: Path, row: list[str], *, fallback: Path | None) -> Path | None:
    """Append to DIR/laporan-backup.csv; when DIR cannot be written (the failure itself), to the data_dir's."""
    for directory in (to_dir, fallback):
        if directory is None:
            continue
        path = directory / REPORT_NAME
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", newline="", encoding="utf-8") as out:
                writer = csv.writer(out)
                if os.fstat(fd).st_size == 0:
                    writer.writerow(REPORT_COLUMNS)
                writer.writerow(row)
            return path
        except OSError as exc:
            log.warning("backup: cannot append the report to %s: %s", path, exc)
    return None


# -- retention and listing ---------------------------------------------------------------------------
def prune_backups(to_dir: Path, keep_days: float, *, site: str, gateway: str, emit: Emit | None,
                  now: datetime | None = None) -> list[Path]:
    """Delete this gateway's own backups whose name says they are older than `keep_days`.

    Only names of this gateway's pattern, read in `now`'s zone; never by mtime (a copy restored from
    elsewhere keeps its age), never any other file.
    """
    now = now or datetime.now(UTC).astimezone()
    if now.timestamp() < CLOCK_FLOOR:
        log.warning("backup: the clock is unset (%s); nothing pruned", now.isoformat())
        return []
    deleted = []
    for path, stamp, _n in sorted(_own_backups(Path(to_dir), site, gateway), key=lambda b: (b[1], b[2])):
        taken = _taken_at(stamp, now.tzinfo)
        if taken is None:
            continue
        age_days = (now - taken).total_seconds() / 86400
        if age_days <= keep_days:
            continue
        try:
            path.unlink()
        except OSError as exc:
            log.warning("backup: cannot delete old backup %s: %s", path, exc)
            continue
        deleted.append(path)
        _emit(emit, "backup.deleted", {"file": path.name, "dir": str(path.parent), "age_days": round(age_days, 2)})
    return deleted


def list_backups(to_dir: Path, site: str, gateway: str) -> list[dict[str, Any]]:
    """This gateway's backups in `to_dir`, newest first: name, bytes, taken_at (local time from the name)."""
    found = []
    for path, stamp, n in _own_backups(Path(to_dir), site, gateway):
        taken = _taken_at(stamp, None)
        try:
            size = path.stat().st_size
        except OSError:  # deleted meanwhile
            continue
        found.append(((stamp, n), {"name": path.name, "bytes": size,
                                   "taken_at": taken.isoformat() if taken else None}))
    return [item for _key, item in sorted(found, key=lambda f: f[0], reverse=True)]


def resolve_backup(to_dir: Path, name: str) -> Path:
    """The file `name` in `to_dir`, for a download; anything but a backup name there is refused."""
    if not isinstance(name, str) or not ANY_NAME.fullmatch(name):
        raise InvalidValueError(f"bukan nama berkas backup / not a backup file name: {name!r}")
    base = Path(to_dir).resolve()
    path = base / name
    # a symlink is refused whatever it points at: nothing the gateway writes here is one
    if path.is_symlink() or not path.is_file() or path.resolve().parent != base:
        raise InvalidValueError(f"backup tidak ditemukan / no such backup in {base}: {name!r}")
    return path


# -- the schedule ------------------------------------------------------------------------------------
def _last_completed_in_store(config: Config, to_dir: Path) -> float | None:
    """When the last `backup.completed` into `to_dir` was recorded (epoch seconds), or None."""
    path = config.database_path
    if not path.exists():
        return None
    conn = _open_read_only(path)
    try:
        # newest first over the (kind, seq) index; a copy taken elsewhere (a USB disk) does not count
        rows = conn.execute("SELECT ts, payload FROM events WHERE kind = 'backup.completed' ORDER BY seq DESC")
        for ts, payload in rows:
            if json.loads(payload or "{}").get("dir") == str(to_dir):
                return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    finally:
        conn.close()
    return None


class BackupScheduler:
    """Back up into [backup] dir every `every_days`, pruning after `keep_days`; one thread, mostly asleep."""

    def __init__(self, config: Config, emit: Emit | None, clock: Callable[[], float] = time.time, *,
                 first_delay_s: float = 60.0, retry_s: float = 3600.0, recheck_s: float = 3600.0) -> None:
        if config.backup is None:
            raise InvalidValueError("no [backup] table in the config: nothing to schedule. Fix: add [backup] dir")
        self.config, self._emit, self._clock = config, emit, clock
        self._settings = config.backup
        self._first_delay_s, self._retry_s, self._recheck_s = first_delay_s, retry_s, recheck_s
        self.stopping = threading.Event()  # also cancels a backup under way
        self._thread: threading.Thread | None = None
        self._started_at = clock()
        self._last_done: float | None = None  # this process' last backup into dir (its event may be queued)
        self._retry_at: float | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._started_at = self._clock()
        self.stopping.clear()
        self._thread = threading.Thread(target=self._run, name="backup-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Wake the thread and end it; a backup under way is cancelled and its partial file removed."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("backup scheduler did not stop within %.0f s", timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def next_due(self) -> float:
        """Epoch seconds of the next scheduled backup."""
        try:
            stored = _last_completed_in_store(self.config, self._settings.dir)
        except (sqlite3.Error, OSError, ValueError) as exc:
            log.warning("backup: cannot read the last backup from the store: %s", exc)
            stored = None
        last = max((t for t in (stored, self._last_done) if t is not None), default=None)
        # never in the first moments of a start, even when overdue: the gateway comes up first
        due = self._started_at + self._first_delay_s
        if last is not None:
            due = max(due, last + self._settings.every_days * 86400)
        if self._retry_at is not None:
            due = max(due, self._retry_at)
        return due

    def run_now(self, by: str, to_dir: Path | None = None, keep_days: float | None = None) -> BackupResult:
        """One backup now; into [backup] dir (pruned after keep_days) unless `to_dir` says elsewhere."""
        target = Path(to_dir) if to_dir is not None else self._settings.dir
        if keep_days is None and target == self._settings.dir:
            keep_days = self._settings.keep_days
        now = datetime.fromtimestamp(self._clock(), UTC)
        result = backup_database(self.config, target, by=by, emit=self._emit, now=now, keep_days=keep_days,
                                 cancel=self.stopping)
        if target == self._settings.dir:
            self._last_done = self._clock()
        return result

    def _run(self) -> None:
        while not self.stopping.is_set():
            now = self._clock()
            if now < CLOCK_FLOOR:  # a backup named 19700101 would be pruned by the first real date
                self.stopping.wait(self._recheck_s)
                continue
            wait = self.next_due() - now
            if wait > 0:
                # at most recheck_s asleep: the clock may jump (NTP after boot), a manual backup may move the date
                self.stopping.wait(min(wait, self._recheck_s))
                continue
            self._scheduled()

    def _scheduled(self) -> None:
        try:
            self.run_now(BY_SCHEDULE)
        except BackupCancelled:
            return
        except Exception as exc:  # logged (and recorded as backup.failed); tried again in retry_s, not at once
            self.last_error = str(exc)
            self._retry_at = self._clock() + self._retry_s
            log.error("backup: scheduled backup failed, next try in %.0f min: %s", self._retry_s / 60, exc)
        else:
            self.last_error, self._retry_at = None, None


# -- the control socket ------------------------------------------------------------------------------
def _target(config: Config, params: Mapping[str, Any]) -> Path:
    given = params.get("to")
    if given is not None and (not isinstance(given, str) or not given.strip()):
        raise InvalidValueError("to must be a directory path given as text")
    if not given:
        if config.backup is None:
            raise InvalidValueError(
                "tidak ada direktori backup / no backup directory. Perbaiki / Fix: give one with --to DIR, or set "
                "[backup] dir in the config")
        return config.backup.dir
    path = Path(given)
    if not path.is_absolute():  # relative to what? the gateway's working directory is not the caller's
        raise InvalidValueError(f"to must be an absolute path, got {given!r}")
    return path


def _keep_days(config: Config, params: Mapping[str, Any], target: Path) -> float | None:
    value = params.get("keep_days")
    if value is None:
        # a directory the config names is pruned by its rule; any other only when asked
        return config.backup.keep_days if config.backup is not None and target == config.backup.dir else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 36500:
        raise InvalidValueError(f"keep_days must be a number of days over 0, got {value!r}")
    return float(value)


def backup_handlers(config: Config, emit: Emit | None,
                    scheduler: BackupScheduler | None = None) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
    """Ops `backup.run` {to?, by, keep_days?} -> BackupResult.as_dict(), `backup.list` {to?} -> {dir, backups}.

    With the gateway's scheduler, a backup asked for here also counts for the schedule and is cancelled
    when the gateway stops.
    """
    def run(params: Mapping[str, Any]) -> dict[str, Any]:
        by = params.get("by")
        if not isinstance(by, str) or not by.strip():
            raise InvalidValueError("by must be given as text: who asked for this backup")
        target = _target(config, params)
        keep_days = _keep_days(config, params, target)
        if scheduler is not None:
            return scheduler.run_now(by, target, keep_days).as_dict()
        return backup_database(config, target, by=by, emit=emit, keep_days=keep_days).as_dict()

    def listing(params: Mapping[str, Any]) -> dict[str, Any]:
        target = _target(config, params)
        return {"dir": str(target), "backups": list_backups(target, config.site, config.gateway)}

    return {"backup.run": run, "backup.list": listing}


__all__ = [
    "BackupCancelled",
    "BackupError",
    "BackupResult",
    "BackupScheduler",
    "backup_database",
    "backup_handlers",
    "list_backups",
    "prune_backups",
    "resolve_backup",
]
