#!/usr/bin/env python3
"""CPU per request of one engine, in-process: where a core's time goes.

bench/bench_radius.py measures requests/s end to end, and on this VM its
figures move by up to 2.5x from one minute to the next: the load generator,
mariadbd and the engine share two cores and a scheduler. This script takes
them out. The packets (bench_radius.py's requests, encoded by
bench/radius_load.py) are built first; then, in this one thread:

1. the packet loop's part: ``RadiusServer.handle`` for each datagram
   (boundary checks, decoding, the plan, the hand-over to the committer),
   the committer's threads not started;
2. the committer's part: its batches committed one after the other on a
   throw-away durable MariaDB (or SQLite with ``--sqlite``), every reply
   sent over a real UDP socket.

Printed: CPU microseconds per request for each part (process time of this
process, the database's own CPU not included), for authorizations and for
accounting Stops. Compare two versions of the code by running it on each,
alternately, in one sitting: the figures are CPU time, not wall time, so
they move far less than requests/s do (a pure-Python loop still took 0.28
to 0.39 s from one minute to the next on this VM).

    .venv/bin/python bench/bench_engine_cpu.py [--requests 20000] [--rounds 3] [--sqlite]
"""

from __future__ import annotations

import argparse
import logging
import socket
import statistics
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
    acct_file,
    authz_file,
    durable_mariadb,
    provision_doc,
)
from machine_speed import interpreter, reference_ms  # noqa: E402
from radius_load import encode, read_requests  # noqa: E402

from billing.app import build_server, tune_process  # noqa: E402
from billing.server import RadiusServer, load_dictionary  # noqa: E402
from billing.testing import BillingSandbox  # noqa: E402
from vigil.config import load  # noqa: E402

BATCH = 64  # [Radius] Commit_Batch's default: a busy engine's batch


def packets(path: Path, kind: str) -> list[bytes]:
    dictionary = load_dictionary()
    return [encode(r, kind, SECRET.encode(), dictionary) for r in read_requests(path)]


def run_part(server: RadiusServer, datagrams: list[bytes], sock: socket.socket,
             source: tuple[str, int], batch: int) -> tuple[float, float]:
    """CPU seconds of the packet loop's part, then of the committer's: one
    batch of datagrams decided, then committed and answered, as the engine
    does under load (the live objects stay as few as there)."""
    loop = commit = 0.0
    clock = time.process_time
    for at in range(0, len(datagrams), batch):
        t0 = clock()
        for raw in datagrams[at:at + batch]:
            server.handle(raw, source, sock)
        t1 = clock()
        while server.committer.run_once():
            pass
        t2 = clock()
        loop += t1 - t0
        commit += t2 - t1
    return loop, commit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="measurements of each kind")
    ap.add_argument("--sqlite", action="store_true", help="SQLite instead of MariaDB")
    ap.add_argument("--batch", type=int, default=BATCH,
                    help=f"requests per committed batch (default {BATCH}: a busy engine's; "
                         "smaller shows what each batch costs whatever its size)")
    ap.add_argument("--only", choices=("authorization", "accounting"),
                    help="measure one kind of request (while profiling it)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-cpu-"))
    db = None if args.sqlite else durable_mariadb("bench-cpu")
    try:
        if db is not None:
            db.start()
            db.create_database("billing_cpu")
        box = BillingSandbox(db.url("billing_cpu") if db else None, base=work / "vigil",
                             provision=provision_doc(work / "bench.yaml"),
                             extra="[Fraud_Detection]\nActive=No\n",
                             radius=f"Commit_Batch={args.batch}\n")
        box.config.write_text(box.config.read_text().replace("Level=DEBUG", "Level=WARNING"))
        box.prepare()
        cfg = load(box.config)
        logging.basicConfig(level=logging.WARNING)
        server = build_server(cfg)
        # the committer's batches are run here, in this thread, one by one
        server.committer.max_age = 1e9
        server.committer.max_backlog = args.requests + 1
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        source = sink.getsockname()
        figures: dict[str, list[tuple[float, float]]] = {"authorization": [],
                                                          "accounting": []}
        # one unmeasured authorization per account: every account in memory
        # (read from the database by the look-up workers, as in the engine)
        warm = packets(authz_file(work / "warm.txt", ACCOUNTS, "warm"), "auth")
        server.workers.start()
        for raw in warm:
            server.handle(raw, source, server.auth_sock)
        deadline = time.monotonic() + 60
        while server.counters["access_accepts"] < ACCOUNTS and time.monotonic() < deadline:
            if not server.committer.run_once():
                time.sleep(0.01)
        server.workers.stop()
        print(f"warm-up: {server.counters['access_accepts']} of {ACCOUNTS} accounts in memory")
        tune_process()  # as `vigil radiusd` does once it is built
        # as the committer's thread does: one connection kept between batches
        with server.engine.store.holding():
            for r in range(args.rounds):
                print(f"round {r + 1}: the reference loop took {reference_ms():.1f} ms of CPU "
                      f"({interpreter()})")
                auth = packets(authz_file(work / f"z{r}.txt", args.requests, f"z{r}"), "auth")
                acct = packets(acct_file(work / f"a{r}.txt", args.requests, f"a{r}"), "acct")
                for label, datagrams, sock in (("authorization", auth, server.auth_sock),
                                               ("accounting", acct, server.acct_sock)):
                    if args.only and label != args.only:
                        continue
                    loop, commit = run_part(server, datagrams, sock, source, args.batch)
                    n = len(datagrams)
                    figures[label].append((loop / n * 1e6, commit / n * 1e6))
                    print(f"round {r + 1} {label:14s} packet loop {loop / n * 1e6:6.1f} us  "
                          f"committer {commit / n * 1e6:6.1f} us  "
                          f"total {(loop + commit) / n * 1e6:6.1f} us per request", flush=True)
        counters = server.counters.snapshot()
        print(f"\nCPU microseconds per request, median of {args.rounds} rounds of "
              f"{args.requests} ({'SQLite' if args.sqlite else 'durable MariaDB'}; "
              f"accepts {counters['access_accepts']}, rejects {counters['access_rejects']}, "
              f"accounting responses {counters['accounting_responses']})")
        print(f"{'request':14s} {'packet loop':>12s} {'committer':>10s} {'total':>8s}")
        for label, rows in figures.items():
            if not rows:
                continue
            loop_us = statistics.median(x for x, _ in rows)
            commit_us = statistics.median(y for _, y in rows)
            total = statistics.median(x + y for x, y in rows)
            print(f"{label:14s} {loop_us:12.1f} {commit_us:10.1f} {total:8.1f}")
        server.auth_sock.close()
        server.acct_sock.close()
        sink.close()
        sent = {label: len(rows) * args.requests for label, rows in figures.items()}
        if counters["access_accepts"] != ACCOUNTS + sent["authorization"] or \
                counters["accounting_responses"] != sent["accounting"]:
            print("not every request was answered: the figures above are not comparable")
            return 1
        return 0
    finally:
        if db is not None:
            db.destroy()


if __name__ == "__main__":
    sys.exit(main())
