#!/usr/bin/env python3
"""Calls in progress: accounting Starts and Stops per second, and the listing.

Vigil (one engine process, a throw-away durable MariaDB: every Start is a
row committed before its answer, checked against ended calls and
authorizations) against FreeRADIUS ``files`` answering the same Starts and
Stops in the same run (no database: the ceiling of a C RADIUS server here).
Then ``list_calls`` (what ``vigil calls list`` runs) with every call up.

    .venv/bin/python bench/bench_calls.py [--calls 5000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_radius import (  # noqa: E402
    ACCOUNTS,
    SECRET,
    authz_file,
    freeradius,
    measure,
    start_vigil,
)

from vigil.testing.mariadb import MariaDB  # noqa: E402


def acct_file(path: Path, n: int, tag: str, status: str) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            f.write(f'NAS-IP-Address = 10.0.0.1\nUser-Name = "acc{i % ACCOUNTS:04d}"\n'
                    f'Acct-Status-Type = {status}\nAcct-Session-Id = "{tag}-{i}"\n'
                    + (f"Acct-Session-Time = {30 + i % 300}\n" if status == "Stop" else "")
                    + f'Called-Station-Id = "1212555{i:04d}"\n'
                    f'Calling-Station-Id = "acc{i % ACCOUNTS:04d}"\n'
                    f'h323-conf-id = "{tag}-{i}"\nh323-call-origin = "originate"\n'
                    f'h323-remote-address = "192.0.2.{i % 200}"\n\n')
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--sender", choices=("python", "radclient"), default="python",
                    help="the load generator, as in bench/bench_radius.py")
    args = ap.parse_args()
    n = args.calls
    work = Path(tempfile.mkdtemp(prefix="bench-calls-"))
    secret = work / "secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    results: dict[str, dict[str, float]] = {}
    db = MariaDB("bench-calls", server_id=9,
                 extra_args=["--innodb-flush-log-at-trx-commit=1", "--sync-binlog=1"])
    db.start()
    db_pid = db.proc.pid if db.proc else None
    try:
        box = start_vigil(db, work, "calls", 1)
        try:
            assert box.proc is not None
            pid = box.proc.pid
            results["vigil authorize"] = measure(
                args.sender, box.auth_port, "auth", [authz_file(work / "a.txt", n, "c")],
                secret, pid, db_pid, "1", 1, 128)
            results["vigil start"] = measure(
                args.sender, box.acct_port, "acct", [acct_file(work / "s.txt", n, "c", "Start")],
                secret, pid, db_pid, "1", 1, 128)
            from billing.calls import list_calls
            from billing.db import engine_for_url

            engine = engine_for_url(box.db_url)
            t0 = time.perf_counter()
            with engine.connect() as conn:
                up = list_calls(conn)
            list_s = time.perf_counter() - t0
            engine.dispose()
            results["vigil stop"] = measure(
                args.sender, box.acct_port, "acct", [acct_file(work / "e.txt", n, "c", "Stop")],
                secret, pid, db_pid, "1", 1, 128)
        finally:
            box.stop()
    finally:
        db.destroy()
    fr = freeradius()
    assert fr.proc is not None  # started
    try:
        for status in ("Start", "Stop"):
            results[f"freeradius files {status.lower()}"] = measure(
                args.sender, fr.acct_port, "acct",
                [acct_file(work / f"f{status}.txt", n, "f", status)], secret, fr.proc.pid, None,
                "1", 1, 128)
    finally:
        fr.stop()
    print(f"{n} calls, {args.sender} with 128 in flight pinned to CPU 1, servers to CPU 0")
    for name, r in results.items():
        print(f"  {name:<24} {r['rps']:>8.0f} requests/s  failed {r['failed']:>4.0f}  "
              f"server CPU {r['server_cpu']:.2f} s/1000  mariadbd {r['db_cpu']:.2f} s/1000")
    print(f"  list_calls with {len(up)} calls up: {list_s * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
