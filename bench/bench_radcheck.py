"""radcheck and alerts: what a self-test costs, how fast an outage is repaired.

    .venv/bin/python bench/bench_radcheck.py [--probes 300] [--outages 3]

1. Self-test round trip: radcheck's probe (a new UDP socket per test, pyrad
   encode/verify, Message-Authenticator) against FreeRADIUS 3 (files module),
   sequentially. Reference peer in the same run: ``radclient`` sending the same
   number of Access-Requests one at a time (``-p 1``) from one process.
2. Outage repair under a real supervisord: ``kill -STOP`` FreeRADIUS, time until
   radcheck has restarted it and the self-test passes again, next to the bound
   Errors_Before_Restart x (Test_Frequency_sec + Timeout_sec) (2 x (1 + 1) s).
3. Alerts: mails/s through ``send_alert`` (flood-limiter state file with fsync,
   template, SMTP) into a loopback aiosmtpd, limit off; reference: bare smtplib
   on the same server.

Bounded: every wait has a timeout; the whole run takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from radcheck.probe import SelfTest, probe  # noqa: E402
from tests.radcheck.radcheck_peers import (  # noqa: E402
    PASSWORD,
    SECRET,
    USER,
    Appliance,
    FreeRadius,
    base_conf,
    write_conf,
)
from vigil import alerts, config  # noqa: E402
from vigil.testing.smtp import SMTPSink  # noqa: E402
from vigil.testing.wait import poll  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bench_probe(tmp: Path, n: int) -> None:
    fr = FreeRadius(tmp / "raddb").start()
    try:
        test = SelfTest("127.0.0.1", fr.port, SECRET.encode(), "127.0.0.1", USER, PASSWORD, 2.0)
        for _ in range(20):
            probe(test)  # warm-up
        rtts: list[float] = []
        t0 = time.perf_counter()
        for _ in range(n):
            r = probe(test)
            assert r.ok, r
            rtts.append(r.rtt_ms or 0.0)
        ours = time.perf_counter() - t0
        secret_file = tmp / "secret"
        secret_file.write_text(SECRET + "\n")
        os.chmod(secret_file, 0o600)
        req = (f'User-Name = "{USER}", User-Password = "{PASSWORD}", '
               'NAS-IP-Address = 127.0.0.1, Message-Authenticator = 0x00\n\n')
        reqfile = tmp / "requests"
        reqfile.write_text(req * n)
        t0 = time.perf_counter()
        rc = subprocess.run(["radclient", "-q", "-p", "1", "-r", "1", "-t", "2", "-f",
                             str(reqfile), "-S", str(secret_file), f"127.0.0.1:{fr.port}",
                             "auth"], capture_output=True, timeout=120).returncode
        ref = time.perf_counter() - t0
    finally:
        fr.stop()
    print(f"1. self-test round trip vs FreeRADIUS 3, {n} sequential Access-Requests")
    print(f"   radcheck probe : {n / ours:7.0f} tests/s   rtt median {statistics.median(rtts):.2f}"
          f" ms, p95 {pct(rtts, 95):.2f} ms, max {max(rtts):.2f} ms")
    print(f"   radclient -p 1 : {n / ref:7.0f} req/s    (reference peer, exit {rc}, "
          "one process for all requests)")


def bench_outage(tmp: Path, outages: int) -> None:
    smtp = SMTPSink().start()
    fr = FreeRadius(tmp / "raddb2")
    n, freq, timeout = 2, 1, 1
    sections = base_conf(tmp, radius_port=fr.port, smtp_port=smtp.port,
                         extra={"Self Test": {"Errors_Before_Restart": n,
                                              "Test_Frequency_sec": freq,
                                              "Timeout_sec": timeout},
                                "Site": {"State_Dir": tmp / "state", "Log_Dir": tmp / "log"}})
    conf = write_conf(tmp / "vigil.conf", sections)
    progs = tmp / "programs"
    progs.mkdir()
    (progs / "freeradius.conf").write_text(
        f"[program:freeradius]\ncommand={' '.join(fr.command)}\npriority=100\nstartsecs=1\n"
        "stopsignal=TERM\nstopwaitsecs=10\nredirect_stderr=true\n"
        "stdout_logfile=%(ENV_VIGIL_LOG_DIR)s/freeradius.log\n")
    app = Appliance(conf, ["--only", "radcheck", "--include", f"{progs}/*.conf"]).start()
    state = tmp / "state" / "radcheck.json"

    def radcheck() -> dict:
        try:
            return json.loads(state.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    times: list[float] = []
    try:
        if not poll(lambda: radcheck().get("ok"), 40):
            print("2. outage repair: appliance did not come up; skipped")
            return
        for i in range(outages):
            pid = app.pid("freeradius")
            t0 = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            def restarted(i: int = i) -> bool:
                s = radcheck()
                return bool(s.get("restarts", 0) > i and s.get("ok"))

            ok = poll(restarted, 60, interval=0.05)
            times.append(time.monotonic() - t0 if ok else float("nan"))
        mails = len(smtp.wait_for(2 * outages, timeout=5))
    finally:
        app.stop()
        smtp.stop()
    bound = n * (freq + timeout)
    print(f"2. outage repair under supervisord (kill -STOP FreeRADIUS), {outages} outages")
    print(f"   stop -> restarted and answering: {', '.join(f'{t:.1f}' for t in times)} s "
          f"(bound {bound} s + restart); mails {mails} (outage + recovery each, limit 5)")


def bench_alerts(tmp: Path, n: int) -> None:
    with SMTPSink() as smtp:
        sections = base_conf(tmp, radius_port=1812, smtp_port=smtp.port,
                             extra={"Site": {"State_Dir": tmp / "state3"}})
        cfg = config.load(write_conf(tmp / "alerts.conf", sections))
        limiter = alerts.FloodLimiter(tmp / "state3" / "flood.json", 10 * n, 450)
        t0 = time.perf_counter()
        for i in range(n):
            alerts.send_alert(cfg, f"bench {i}", "body\n", limiter=limiter)
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(n):
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.com", f"r{i}"
            msg.set_content("body\n")
            with smtplib.SMTP("127.0.0.1", smtp.port, timeout=5,
                              local_hostname="bench") as s:
                s.send_message(msg)
        ref = time.perf_counter() - t0
        smtp.wait_for(2 * n, timeout=10)
    print(f"3. alerts into a loopback aiosmtpd, {n} mails, one SMTP session each")
    print(f"   send_alert (limiter file + fsync, template, SMTP): {n / ours:6.0f} mails/s")
    print(f"   bare smtplib (reference)                          : {n / ref:6.0f} mails/s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--outages", type=int, default=3)
    ap.add_argument("--mails", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-radcheck-") as d:
        tmp = Path(d)
        bench_probe(tmp, args.probes)
        bench_outage(tmp, args.outages)
        bench_alerts(tmp, args.mails)
    return 0


if __name__ == "__main__":
    sys.exit(main())
