"""Re-seed a large replica with ``mariabackup``: stream, prepare, swap the datadir.

``mariabackup --backup --stream=xbstream`` copies the master's files while it
keeps writing (a short ``BACKUP STAGE BLOCK_COMMIT`` at the end) and notes the
GTID of that point in ``xtrabackup_binlog_info``. The stream is unpacked by
``mbstream`` into a staging folder next to the replica's datadir, prepared,
and swapped in by renames while the replica's server is stopped. If the new
datadir does not start, the old one is put back and started again.

Both the master's datadir and the replica's must be on this machine (the
single-server layout of the source, replica on port 3307), and the replica's
server is stopped and started with ``[Replication] Replica_Stop_Command`` /
``Replica_Start_Command``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redundancy.replication.errors import ReplicationError, SnapshotFailed
from redundancy.replication.server import Server, ServerParams, option_file

log = logging.getLogger(__name__)
Report = Callable[[str], None]
CHUNK = 1 << 20


@dataclass
class BackupResult:
    gtid_pos: str
    staged: Path
    bytes_copied: int
    seconds: float


def directory_bytes(path: Path, skip_prefix: str = "") -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            if skip_prefix and f.startswith(skip_prefix):
                continue
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def read_binlog_info(folder: Path) -> str:
    """The GTID position the backup corresponds to."""
    for name in ("mariadb_backup_binlog_info", "xtrabackup_binlog_info"):
        p = folder / name
        if p.exists():
            parts = p.read_text().split()
            if len(parts) >= 3:
                return parts[2]
    raise SnapshotFailed(f"the backup in {folder} has no GTID position "
                         "(xtrabackup_binlog_info missing: is log_bin on on the master?)")


def stream_backup(master: Server, master_datadir: str, staged: Path, report: Report,
                  progress_every: float = 2.0) -> BackupResult:
    """``mariabackup --stream`` | ``mbstream -x`` into ``staged``, then ``--prepare``."""
    start = time.monotonic()
    staged.mkdir(mode=0o700, parents=True)
    scratch = staged.parent / (staged.name + ".tmp")
    scratch.mkdir(mode=0o700, exist_ok=True)
    log_path = staged.parent / (staged.name + ".mariabackup.log")
    keep_log = False  # a failed backup's log is what the operator reads next
    try:
        with option_file(master.params, ("client", "mariabackup")) as cnf, \
                open(log_path, "wb") as blog:
            argv = ["mariabackup", f"--defaults-extra-file={cnf}", "--backup",
                    "--stream=xbstream", f"--datadir={master_datadir}",
                    f"--target-dir={scratch}"]
            master.sql_log.record("shell", " ".join(
                a if not a.startswith("--defaults-extra") else
                "--defaults-extra-file=<0600 temp file>" for a in argv)
                + f" | mbstream -x -C {staged}")
            backup = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=blog)
            unpack = subprocess.Popen(["mbstream", "-x", "-C", str(staged)],
                                      stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            err: list[bytes] = []
            unpack_err = unpack.stderr
            assert unpack_err is not None  # stderr=PIPE
            t = threading.Thread(target=lambda: err.append(unpack_err.read()), daemon=True)
            t.start()
            copied, last = 0, time.monotonic()
            # a binary pipe is buffered (bufsize=-1): read1 returns what is there, up to CHUNK
            assert isinstance(backup.stdout, io.BufferedReader) and unpack.stdin is not None
            try:
                while chunk := backup.stdout.read1(CHUNK):
                    try:
                        unpack.stdin.write(chunk)
                    except BrokenPipeError:
                        backup.kill()
                        break
                    copied += len(chunk)
                    if time.monotonic() - last >= progress_every:
                        last = time.monotonic()
                        report(f"  backup: {copied / 2**20:.1f} MB streamed in "
                               f"{last - start:.0f} s")
            finally:
                with contextlib.suppress(BrokenPipeError):
                    unpack.stdin.close()
                backup.wait()
                unpack.wait()
                t.join(5)
                for stream in (backup.stdout, unpack.stderr):
                    if stream is not None:
                        stream.close()
        if backup.returncode != 0:
            keep_log = True
            raise SnapshotFailed(f"mariabackup --backup failed (exit {backup.returncode}): "
                                 f"{_tail(log_path)} (its whole log: {log_path})")
        if unpack.returncode != 0:
            raise SnapshotFailed(f"mbstream failed: {b''.join(err).decode(errors='replace')}")
        report(f"  backup: {copied / 2**20:.1f} MB streamed in "
               f"{time.monotonic() - start:.1f} s; preparing")
        prep = subprocess.run(["mariabackup", "--prepare", f"--target-dir={staged}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
        if prep.returncode != 0:
            raise SnapshotFailed("mariabackup --prepare failed: "
                                 + prep.stderr.decode(errors="replace").strip()[-300:])
        return BackupResult(read_binlog_info(staged), staged, copied,
                            time.monotonic() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not keep_log:
            with contextlib.suppress(FileNotFoundError):
                log_path.unlink()


def _tail(path: Path, last: int = 3) -> str:
    """The log's error lines, else its last lines: mariabackup often ends
    with an innocent line after the one that says what went wrong."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    bad = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return " | ".join((bad or lines or ["(empty log)"])[-last:])


