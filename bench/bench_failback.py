"""Failback speed and exactly-once under kill -9, on a throw-away MariaDB.

Seeds a primary billing database (5,000 accounts) and a delta with
100,000 stand-alone xDRs, then:

1. times `Failback.run` (funds lock + batched transfer) and prints xDRs/s;
2. prints the reference peer measured in the same run: MariaDB copying the
   same rows server-side in one `INSERT ... SELECT` (no locks, no watermark,
   not restartable: the ceiling for moving these rows);
3. with --kills N, re-seeds and kills `vigil site failback` with SIGKILL at
   N random moments, then lets it finish and checks none lost, none
   duplicated, each balance change equal to its account's charges.

Goal (issue 11): >= 10,000 xDRs/s, exactly once.

    .venv/bin/python bench/bench_failback.py [--xdrs 100000] [--batch 5000] [--kills 20]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from billing.db import engine_for_url  # noqa: E402
from redundancy.site.failback import Failback  # noqa: E402
from tests.redundancy.failback_data import failback_conf, seed_delta, seed_primary, verify  # noqa: E402
from vigil.testing.mariadb import MariaDB  # noqa: E402

ACCOUNTS = 5000


def fresh(db: MariaDB, xdrs: int) -> tuple[Engine, Engine]:
    for name in ("primary_db", "delta_db"):
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.create_database(name)
    primary = engine_for_url(db.url("primary_db"))
    delta = engine_for_url(db.url("delta_db"))
    seed_primary(primary, ACCOUNTS)
    seed_delta(delta, xdrs, ACCOUNTS)
    return primary, delta


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--xdrs", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10000)
    ap.add_argument("--kills", type=int, default=0, help="random kill -9s of the CLI (0: skip)")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 10_000)
    args = ap.parse_args()
    with MariaDB("bench-failback", extra_args=["--innodb-buffer-pool-size=256M"]) as db:
        print(f"seeding {args.xdrs} xDRs over {ACCOUNTS} accounts ...", flush=True)
        primary, delta = fresh(db, args.xdrs)
        fb = Failback(primary, delta, "site-b", args.batch, settle=0)  # no engine to wait for
        report = fb.run(lambda: None)
        verify(primary, delta)
        print(f"vigil failback:          {report.transferred} xDRs in {report.seconds:.2f} s "
              f"= {report.rate:,.0f} xDRs/s ({report.batches} batches of {args.batch}, "
              "lock + transfer, exactly once: verified; no settle wait)")
        db.execute("CREATE TABLE primary_db.copy_ref LIKE primary_db.account_xdrs")
        t0 = time.perf_counter()
        db.execute(
            "INSERT INTO primary_db.copy_ref (session_key, conf_id, cli, cld, connect_time, "
            "disconnect_time, duration, charged_duration, amount, tariff, rate_prefix, "
            "disconnect_cause, created_at, account_id, node_ip) SELECT CONCAT('r#', seq), "
            "conf_id, cli, cld, connect_time, disconnect_time, duration, charged_duration, "
            "amount, tariff, rate_prefix, disconnect_cause, created_at, owner_pk, peer_ip "
            "FROM delta_db.delta_xdrs")
        ref = time.perf_counter() - t0
        print(f"reference (MariaDB INSERT ... SELECT, same rows, server-side): "
              f"{args.xdrs / ref:,.0f} xDRs/s ({ref:.2f} s)")
        primary.dispose()
        delta.dispose()
        if args.kills:
            rnd = random.Random(args.seed)
            primary, delta = fresh(db, args.xdrs)
            base = Path(db.base) / "fb"
            conf = failback_conf(base, db.url("primary_db"), db.url("delta_db"), args.batch)
            cmd = [sys.executable, "-m", "vigil.cli", "-c", str(conf), "site", "failback"]
            kills = 0
            for _ in range(args.kills):
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
                # python start-up takes ~0.4 s: kill between then and a few batches later
                time.sleep(rnd.uniform(0.3, 1.5))
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    kills += 1
                proc.wait()
            subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            verify(primary, delta)
            print(f"kill -9: {kills} of {args.kills} runs killed (seed {args.seed}); "
                  f"after the last run: none lost, none duplicated, balances = charges")
    return 0


if __name__ == "__main__":
    sys.exit(main())
