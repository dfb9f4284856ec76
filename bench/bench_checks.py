"""One pass over every check plugin, each run as a real subprocess: wall time and CPU.

    .venv/bin/python bench/bench_checks.py [--passes 3]

Sets up real targets on loopback first (a throw-away MariaDB with the billing
schema and xDRs, FreeRADIUS with the self-test account, supervisord, an SNTP
responder, the engine's counters, radcheck's state, a billing log, an NSCA
spool), then runs ``vigil-check NAME`` for every plugin one after another, as
a cron script would (the scheduler runs them in parallel; see
bench_scheduler.py). Figures per plugin: wall ms, CPU ms (user+sys of the
child), exit code; totals per pass.

Reference peer, same run: the C Monitoring Plugins (Debian
``monitoring-plugins``) for the indicators they share (check_disk, check_load,
check_swap, check_file_age, check_procs, check_mysql, check_mysql_query,
check_ntp_time, check_radius), and ours on the same subset. Bounded: every
plugin has ``-t 10`` and a 30 s subprocess cap.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from checks import PLUGINS  # noqa: E402
from checks.testing import (  # noqa: E402
    SECRET,
    SELFTEST_PASSWORD,
    SELFTEST_USER,
    NTPResponder,
    start_freeradius,
    write_config,
    write_stats,
)
from vigil import statefile  # noqa: E402
from vigil.testing.mariadb import MariaDB  # noqa: E402

VIGIL_CHECK = str(Path(sys.executable).with_name("vigil-check"))
MP = Path("/usr/lib/nagios/plugins")


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_run(argv: list[str]) -> tuple[float, float, int, str]:
    c0, t0 = child_cpu(), time.perf_counter()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        rc, out = p.returncode, p.stdout.strip().splitlines()[0] if p.stdout.strip() else ""
    except subprocess.TimeoutExpired:
        rc, out = -1, "(killed at 30 s)"
    return time.perf_counter() - t0, child_cpu() - c0, rc, out


def setup(tmp: Path) -> tuple[dict[str, list[str]], dict[str, list[str]], list[object]]:
    """Targets; (our argv per plugin, peer argv per plugin); things to stop."""
    state = tmp / "state"
    state.mkdir()
    stop: list[object] = []
    db = MariaDB("bench-checks", server_id=31).start()
    stop.append(db)
    replica = MariaDB("bench-checks-replica", server_id=32).start()
    stop.append(replica)
    db.execute("CREATE DATABASE billing")
    import sqlalchemy as sa

    from billing.models import Base

    engine = sa.create_engine(db.url("billing"))
    Base.metadata.create_all(engine)
    t = Base.metadata.tables
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with engine.begin() as c:
        c.execute(t["customers"].insert().values(id=1, name="acme"))
        c.execute(t["products"].insert().values(id=1, name="p"))
        c.execute(t["accounts"].insert().values(id=1, account_id="1000", customer_id=1,
                                                product_id=1))
        c.execute(t["account_xdrs"].insert(), [
            {"account_id": 1, "session_key": f"k{i}", "duration": (i % 3) * 60,
             "created_at": now - dt.timedelta(seconds=i)} for i in range(20000)])
        c.execute(t["active_calls"].insert(), [
            {"conf_id": f"c{i}", "leg": "originate", "account_id": 1} for i in range(200)])
    engine.dispose()
    replica.execute(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={db.port}, "
                    "MASTER_USER='root', MASTER_USE_GTID=slave_pos")
    replica.execute("START SLAVE")

    fr = start_freeradius()
    stop.append(fr)
    ntp = NTPResponder(0.01)
    stop.append(ntp)

    sock = tmp / "supervisor.sock"
    (tmp / "supervisord.conf").write_text(
        f"[unix_http_server]\nfile={sock}\n[supervisord]\nnodaemon=true\n"
        f"logfile={tmp}/supervisord.log\npidfile={state}/supervisord.pid\nchildlogdir={tmp}\n"
        "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
        "supervisor.rpcinterface:make_main_rpcinterface\n"
        + "".join(f"[program:p{i}]\ncommand=sleep 600\nstartsecs=0\n" for i in range(5)))
    sup = subprocess.Popen([str(Path(sys.executable).with_name("supervisord")), "-c",
                            str(tmp / "supervisord.conf")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    stop.append(sup)

    write_stats(state / "radiusd-stats.json", pid=os.getpid(), access_accepts=1000,
                access_rejects=10, accounting_requests=5000)
    statefile.write_json(state / "radcheck.json", {
        "time": time.time(), "ok": True, "consecutive_failures": 0, "last_error": None,
        "rtt_ms": 1.2, "restarts": 0, "last_restart": None, "pid": os.getpid()})
    log = state / "billing.log"
    with log.open("w") as fh:
        for i in range(200_000):  # ~15 MB: the first run reads nothing, later runs the tail
            lvl = "ERROR" if i % 1000 == 0 else "INFO"
            fh.write(f"2026-01-01T00:00:00 billing.engine[1] {lvl} conf={i} request handled\n")
    spool = state / "nsca-spool"
    for d in ("ready", "open", "cursors"):
        (spool / d).mkdir(parents=True)
    (spool / "ready" / "00000000000000000001-1-000001.jsonl").write_text(
        '{"id":"00","h":"h","s":"s","c":0,"o":"OK","t":0}\n' * 100)
    from vigil.alerts import FloodLimiter

    FloodLimiter(state / "alerts-flood.json", 2, 600).admit("x")
    conf = write_config(tmp / "vigil.conf", state, {
        "Master": {"URL": db.url("billing")},
        "Radius": {"Host": "127.0.0.1", "Auth_Port": fr.auth_port, "Acct_Port": fr.acct_port},
        "Supervisor": {"Socket_File": str(sock)},
        "NSCA": {"Central_Servers": "127.0.0.1:5667"},
        "Log": {"Log_Dest": str(log)},
        "Checks": {"NTP_Server": "127.0.0.1"},
        "Replication": {"User": "root"},
    })
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.1)

    extra = {
        "replication": ["--replica", f"127.0.0.1:{replica.port}", "--master",
                        f"127.0.0.1:{db.port}"],
        "clock_offset": ["-p", str(ntp.port)],
        "pidfile": ["-f", "supervisord.pid"],
        "open_fds": ["--engine"],
        "xdr_rate": ["--window", "60"],
        "asr": ["--window", "60"],
        "acd": ["--window", "60"],
    }
    ours = {n: [VIGIL_CHECK, n, *extra.get(n, []), "-t", "10", "--config", str(conf)]
            for n in PLUGINS}

    peers: dict[str, list[str]] = {}
    if MP.is_dir():
        peers = {
            "disk": [str(MP / "check_disk"), "-w", "20%", "-c", "10%", "-p", "/"],
            "inodes": [str(MP / "check_disk"), "-W", "20%", "-K", "10%", "-w", "0", "-c", "0",
                       "-p", "/"],
            "load": [str(MP / "check_load"), "-w", "8,8,8", "-c", "16,16,16"],
            "swap": [str(MP / "check_swap"), "-w", "50%", "-c", "20%"],
            "file_age": [str(MP / "check_file_age"), "-w", "300", "-c", "900", "-f", str(log)],
            "pidfile": [str(MP / "check_procs"), "-c", "1:", "-C", "python3", "-a",
                        "supervisord"],
            "db_query": [str(MP / "check_mysql"), "-H", "127.0.0.1", "-P", str(db.port), "-u",
                         "root", "-d", "billing"],
            "xdr_rate": [str(MP / "check_mysql_query"), "-H", "127.0.0.1", "-P", str(db.port),
                         "-u", "root", "-d", "billing", "-q",
                         "SELECT COUNT(*)/60 FROM account_xdrs WHERE created_at >= "
                         "UTC_TIMESTAMP() - INTERVAL 60 MINUTE"],
            "replication": [str(MP / "check_mysql"), "-H", "127.0.0.1", "-P",
                            str(replica.port), "-u", "root", "-S"],
            "clock_offset": [str(MP / "check_ntp_time"), "-H", "127.0.0.1", "-p", str(ntp.port),
                             "-w", "0.5", "-c", "1"],
        }
        radcli = tmp / "radcli"
        radcli.mkdir()
        (radcli / "servers").write_text(f"127.0.0.1 {SECRET}\n")
        (radcli / "servers").chmod(0o600)
        (radcli / "radiusclient.conf").write_text(
            f"authserver 127.0.0.1:{fr.auth_port}\nacctserver 127.0.0.1:{fr.acct_port}\n"
            f"servers {radcli}/servers\ndictionary /etc/radcli/dictionary\n"
            "radius_timeout 5\nradius_retries 1\nbindaddr *\n")
        peers["radius_auth"] = [str(MP / "check_radius"), "-H", "127.0.0.1", "-F",
                                str(radcli / "radiusclient.conf"), "-u", SELFTEST_USER, "-p",
                                SELFTEST_PASSWORD, "-P", str(fr.auth_port), "-t", "10"]
        peers = {k: v for k, v in peers.items() if Path(v[0]).exists()}
    return ours, peers, stop


def teardown(stop: list[object]) -> None:
    for thing in reversed(stop):
        if isinstance(thing, subprocess.Popen):
            thing.terminate()
            thing.wait(20)
        elif hasattr(thing, "destroy"):
            thing.destroy()
        elif hasattr(thing, "stop"):
            thing.stop()
        elif hasattr(thing, "close"):
            thing.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-checks-"))
    ours, peers, stop = setup(tmp)
    try:
        print(f"bench_checks: {len(ours)} plugins, {args.passes} passes, one after another, "
              f"{os.cpu_count()} CPUs")
        last: dict[str, tuple[float, float, int, str]] = {}
        for n in range(1, args.passes + 1):
            w0, c0 = time.perf_counter(), child_cpu()
            for name, argv in ours.items():
                last[name] = timed_run(argv)
            wall, cpu = time.perf_counter() - w0, child_cpu() - c0
            states = [r[2] for r in last.values()]
            print(f"  pass {n}: wall {wall:.2f} s, CPU {cpu:.2f} s "
                  f"(OK {states.count(0)}, WARNING {states.count(1)}, "
                  f"CRITICAL {states.count(2)}, UNKNOWN {states.count(3)})")
        print("\n  last pass, per plugin:            wall ms  CPU ms  rc  output")
        for name, (wall, cpu, rc, out) in sorted(last.items(), key=lambda kv: -kv[1][0]):
            print(f"  {name:32} {wall * 1000:7.0f} {cpu * 1000:7.0f} {rc:3}  {out[:70]}")
        if peers:
            print("\n  reference peer: C Monitoring Plugins on the same indicators")
            print("  plugin            ours wall/CPU ms   peer wall/CPU ms  peer rc  peer")
            tw = tc = pw = pc = 0.0
            for name, argv in peers.items():
                mine = min((timed_run(ours[name]) for _ in range(3)), key=lambda r: r[0])
                theirs = min((timed_run(argv) for _ in range(3)), key=lambda r: r[0])
                tw, tc, pw, pc = tw + mine[0], tc + mine[1], pw + theirs[0], pc + theirs[1]
                print(f"  {name:16} {mine[0] * 1000:7.0f} /{mine[1] * 1000:5.0f}    "
                      f"{theirs[0] * 1000:7.0f} /{theirs[1] * 1000:5.0f}  {theirs[2]:5}    "
                      f"{Path(argv[0]).name}")
            print(f"  {'total':16} {tw * 1000:7.0f} /{tc * 1000:5.0f}    "
                  f"{pw * 1000:7.0f} /{pc * 1000:5.0f}   (best of 3 each)")
        floor = min(timed_run([sys.executable, "-c", "pass"])[0] for _ in range(5))
        print(f"\n  floor: starting this Python and doing nothing takes {floor * 1000:.0f} ms")
    finally:
        teardown(stop)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
