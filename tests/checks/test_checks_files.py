"""Plugins that read real files: engine counters, radcheck state, logs, pidfiles, /proc."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.checks.checks_fixtures import STARTED, run_check, write_stats
from vigil import statefile

pytestmark = pytest.mark.integration  # real processes: vigil commands, servers, plugins

OLD_OK = ("--max-age", "900")  # tests write counters "minutes ago"


def test_auth_failures_rates_between_runs(conf: Path, state_dir: Path) -> None:
    stats = state_dir / "radiusd-stats.json"
    write_stats(stats, access_accepts=100, access_rejects=5, updated_at=int(time.time()) - 60)
    first = run_check("auth_failures", *OLD_OK, config=conf)
    assert first.rc == 0 and "baseline" in first.line and "|" not in first.line, first
    # 60 s later: 90 more accepts, 10 more rejects -> 10 % (below 20 %)
    write_stats(stats, access_accepts=190, access_rejects=15)
    r = run_check("auth_failures", *OLD_OK, config=conf)
    assert r.rc == 0, r
    assert "10.0% rejected (10 of 100" in r.line and "'rejected'=10%;20;50;0;100" in r.line
    # next interval: 30 rejects of 40 -> 75 % critical
    write_stats(stats, access_accepts=200, access_rejects=45, updated_at=int(time.time()) + 1)
    r = run_check("auth_failures", *OLD_OK, config=conf)
    assert r.rc == 2 and "75.0% rejected" in r.line, r


def test_auth_failures_engine_restart_counts_from_zero(conf: Path, state_dir: Path) -> None:
    stats = state_dir / "radiusd-stats.json"
    write_stats(stats, access_accepts=1000, access_rejects=10, updated_at=int(time.time()) - 30)
    run_check("auth_failures", *OLD_OK, config=conf)
    write_stats(stats, started_at=int(time.time()) - 20, access_accepts=6,
                access_rejects=14)
    r = run_check("auth_failures", *OLD_OK, config=conf)
    assert r.rc == 2 and "70.0% rejected (14 of 20" in r.line and "restarted" in r.line, r


def test_stale_or_missing_counters_are_critical(conf: Path, state_dir: Path) -> None:
    r = run_check("acct_duplicates", config=conf)
    assert r.rc == 2 and "has not run" in r.line, r
    write_stats(state_dir / "radiusd-stats.json", updated_at=int(time.time()) - 600)
    r = run_check("acct_duplicates", config=conf)
    assert r.rc == 2 and "not updated for" in r.line, r


def test_corrupt_state_is_reported_once_then_rebaselined(conf: Path, state_dir: Path) -> None:
    write_stats(state_dir / "radiusd-stats.json", updated_at=int(time.time()) - 60)
    run_check("radius_db_errors", *OLD_OK, config=conf)
    (state_file,) = (state_dir / "checks").glob("radius_db_errors.*.json")
    state_file.write_text("{not json")
    r = run_check("radius_db_errors", *OLD_OK, config=conf)
    assert r.rc == 3 and "not valid JSON" in r.line, r
    r = run_check("radius_db_errors", *OLD_OK, config=conf)
    assert r.rc == 0 and "baseline" in r.line, r


def test_duplicates_drops_and_db_errors(conf: Path, state_dir: Path) -> None:
    stats = state_dir / "radiusd-stats.json"
    now = int(time.time())
    write_stats(stats, updated_at=now - 120)
    for name in ("acct_duplicates", "radius_drops", "radius_db_errors"):
        assert run_check(name, *OLD_OK, config=conf).rc == 0
    write_stats(stats, accounting_requests=500, accounting_duplicates=40,
                dropped_unknown_nas=3, dropped_malformed=1, dropped_overload=2, db_errors=2,
                updated_at=now)
    dup = run_check("acct_duplicates", *OLD_OK, config=conf)
    assert dup.rc == 1 and "20.0 duplicate accountings/min" in dup.line, dup
    drops = run_check("radius_drops", *OLD_OK, config=conf)
    assert drops.rc == 1 and "3.0 dropped packets/min (3 unknown nas" in drops.line, drops
    assert "2 overload" in drops.line and "'overload'=2c" in drops.line, drops
    dbe = run_check("radius_db_errors", *OLD_OK, config=conf)
    assert dbe.rc == 1 and "2 database errors in 120s" in dbe.line, dbe


def test_radcheck_state(conf: Path, state_dir: Path) -> None:
    path = state_dir / "radcheck.json"
    r = run_check("radcheck", config=conf)
    assert r.rc == 2 and "radcheck has not run" in r.line, r
    statefile.write_json(path, {"time": time.time() - 5, "ok": True, "consecutive_failures": 0,
                                "last_error": None, "rtt_ms": 1.5, "restarts": 0,
                                "last_restart": None, "pid": 1})
    r = run_check("radcheck", config=conf)
    assert r.rc == 0 and "passed 5s ago in 1.5 ms" in r.line and "'rtt'=0.0015s" in r.line, r
    statefile.write_json(path, {"time": time.time() - 400, "ok": True, "pid": 1})
    assert run_check("radcheck", config=conf).rc == 2
    statefile.write_json(path, {"time": time.time(), "ok": False, "consecutive_failures": 3,
                                "last_error": "timeout: no answer from 127.0.0.1:1812",
                                "rtt_ms": None, "restarts": 1, "pid": 1})
    r = run_check("radcheck", config=conf)
    assert r.rc == 2 and "failed" in r.line and "3 in a row" in r.line, r
    path.write_text("garbage")
    assert run_check("radcheck", config=conf).rc == 3


def test_radcheck_restart_is_a_warning_for_a_while(conf: Path, state_dir: Path) -> None:
    """A hang radcheck repaired is visible: WARNING after the restart, restarts in perfdata."""
    path = state_dir / "radcheck.json"
    now = time.time()
    statefile.write_json(path, {"time": now - 2, "ok": True, "consecutive_failures": 0,
                                "rtt_ms": 2.0, "restarts": 2, "last_restart": now - 120,
                                "program": "radiusd", "pid": 1})
    r = run_check("radcheck", config=conf)
    assert r.rc == 1 and "radcheck restarted radiusd 120s ago (2 restarts in all)" in r.line, r
    assert "'restarts'=2c" in r.line, r
    r = run_check("radcheck", "--restart-warning", "60", config=conf)
    assert r.rc == 0 and "restarted" not in r.line and "'restarts'=2c" in r.line, r
    r = run_check("radcheck", "--restart-warning", "0", config=conf)
    assert r.rc == 0, r


def test_log_errors_counts_new_lines_and_follows_rotation(conf: Path, tmp_path: Path) -> None:
    log = tmp_path / "billing.log"
    log.write_text("2026-01-01T00:00:00 billing.engine[1] ERROR conf=1 old failure\n")
    args = ("-f", str(log))
    first = run_check("log_errors", *args, config=conf)
    assert first.rc == 0 and "baseline" in first.line, first
    with log.open("a") as fh:
        fh.write("2026-01-01T00:00:01 billing.engine[1] INFO conf=2 fine\n"
                 "2026-01-01T00:00:02 billing.engine[1] ERROR conf=3 No accessibility\n"
                 "2026-01-01T00:00:03 billing.server[1] WARNING conf=4 meh\n"
                 "2026-01-01T00:00:04 billing.db[1] ERROR conf=5 lost connection\n"
                 "2026-01-01T00:00:05 billing.db[1] ERROR conf=6 half a li")
    r = run_check("log_errors", *args, config=conf)
    assert r.rc == 1 and "2 new error lines" in r.line and "lost connection" in r.line, r
    with log.open("a") as fh:
        fh.write("ne\n")  # the half line completes: counted now, once
    r = run_check("log_errors", *args, config=conf)
    assert r.rc == 1 and "1 new error lines" in r.line, r
    assert run_check("log_errors", *args, config=conf).rc == 0
    log.rename(tmp_path / "billing.log.1")
    log.write_text("2026-01-01T00:01:00 billing.engine[2] ERROR conf=7 after rotation\n")
    r = run_check("log_errors", *args, config=conf)
    assert r.rc == 1 and "rotated" in r.line and "after rotation" in r.line, r


def test_log_errors_missing_log_is_critical(conf: Path, tmp_path: Path) -> None:
    r = run_check("log_errors", "-f", str(tmp_path / "nope.log"), config=conf)
    assert r.rc == 2 and "does not exist" in r.line, r


def test_file_age(conf: Path, tmp_path: Path) -> None:
    f = tmp_path / "x.log"
    f.write_text("x")
    assert run_check("file_age", "-f", str(f), config=conf).rc == 0
    old = time.time() - 600
    os.utime(f, (old, old))
    r = run_check("file_age", "-f", str(f), config=conf)
    assert r.rc == 1 and "600s ago" in r.line, r
    assert run_check("file_age", "-f", str(tmp_path / "gone"), config=conf).rc == 2


def test_pidfile_and_open_fds(conf: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "sleeper.pid"
    proc = subprocess.Popen(["sleep", "60"])
    try:
        pidfile.write_text(f"{proc.pid}\n")
        r = run_check("pidfile", "-f", str(pidfile), "--match", "sleep", config=conf)
        assert r.rc == 0 and f"pid {proc.pid} running" in r.line, r
        # restarted less than 10 minutes ago: the uptime range says so
        assert run_check("pidfile", "-f", str(pidfile), "-w", "600:", config=conf).rc == 1
        r = run_check("pidfile", "-f", str(pidfile), "--match", "mariadbd", config=conf)
        assert r.rc == 2 and "pid reused" in r.line, r
        fds = run_check("open_fds", "-f", str(pidfile), config=conf)
        assert fds.rc == 0 and "files open" in fds.line, fds
        n = len(os.listdir(f"/proc/{proc.pid}/fd"))
        assert f"has {n} of" in fds.line
        assert run_check("open_fds", "--pid", str(proc.pid), "-w", "0.0001",
                         config=conf).rc == 1
    finally:
        proc.kill()
        proc.wait()
    r = run_check("pidfile", "-f", str(pidfile), config=conf)
    assert r.rc == 2 and "not running" in r.line, r
    assert run_check("pidfile", "-f", str(tmp_path / "none.pid"), config=conf).rc == 2
    assert run_check("open_fds", "-f", str(pidfile), config=conf).rc == 2


def _meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, _, rest = line.partition(":")
        out[k] = int(rest.split()[0])
    return out


def test_system_plugins_against_this_machine(conf: Path) -> None:
    st = os.statvfs("/")
    used = 100.0 * (st.f_blocks - st.f_bfree) / ((st.f_blocks - st.f_bfree) + st.f_bavail)
    assert run_check("disk", "-p", "/", "-w", f"{used + 5:.1f}", config=conf).rc == 0
    r = run_check("disk", "-p", "/", "-w", f"{max(used - 5, 0):.1f}", "-c", "100",
                  config=conf)
    assert r.rc == 1 and f"{used:.1f}% used on /" in r.line, r
    assert run_check("disk", "-p", "/", "-c", f"@0:{used + 5:.1f}", config=conf).rc == 2
    assert run_check("disk", "-p", "/no/such/dir", config=conf).rc == 3
    iused = 100.0 * (st.f_files - st.f_ffree) / st.f_files
    r = run_check("inodes", "-p", "/", config=conf)
    assert f"{iused:.1f}% of inodes" in r.line
    assert run_check("inodes", "-p", "/", "-c", f"~:{iused / 2:.4f}", config=conf).rc == 2
    load5 = os.getloadavg()[1]
    r = run_check("load", "-m", "5", "-w", f"{load5 + 50}", config=conf)
    assert r.rc == 0 and "over 5 min" in r.line, r
    assert run_check("load", "-w", "@0:1000", config=conf).rc == 1
    mem = _meminfo()
    pct = 100.0 * (mem["MemTotal"] - mem["MemAvailable"]) / mem["MemTotal"]
    r = run_check("memory", "-w", f"{max(pct - 2, 0):.2f}", "-c", "100", config=conf)
    assert r.rc == 1 and "'mem_used'=" in r.line, r
    r = run_check("swap", config=conf)
    if mem["SwapTotal"] == 0:
        assert r.rc == 0 and "no swap configured" in r.line
    else:
        assert "swap in use" in r.line


def test_state_dir_not_writable_is_unknown(tmp_path: Path) -> None:
    from tests.checks.checks_fixtures import write_config

    blocker = tmp_path / "file"
    blocker.write_text("")
    conf = write_config(tmp_path / "v.conf", tmp_path)
    statefile.write_json(tmp_path / "radiusd-stats.json", json.loads(json.dumps(
        {"pid": 1, "started_at": 1, "updated_at": int(time.time())})))
    r = run_check("radius_drops", "--state-dir", str(blocker / "sub"), config=conf)
    assert r.rc == 3 and "state" in r.line and "Not a directory" in r.line, r


def test_open_fds_names_a_dead_engine_from_a_previous_run(conf: Path, state_dir: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    proc.kill()
    proc.wait()  # a pid that is gone, as in a counters file left by the last run
    stats = state_dir / "radiusd-stats.json"
    stats.write_text(json.dumps({"pid": proc.pid}))
    old = time.time() - 3600
    os.utime(stats, (old, old))
    r = run_check("open_fds", "--engine", config=conf)
    assert r.rc == 2, r
    assert f"the RADIUS engine is not running (pid {proc.pid} from radiusd-stats.json, " \
        "written 36" in r.line and "s ago)" in r.line, r


def test_counters_of_every_live_engine_process_are_summed(conf: Path, state_dir: Path) -> None:
    """One file per engine process: the live ones' increases add up; a file
    whose process is gone counts for nothing; a restarted process counts from 0."""
    now = int(time.time())
    zero, one = state_dir / "radiusd-stats.json", state_dir / "radiusd-stats-1.json"
    write_stats(zero, access_accepts=100, access_rejects=0, updated_at=now - 60)
    write_stats(one, access_accepts=50, access_rejects=10, updated_at=now - 60,
                started_at=STARTED + 1)
    write_stats(state_dir / "radiusd-stats-2.json", pid=0, access_rejects=10_000)
    first = run_check("auth_failures", *OLD_OK, config=conf)
    assert first.rc == 0 and "baseline" in first.line, first
    write_stats(zero, access_accepts=160, access_rejects=10, updated_at=now)
    write_stats(one, access_accepts=70, access_rejects=20, updated_at=now,
                started_at=STARTED + 1)
    r = run_check("auth_failures", *OLD_OK, config=conf)
    assert r.rc == 0 and "20.0% rejected (20 of 100 in 60s)" in r.line, r
    # process 1 restarted: its counters since its start are its increase
    write_stats(zero, access_accepts=170, access_rejects=10, updated_at=now + 10)
    write_stats(one, access_accepts=0, access_rejects=5, updated_at=now + 10,
                started_at=now + 5)
    r = run_check("auth_failures", *OLD_OK, config=conf)
    assert r.rc == 1 and "33.3% rejected (5 of 15 in 10s), engine restarted" in r.line, r


def test_a_hung_engine_process_is_critical(conf: Path, state_dir: Path) -> None:
    """Its pid runs, its counters stopped: the process is frozen (the parent's
    watchdog should have replaced it)."""
    frozen = subprocess.Popen(["sleep", "60"])
    try:
        write_stats(state_dir / "radiusd-stats-1.json", pid=frozen.pid,
                    updated_at=int(time.time()))
        r = run_check("radius_drops", "--max-age", "0.01", config=conf)
        assert r.rc == 2, r
        assert f"engine process 1 (pid {frozen.pid}) counters not updated for" in r.line, r
    finally:
        frozen.kill()
        frozen.wait()


def test_open_fds_reports_the_fullest_engine_process(conf: Path, state_dir: Path) -> None:
    import sys

    many = subprocess.Popen([sys.executable, "-c", "import os, time\n"
                             "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(400)]\n"
                             "print('ready', flush=True)\ntime.sleep(60)\n"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert many.stdout is not None and many.stdout.readline() == "ready\n"
        write_stats(state_dir / "radiusd-stats.json")  # this process: few files open
        write_stats(state_dir / "radiusd-stats-1.json", pid=many.pid)
        r = run_check("open_fds", "--engine", config=conf)
        assert r.rc == 0, r
        assert f"engine process 1 of 2 (pid {many.pid}) has 40" in r.line, r
    finally:
        many.kill()
        many.wait()
        if many.stdout is not None:
            many.stdout.close()
