"""Failback exactly once: random kill -9 of `vigil site failback` during a
20,000-xDR transfer, a failback started twice, re-runs; none lost, none
duplicated, each balance change equal to its account's charges.
(The 100,000-xDR version with speed figures: bench/bench_failback.py.)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from billing.db import engine_for_url
from billing.testing import ROOT
from tests.redundancy.failback_data import failback_conf, seed_delta, seed_primary, verify
from vigil.testing.mariadb import MariaDB

XDRS = 20_000
ACCOUNTS = 400


@pytest.fixture
def own_db():
    """A server of its own: the kill test kills it."""
    db = MariaDB("failback-primary")
    db.start()
    yield db
    db.destroy()


@pytest.fixture
def dbs(mariadb, tmp_path):
    for name in ("fb_primary", "fb_delta"):
        mariadb.execute(f"DROP DATABASE IF EXISTS {name}")
        mariadb.create_database(name)
    primary = engine_for_url(mariadb.url("fb_primary"))
    delta = engine_for_url(mariadb.url("fb_delta"))
    seed_primary(primary, ACCOUNTS)
    seed_delta(delta, XDRS, ACCOUNTS)
    yield mariadb, primary, delta
    primary.dispose()
    delta.dispose()
    for name in ("fb_primary", "fb_delta"):
        mariadb.execute(f"DROP DATABASE IF EXISTS {name}")


def start(conf, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "vigil.cli", "-c", str(conf), "site",
                             "failback", *extra], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.mark.e2e  # failback kill -9ed at random points, re-run to the end
def test_failback_survives_random_kill9(own_db, tmp_path):
    """kill -9 of the failback process, and of the primary's (and delta's)
    mariadbd, at random moments; then two failbacks at once; then a re-run."""
    db = own_db
    for name in ("fb_primary", "fb_delta"):
        db.create_database(name)
    primary = engine_for_url(db.url("fb_primary"))
    delta = engine_for_url(db.url("fb_delta"))
    seed_primary(primary, ACCOUNTS)
    seed_delta(delta, XDRS, ACCOUNTS)
    # 80 batches: eight victims, each killed at most 3 batches into its run
    # (plus what it moves while the kill lands), leave a transfer to interrupt
    conf = failback_conf(tmp_path, db.url("fb_primary"), db.url("fb_delta"), 250)
    seed = int(os.environ.get("VIGIL_TEST_SEED", time.time_ns() % 10_000))
    rnd = random.Random(seed)
    print(f"seed {seed}")
    kills = {"failback": 0, "database": 0}
    runs: list[str] = []
    victims = ["failback"] * 5 + ["database"] * 3
    rnd.shuffle(victims)
    for victim in victims:
        proc = start(conf)
        # the worst moments: for the failback process, after the funds are
        # locked, after the switch to stand-by, or between batches; for the
        # database, in the middle of the transfer (a restart during the settle
        # pause is only a reconnect, and that run would move everything)
        first = 0 if victim == "failback" else 2
        target = rnd.randint(first, 4)
        seen, read = 0, []
        assert proc.stdout is not None
        for line in proc.stdout:
            read.append(line)
            if line.startswith(("lock", "mode", "transferred")):
                seen += 1
            if seen >= target and (victim == "failback" or line.startswith("transferred")):
                break
        killed = proc.poll() is None
        if killed:
            if victim == "database":
                db.kill()
                db.start()
            else:
                os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out = "".join(read) + proc.stdout.read()
        proc.stdout.close()
        # a kill counts only if it interrupted a transfer
        interrupted = killed and "failback done" not in out
        kills[victim] += interrupted
        runs.append(f"{victim} at line {target}: exit {proc.returncode}, "
                    f"{'interrupted' if interrupted else 'not interrupted'}: "
                    f"{out.strip().splitlines()[-1:] }")
    assert kills["failback"] >= 2 and kills["database"] >= 1, \
        f"{kills} (seed {seed})\n" + "\n".join(runs)
    print(f"kills: {kills}\n" + "\n".join(runs))
    primary.dispose()  # connections to a killed server are gone
    delta.dispose()
    # two at once, then once more: each finds the other's batches done
    a, b = start(conf), start(conf)
    out_a, _ = a.communicate(timeout=300)
    out_b, _ = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, out_a + out_b
    done = subprocess.run([sys.executable, "-m", "vigil.cli", "-c", str(conf), "site",
                           "failback"], cwd=ROOT, text=True, capture_output=True, timeout=120)
    assert done.returncode == 0 and "failback done: 0 xDR(s)" in done.stdout, done.stdout
    verify(primary, delta)
    primary.dispose()
    delta.dispose()


def test_dry_run_changes_nothing(dbs, tmp_path):
    mariadb, primary, delta = dbs
    conf = failback_conf(tmp_path, mariadb.url("fb_primary"), mariadb.url("fb_delta"), 5000)
    r = subprocess.run([sys.executable, "-m", "vigil.cli", "-c", str(conf), "site", "failback",
                        "--dry-run"], cwd=ROOT, text=True, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"would lock: {XDRS} xDR(s)" in r.stdout
    assert "would switch to stand-by" in r.stdout
    assert mariadb.execute("SELECT COUNT(*) FROM fb_primary.account_xdrs")[0][0] == 0
    assert mariadb.execute("SELECT COUNT(*) FROM fb_primary.accounts WHERE balance <> 50"
                           )[0][0] == 0
    assert not (tmp_path / "state" / "site-mode.json").exists()
