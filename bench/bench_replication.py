"""Re-seed a replica of a 1,000,000-row master with `vigil replication repair`.

Prints, for the dump method and the backup method, the re-seed time (snapshot
and load, then the whole repair with verification) and the longest commit
stall seen by a writer doing one-row commits in a loop on the master during
the repair, next to the reference peers measured in the same run:

- the same writer with no repair running (the master's own commit jitter);
- the bare shell pipe `mariadb-dump --single-transaction --master-data=1
  --gtid | mariadb` that the dump method wraps (no progress, no checks).

Goals (issue 5): dump re-seed < 40 s with no stall > 250 ms; backup < 10 s.
Bounded: builds the rows once, four timed runs, about 3 minutes in all.

    .venv/bin/python bench/bench_replication.py [--rows N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shlex
import shutil
import subprocess
import sys
import time
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

from redundancy.replication.repair import Repair, RepairOptions
from redundancy.replication.server import PairParams, ServerParams, SqlLog, option_file
from vigil.config import Secret
from vigil.testing.mariadb import MariaDB

REPL_PASSWORD = "bench-repl"
ARGS = ["--gtid-strict-mode=1", "--innodb-buffer-pool-size=512M"]


def writer(port: int, stop: MpEvent, started: MpEvent,
           out: MpQueue[tuple[int, float, float]]) -> None:
    """One-row commits in a loop; reports (commits, longest commit in seconds, when)."""
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    cur = conn.cursor()
    worst, worst_at, n = 0.0, 0.0, 0
    started.set()
    while not stop.is_set():
        t0 = time.perf_counter()
        cur.execute("INSERT INTO bench.writes (at) VALUES (NOW(6))")
        dt = time.perf_counter() - t0
        n += 1
        if dt > worst:
            worst, worst_at = dt, time.time()
    conn.close()
    out.put((n, worst, worst_at))


class Stall:
    """A writer process on the master for the length of a ``with`` block."""

    def __init__(self, port: int) -> None:
        self.stop, self.started = mp.Event(), mp.Event()
        self.q: MpQueue[tuple[int, float, float]] = mp.Queue()
        self.proc = mp.Process(target=writer, args=(port, self.stop, self.started, self.q),
                               daemon=True)
        self.commits, self.worst, self.worst_at = 0, 0.0, 0.0

    def __enter__(self) -> Stall:
        self.proc.start()
        self.started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.commits, self.worst, self.worst_at = self.q.get(timeout=30)
        self.proc.join(10)


def build(master: MariaDB, rows: int) -> float:
    t0 = time.monotonic()
    master.execute("CREATE DATABASE bench")
    master.execute("CREATE TABLE bench.xdrs (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                   "account_id VARCHAR(32) NOT NULL, cld VARCHAR(32) NOT NULL, "
                   "connect_time DATETIME NOT NULL, duration INT NOT NULL, "
                   "amount DECIMAL(12,5) NOT NULL, KEY (account_id)) ENGINE=InnoDB")
    master.execute("CREATE TABLE bench.writes (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
                   "at DATETIME(6) NOT NULL) ENGINE=InnoDB")
    step = 100_000
    for lo in range(0, rows, step):
        hi = min(rows, lo + step)
        master.execute(
            "INSERT INTO bench.xdrs (account_id, cld, connect_time, duration, amount) "
            f"SELECT CONCAT('acc', seq MOD 5000), CONCAT('1555', LPAD(seq, 7, '0')), "
            f"NOW() - INTERVAL seq SECOND, seq MOD 3600, (seq MOD 3600) * 0.00125 "
            f"FROM seq_{lo + 1}_to_{hi}", database="bench")
    return time.monotonic() - t0


def wipe(db: MariaDB) -> None:
    db.stop()
    shutil.rmtree(db.datadir)
    db.start()


def repair(master: MariaDB, replica: MariaDB, method: str, opts_extra: dict) -> tuple[
        float, float, list[tuple[float, str]]]:
    """(re-seed seconds, whole repair seconds, [(unix time, report line)])."""
    params = PairParams(ServerParams("127.0.0.1", master.port, label="master"),
                        ServerParams("127.0.0.1", replica.port, label="replica"))
    base = Path(replica.base)
    opts = RepairOptions(method=method, lock_file=base / "bench.lock",
                         state_file=base / "bench-state.json",
                         replication_password=Secret(REPL_PASSWORD), disk_reserve=0,
                         catch_up_timeout=300, **opts_extra)
    lines: list[tuple[float, str]] = []
    t0 = time.time()
    Repair(params, opts, lambda s: lines.append((time.time(), s)), SqlLog()).run()
    total = time.time() - t0
    reseed = next((t - t0 for t, s in lines if s.startswith("verify:")), total)
    return reseed, total, lines


def phase(lines: list[tuple[float, str]], at: float) -> str:
    """The repair step that was running when the longest commit ended."""
    before = [s for t, s in lines if t <= at]
    return (before[-1].strip()[:60] if before else "before the repair started")


def bare_pipe(master: MariaDB, replica: MariaDB) -> float:
    """The reference peer: the shell pipe alone."""
    with option_file(ServerParams("127.0.0.1", master.port)) as m, \
            option_file(ServerParams("127.0.0.1", replica.port)) as r:
        cmd = (f"mariadb-dump --defaults-extra-file={m} --single-transaction --master-data=1 "
               "--gtid --quick --databases bench | "
               f"mariadb --defaults-extra-file={r} --init-command='SET SESSION sql_log_bin=0'")
        t0 = time.monotonic()
        subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
        return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    master = MariaDB("bench-master", server_id=1, extra_args=ARGS)
    replica = MariaDB("bench-replica", server_id=2, extra_args=ARGS + ["--read-only=1"])
    results: list[tuple[str, str]] = []
    try:
        master.start()
        replica.start()
        master.execute("CREATE USER 'repl'@'%%' IDENTIFIED BY %s", (REPL_PASSWORD,))
        master.execute("GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'")
        print(f"building {args.rows:,} rows on the master ...", flush=True)
        print(f"  built in {build(master, args.rows):.1f} s", flush=True)

        with Stall(master.port) as idle:
            time.sleep(5)
        results.append(("reference: writer alone, 5 s (no re-seed)",
                        f"{idle.commits:,} commits, longest commit {idle.worst * 1000:.0f} ms"))

        t = bare_pipe(master, replica)
        results.append(("reference: bare `mariadb-dump | mariadb` pipe", f"{t:.1f} s"))
        wipe(replica)

        with Stall(master.port) as w:
            reseed, total, lines = repair(master, replica, "dump", {})
        results.append(("vigil repair --method dump", f"re-seed {reseed:.1f} s (goal < 40 s), "
                        f"with verification {total:.1f} s; longest master commit "
                        f"{w.worst * 1000:.0f} ms (goal < 250 ms), {w.commits:,} commits; "
                        f"longest during: {phase(lines, w.worst_at)}"))

        wipe(replica)
        script = Path(replica.base) / "start.sh"
        script.write_text("#!/bin/sh\nsetsid " + shlex.join(replica.args())
                          + " </dev/null >/dev/null 2>&1 &\n")
        script.chmod(0o755)
        with Stall(master.port) as w:
            reseed, total, lines = repair(master, replica, "backup",
                                          {"replica_datadir": str(replica.datadir),
                                           "start_command": str(script)})
        results.append(("vigil repair --method backup", f"re-seed {reseed:.1f} s (goal < 10 s), "
                        f"with verification {total:.1f} s; longest master commit "
                        f"{w.worst * 1000:.0f} ms, {w.commits:,} commits; "
                        f"longest during: {phase(lines, w.worst_at)}"))
    finally:
        pidfile = Path(replica.base) / "mysqld.pid"
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text().strip()], check=False)
            time.sleep(2)
        replica.destroy()
        master.destroy()
    print(f"\nre-seed of {args.rows:,} rows while the master takes one-row commits:")
    for name, figure in results:
        print(f"  {name}:\n      {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
