"""Re-seed the replica from a consistent dump of the master, piped, while it keeps writing.

``mariadb-dump --single-transaction --master-data=1 --gtid`` reads the master
inside one consistent-snapshot transaction (a brief lock only to note the
binlog position) and writes, at its very end, ``SET GLOBAL gtid_slave_pos``
for exactly that snapshot. Its output is piped straight into the ``mariadb``
client on the replica (no temporary file), through this process so that
progress can be shown. Replication is started only when both sides finished
cleanly and the GTID line arrived; otherwise the replica is left stopped.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redundancy.replication.errors import NotEnoughDisk, SnapshotFailed
from redundancy.replication.server import Server, option_file
from redundancy.replication.sql import quote_ident

log = logging.getLogger(__name__)
Report = Callable[[str], None]

SYSTEM_DATABASES = ("mysql", "information_schema", "performance_schema", "sys")
_GTID_LINE = re.compile(rb"SET GLOBAL gtid_slave_pos\s*=\s*'([0-9,\-]*)'")
_TABLE_LINE = re.compile(rb"-- Dumping data for table `([^`]+)`")
CHUNK = 1 << 20


def databases(master: Server, configured: Sequence[str]) -> list[str]:
    """The configured databases, or every non-system one on the master."""
    present = [r["name"] for r in master.query(
        "SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")]
    if configured:
        missing = [d for d in configured if d not in present]
        if missing:
            raise SnapshotFailed(f"database(s) {', '.join(missing)} not found on the master "
                                 "([Replication] Databases)")
        return list(configured)
    return [d for d in present if d not in SYSTEM_DATABASES]


def data_bytes(server: Server, dbs: Sequence[str]) -> int:
    if not dbs:
        return 0
    marks = ", ".join(["%s"] * len(dbs))
    total = server.scalar(
        "SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA IN ({marks})", tuple(dbs))
    return int(total or 0)


def check_disk(path: str, needed: int, reserve: int, what: str) -> None:
    """Refuse when ``needed`` bytes would leave less than ``reserve`` free under ``path``."""
    free = shutil.disk_usage(path).free
    if free - needed < reserve:
        raise NotEnoughDisk(
            f"not enough disk for {what}: {path} has {free / 2**20:.0f} MB free, the snapshot "
            f"needs about {needed / 2**20:.0f} MB and [Replication] Disk_Reserve_MB keeps "
            f"{reserve / 2**20:.0f} MB free; free some space or lower Disk_Reserve_MB")


def local_datadir(replica: Server) -> str | None:
    """The replica's datadir when it is on this machine (else no disk check is possible)."""
    datadir = replica.scalar("SELECT @@datadir")
    return datadir if datadir and os.path.isdir(datadir) else None


@dataclass
class DumpResult:
    gtid_pos: str
    bytes_copied: int
    seconds: float


def dump_command(cnf: str, dbs: Sequence[str]) -> list[str]:
    return ["mariadb-dump", f"--defaults-extra-file={cnf}", "--single-transaction",
            "--master-data=1", "--gtid", "--quick", "--hex-blob", "--routines", "--events",
            "--triggers", "--add-drop-database", "--default-character-set=utf8mb4",
            "--max-allowed-packet=1G", "--databases", *dbs]


def load_command(cnf: str) -> list[str]:
    # sql_log_bin=0: the load must not become the replica's own transactions.
    return ["mariadb", f"--defaults-extra-file={cnf}", "--batch", "--max-allowed-packet=1G",
            "--default-character-set=utf8mb4", "--init-command=SET SESSION sql_log_bin=0"]


def _shown(argv: list[str]) -> str:
    return " ".join(a if not a.startswith("--defaults-extra-file") else
                    "--defaults-extra-file=<0600 temp file>" for a in argv)


def pipe_dump(master: Server, replica: Server, dbs: Sequence[str], report: Report,
              progress_every: float = 2.0) -> DumpResult:
    """Run the dump into the replica; the GTID position it ends with, or SnapshotFailed."""
    start = time.monotonic()
    with option_file(master.params) as m_cnf, option_file(replica.params) as r_cnf:
        dump_argv, load_argv = dump_command(str(m_cnf), dbs), load_command(str(r_cnf))
        master.sql_log.record("shell", _shown(dump_argv) + " | " + _shown(load_argv))
        dump = subprocess.Popen(dump_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        load = subprocess.Popen(load_argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        errs: dict[str, bytes] = {}
        readers = [threading.Thread(target=lambda p=p, n=n: errs.__setitem__(n, p.stderr.read()),
                                    daemon=True)
                   for p, n in ((dump, "dump"), (load, "load"))]
        for t in readers:
            t.start()
        copied, tail, table, last = 0, b"", "", time.monotonic()
        broken_pipe = False
        # a binary pipe is buffered (bufsize=-1): read1 returns what is there, up to CHUNK
        assert isinstance(dump.stdout, io.BufferedReader) and load.stdin is not None
        try:
            while True:
                chunk = dump.stdout.read1(CHUNK)
                if not chunk:
                    break
                try:
                    load.stdin.write(chunk)
                except BrokenPipeError:
                    broken_pipe = True
                    break
                copied += len(chunk)
                tail = (tail + chunk)[-4096:]
                for m in _TABLE_LINE.finditer(chunk):
                    table = m.group(1).decode(errors="replace")
                now = time.monotonic()
                if now - last >= progress_every:
                    last = now
                    report(f"  re-seed: {copied / 2**20:.1f} MB copied in {now - start:.0f} s"
                           + (f", table {table}" if table else ""))
        finally:
            with contextlib.suppress(BrokenPipeError):
                load.stdin.close()
            if broken_pipe:
                dump.kill()
            dump.wait()
            load.wait()
            for t in readers:
                t.join(5)
            for stream in (dump.stdout, dump.stderr, load.stderr):
                if stream is not None:
                    stream.close()
    seconds = time.monotonic() - start
    dump_err = errs.get("dump", b"").decode(errors="replace").strip()
    load_err = errs.get("load", b"").decode(errors="replace").strip()
    if dump.returncode != 0:
        raise SnapshotFailed(f"mariadb-dump on the master failed (exit {dump.returncode}): "
                             f"{_last_line(dump_err)}")
    if load.returncode != 0:
        raise SnapshotFailed(f"loading the dump into the replica failed (exit "
                             f"{load.returncode}): {_last_line(load_err)}")
    found = _GTID_LINE.findall(tail)
    if not found:
        raise SnapshotFailed("the dump ended without its GTID position (cut short?)")
    report(f"  re-seed: {copied / 2**20:.1f} MB copied in {seconds:.1f} s")
    return DumpResult(found[-1].decode(), copied, seconds)


def disable_events(replica: Server, dbs: Sequence[str]) -> list[str]:
    """Events copied by the dump would run on the replica too: mark them master-only.

    Replication itself creates them ``SLAVESIDE_DISABLED``; a dump loads them
    ``ENABLED``, and an event firing on the replica is an errant write.
    """
    if not dbs:
        return []
    marks = ", ".join(["%s"] * len(dbs))
    rows = replica.query("SELECT EVENT_SCHEMA AS db, EVENT_NAME AS name "
                         "FROM information_schema.EVENTS WHERE STATUS = 'ENABLED' "
                         f"AND EVENT_SCHEMA IN ({marks})", tuple(dbs))
    if rows:
        replica.execute_always(replica.sql("no_binlog_session"))
    names = []
    for r in rows:
        name = f"{r['db']}.{r['name']}"
        replica.execute(f"ALTER EVENT {quote_ident(name)} DISABLE ON SLAVE")
        names.append(name)
    return names


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"
