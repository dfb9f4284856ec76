"""The witness over a real socket, and the watchdog's probe of it; the direct
database probe against a real stopped (hung) and a killed MariaDB."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from redundancy.site.probes import DbTarget, PathResult, db_probe, witness_probe
from redundancy.site.witness import Witness
from vigil.testing.mariadb import MariaDB
from vigil.testing.ports import free_port

pytestmark = pytest.mark.integration  # real MariaDB and witness probes


def test_witness_tells_what_it_sees():
    seen = {"v": "alive"}
    w = Witness(lambda: PathResult("db", seen["v"], f"primary {seen['v']}"), "127.0.0.1", 0,
                interval=0.1)
    t = threading.Thread(target=w.serve_forever, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 5
        r = witness_probe("127.0.0.1", w.port, 1)
        while "no probe yet" in r.detail and time.monotonic() < deadline:
            r = witness_probe("127.0.0.1", w.port, 1)
        assert r.verdict == "alive", r
        seen["v"] = "dead"
        while r.verdict != "dead" and time.monotonic() < deadline:
            r = witness_probe("127.0.0.1", w.port, 1)
        assert r.verdict == "dead" and "primary dead" in r.detail
    finally:
        w.stop()
        t.join(5)
    assert witness_probe("127.0.0.1", free_port(), 1).verdict == "unknown"


def test_db_probe_dead_hung_and_alive():
    with MariaDB("probe-target") as db:
        target = DbTarget("127.0.0.1", db.port, "root", "")
        assert db_probe(target, 1, 1).verdict == "alive"
        assert db.proc is not None
        os.kill(db.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            r = db_probe(target, 1, 1)
            took = time.monotonic() - t0
            assert r.verdict == "dead", r
            print(f"hung server seen dead by the direct probe in {took:.1f} s")
        finally:
            os.kill(db.proc.pid, signal.SIGCONT)
        db.kill()
        assert db_probe(target, 1, 1).verdict == "dead"