def read_master_info(datadir: Path) -> tuple[str, str] | None:
    """(user, password) from an old datadir's master.info, if there is one."""
    p = datadir / "master.info"
    try:
        lines = p.read_text().splitlines()
    except OSError:
        return None
    return (lines[4], lines[5]) if len(lines) > 5 else None


class ReplicaServerControl:
    """Stops and starts the replica's server: shell commands, or SHUTDOWN over SQL."""

    def __init__(self, params: ServerParams, start_command: str, stop_command: str = "",
                 timeout: float = 120.0, report: Report | None = None) -> None:
        if not start_command:
            raise ReplicationError("[Replication] Replica_Start_Command is not set: the backup "
                                   "method must restart the replica's server")
        self.params = params
        self.start_command = start_command
        self.stop_command = stop_command
        self.timeout = timeout
        self.report = report or (lambda _s: None)

    def _reachable(self) -> bool:
        try:
            Server(self.params).connect().close()
            return True
        except ReplicationError:
            return False

    def _run(self, command: str) -> None:
        self.report(f"  $ {command}")
        proc = subprocess.run(command, shell=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=self.timeout)
        if proc.returncode != 0:
            raise ReplicationError(f"`{command}` failed (exit {proc.returncode}): "
                                   + proc.stdout.decode(errors="replace").strip()[-300:])

    def stop(self) -> None:
        if self.stop_command:
            self._run(self.stop_command)
        elif self._reachable():
            with contextlib.suppress(ReplicationError):
                s = Server(self.params).connect()
                s.execute("SHUTDOWN")
                s.close()
        deadline = time.monotonic() + self.timeout
        while self._reachable():
            if time.monotonic() > deadline:
                raise ReplicationError(f"the replica at {self.params.address} did not stop")
            time.sleep(0.2)
        # the port closes before mariadbd has released its files
        time.sleep(1.0)

    def start(self) -> None:
        self._run(self.start_command)
        deadline = time.monotonic() + self.timeout
        while not self._reachable():
            if time.monotonic() > deadline:
                raise ReplicationError(f"the replica at {self.params.address} did not start "
                                       f"within {self.timeout:.0f} s")
            time.sleep(0.2)


def swap_datadir(datadir: Path, staged: Path, control: ReplicaServerControl,
                 report: Report) -> Path:
    """Stop, rename old away and staged in, start; on failure put the old one back."""
    old = datadir.with_name(datadir.name + time.strftime(".old-%Y%m%d-%H%M%S"))
    st = datadir.stat() if datadir.exists() else None
    report(f"  stopping the replica's server; {datadir} -> {old.name}")
    control.stop()
    if datadir.exists():
        datadir.rename(old)
    staged.rename(datadir)
    if st is not None:
        _chown_tree(datadir, st.st_uid, st.st_gid)
    try:
        report("  starting the replica's server on the new datadir")
        control.start()
    except ReplicationError as exc:
        report(f"  the new datadir did not start ({exc}); putting the old one back")
        with contextlib.suppress(ReplicationError):
            control.stop()
        failed = datadir.with_name(datadir.name + time.strftime(".failed-%Y%m%d-%H%M%S"))
        datadir.rename(failed)
        if old.exists():
            old.rename(datadir)
            control.start()
        raise SnapshotFailed(f"the re-seeded replica did not start: {exc}; the old datadir "
                             f"is back in place, the new one kept in {failed}") from exc
    return old


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                os.lchown(os.path.join(root, name), uid, gid)
    with contextlib.suppress(OSError):
        os.lchown(path, uid, gid)
