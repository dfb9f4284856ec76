#!/usr/bin/env python3
"""RADIUS under a flood of hostile datagrams: Vigil vs FreeRADIUS, same run.

The same traffic goes to both (vigil/testing/radius_fuzz.py: truncated
attributes, length lies, bad codes, oversize, bad authenticators, unknown
NAS, mutated and random datagrams), with a valid request after every burst.
Printed per server: hostile datagrams/s offered, valid requests answered,
valid-request latency (median, p99), server CPU per hostile datagram, and
for Vigil the log lines the flood cost. Servers are pinned to CPU 0, the
sender runs on CPU 1. Vigil runs on SQLite (accountings committed before
their answer); FreeRADIUS runs its `files` module.

    .venv/bin/python bench/bench_hostile.py [--datagrams 100000] [--burst 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from billing.server import load_dictionary  # noqa: E402
from billing.testing import BillingSandbox  # noqa: E402
from vigil.testing.freeradius import start_freeradius  # noqa: E402
from vigil.testing.radius_fuzz import Fuzzer, access_request, accounting_stop, ask  # noqa: E402

SECRET = "nextone"  # the demo node's secret; FreeRADIUS is given the same
NAS = "164.4.89.20"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flood(pid: int, auth_port: int, acct_port: int, total: int, burst: int) -> dict[str, float]:
    d = load_dictionary()
    fuzz = Fuzzer(d, SECRET.encode(), NAS, seed=9)
    sent = valid = answered = 0
    latencies: list[float] = []
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bad, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as good:
        i = 0
        while sent < total:
            for _ in range(burst):
                is_auth = fuzz.rnd.random() < 0.5
                bad.sendto(fuzz.next(is_auth), ("127.0.0.1", auth_port if is_auth else acct_port))
                sent += 1
            i += 1
            is_auth = i % 2 == 0
            conf = f"valid-{i}"
            req = (access_request(d, SECRET.encode(), conf, NAS) if is_auth
                   else accounting_stop(d, SECRET.encode(), conf, NAS))
            s = time.perf_counter()
            reply = ask(good, req, ("127.0.0.1", auth_port if is_auth else acct_port), tries=1)
            valid += 1
            if reply is not None:
                answered += 1
                latencies.append((time.perf_counter() - s) * 1000)
    secs = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    latencies.sort()
    return {"rate": sent / secs, "valid": valid, "answered": answered,
            "p50": statistics.median(latencies) if latencies else float("nan"),
            "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
            "cpu_us": cpu * 1e6 / sent}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datagrams", type=int, default=100_000)
    ap.add_argument("--burst", type=int, default=100)
    args = ap.parse_args()
    if not shutil.which("taskset"):
        print("taskset is needed (util-linux)")
        return 2
    os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-hostile-"))
    results: dict[str, dict[str, float]] = {}
    box = BillingSandbox(base=work / "vigil", extra="[Fraud_Detection]\nActive=No\n")
    box.config.write_text(box.config.read_text().replace("Level=DEBUG", "Level=WARNING"))
    box.prepare()
    env = dict(os.environ, VIGIL_CONF=str(box.config))
    box.proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-m", "vigil.cli",
                                 "radiusd"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not box.selftest(timeout=0.3):
        if time.monotonic() > deadline:
            box.stop()
            print("vigil radiusd did not start")
            return 1
    try:
        before = len(box.log_text().splitlines())
        results["vigil"] = flood(box.proc.pid, box.auth_port, box.acct_port, args.datagrams,
                                 args.burst)
        alive = box.proc.poll() is None
    finally:
        box.stop()
    log_lines = len(box.log_text().splitlines()) - before
    users = '"NextoneUserA" Auth-Type := Accept\n\th323-credit-time = "180"\n\n'
    fr = start_freeradius(SECRET, users, threads=4, max_threads=8, cpu=0, cleanup_delay=5)
    assert fr.proc is not None  # started
    try:
        results["freeradius"] = flood(fr.proc.pid, fr.auth_port, fr.acct_port,
                                      args.datagrams, args.burst)
    finally:
        fr.stop()
    for name, r in results.items():
        print(f"{name:10s} {r['rate']:8,.0f} hostile datagrams/s offered, valid answered "
              f"{int(r['answered'])}/{int(r['valid'])}, latency p50 {r['p50']:.2f} ms "
              f"p99 {r['p99']:.2f} ms, server CPU {r['cpu_us']:.1f} us/datagram")
    print(f"vigil alive after the flood: {alive}; log lines written by it: {log_lines}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
