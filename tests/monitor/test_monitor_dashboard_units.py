"""The dashboard's pure parts: perfdata parsing, RRD storage (real rrdtool), mail
composition, runbook rendering and first steps, the start-up gate, the web config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor import graphs, notify, runbooks, web
from monitor.scheduler import Scheduler
from monitor.startup import StartupGate
from monitor.testing import Spec

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ perfdata
@pytest.mark.parametrize("text, want", [
    ("rtt=0.002s;0.5;2;0;", [("rtt", 0.002, "s")]),
    ("'fds used'=12%;80;90;0;100 load1=1,5", [("fds used", 12.0, "%"), ("load1", 1.5, "")]),
    ("'it''s'=3c", [("it's", 3.0, "c")]),
    ("a=1 b=U c= =5 d=1e3B", [("a", 1.0, ""), ("d", 1000.0, "B")]),
    ("", []),
    ("garbage without equals", []),
])
def test_perfdata_is_parsed_and_junk_skipped(text: str, want: list) -> None:
    assert graphs.parse_perfdata(text) == want


@pytest.mark.parametrize("line", ["", "\t\t\t", "x\th\ts\trtt=1", "12\thost", "\x00\xff" * 50,
                                  "1\th\ts\t" + "=" * 10000])
def test_hostile_perfdata_lines_never_raise(line: str) -> None:
    assert isinstance(graphs.parse_line(line), list)


def test_names_cannot_leave_the_rrd_folder(tmp_path: Path) -> None:
    for name in ("..", ".", "../../etc", "a/b", "x:y", ""):
        p = graphs.rrd_path(tmp_path, name, name, name)
        assert tmp_path in p.parents
        assert all(part not in (".", "..") for part in p.relative_to(tmp_path).parts)
        assert "/" not in graphs.safe_name(name) and ":" not in graphs.safe_name(name)


@pytest.mark.integration
def test_perfdata_file_lands_in_rrds_once_even_after_a_crash(tmp_path: Path) -> None:
    now = int(time.time())
    lines = "".join(f"{now - 60 * (9 - i)}\tvigil-a\tDisk /\tused={i}%;80;90\n"
                    for i in range(10))
    perf = tmp_path / "service-perfdata"
    # a previous run died after renaming its file: its lines are stored with the new ones
    perf.with_name(perf.name + ".processing").write_text(lines[: len(lines) // 2])
    perf.write_text(lines[len(lines) // 2:] + "junk\n")
    store = graphs.Store(tmp_path / "rrd")
    n_lines, stored = graphs.process_file(perf, store)
    assert (n_lines, stored) == (11, 10)
    assert not perf.exists() and not perf.with_name(perf.name + ".processing").exists()
    assert graphs.process_file(perf, store) == (0, 0)
    rrd = graphs.rrd_path(tmp_path / "rrd", "vigil-a", "Disk /", "used")
    out = subprocess.run(["rrdtool", "lastupdate", str(rrd)], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == f"{now}: 9"
    # a re-sent (older) result is skipped, not an error
    perf.write_text(f"{now - 120}\tvigil-a\tDisk /\tused=50%\n")
    assert graphs.process_file(perf, store) == (1, 1)
    assert graphs.metrics_of(tmp_path / "rrd", "vigil-a", "Disk /") == [("used", "%")]
    png = graphs.graph_png(tmp_path / "rrd", "vigil-a", "Disk /", "used", "4h", "%")
    assert png.startswith(b"\x89PNG")
    with pytest.raises(graphs.GraphError, match="no data"):
        graphs.graph_png(tmp_path / "rrd", "vigil-a", "Disk /", "nope", "day")


@pytest.mark.integration
def test_graph_cgi_serves_a_page_a_png_and_refuses_nonsense(tmp_path: Path) -> None:
    now = int(time.time())
    graphs.Store(tmp_path / "rrd").update(
        [graphs.Sample(now - 60 * i, "h", "S v", "rtt", 0.1 * i, "s") for i in range(5)])
    script = tmp_path / "graph.cgi"
    script.write_text(web.graph_cgi(web.WebSettings(tmp_path, tmp_path / "n.cfg", "127.0.0.1",
                                                    1, "u", "p")).replace(
        str(tmp_path / "rrd"), str(tmp_path / "rrd")))
    script.chmod(0o755)

    def cgi(query: str) -> bytes:
        return subprocess.run([str(script)], capture_output=True, check=True, timeout=60,
                              env={**os.environ, "QUERY_STRING": query,
                                   "SCRIPT_NAME": "/graphs/graph.cgi"}).stdout

    page = cgi("host=h&service=S+v").decode()
    assert "Content-Type: text/html" in page and page.count("<img class='graph'") == 4
    png = cgi("host=h&service=S+v&metric=rtt&period=week")
    assert png.split(b"\r\n\r\n", 1)[1].startswith(b"\x89PNG")
    for bad in ("", "host=h", "host=h&service=S+v&metric=rtt&period=year",
                "host=..&service=..&metric=..%2F..%2Fetc&period=day"):
        assert b"Status: 404" in cgi(bad)


# ---------------------------------------------------------------------- mail
def test_problem_mail_says_since_when_rounded_runbook_and_first_step() -> None:
    env = {"NAGIOS_NOTIFICATIONTYPE": "PROBLEM", "NAGIOS_HOSTNAME": "vigil-a1",
           "NAGIOS_HOSTGROUPNAME": "site-a", "NAGIOS_SERVICEDESC": "RADIUS authentication",
           "NAGIOS_SERVICESTATE": "CRITICAL", "NAGIOS_SERVICEOUTPUT": "no answer",
           "NAGIOS_TIMET": "1000000", "NAGIOS_LASTSERVICESTATECHANGE": str(1000000 - 754),
           "NAGIOS_SERVICENOTESURL": "http://c/runbooks/checks.html#check-radius_auth",
           "NAGIOS_SERVICENOTES": "Check vigil status."}
    subject, body = notify.compose(env, "service")
    assert subject == "PROBLEM: vigil-a1/RADIUS authentication is CRITICAL"
    since = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(1000000 - 754))
    assert f"Since: {since} (13 min ago)" in body
    assert "Runbook: http://c/runbooks/checks.html#check-radius_auth" in body
    assert "First step: Check vigil status." in body
    assert "Acknowledged" not in body


def test_acknowledgement_mail_names_author_and_comment() -> None:
    env = {"NAGIOS_NOTIFICATIONTYPE": "ACKNOWLEDGEMENT", "NAGIOS_HOSTNAME": "site-b",
           "NAGIOS_HOSTALIAS": "site site-b", "NAGIOS_HOSTSTATE": "DOWN",
           "NAGIOS_NOTIFICATIONAUTHOR": "alice", "NAGIOS_NOTIFICATIONCOMMENT": "`rm -rf` $x 'q'",
           "NAGIOS_LASTHOSTSTATECHANGE": "0"}
    subject, body = notify.compose(env, "host")
    assert subject == "ACKNOWLEDGEMENT: site site-b is DOWN"
    assert "Acknowledged by: alice" in body and "Comment: `rm -rf` $x 'q'" in body
    assert "Since" not in body  # no state change known: nothing invented


@pytest.mark.parametrize("sec, text", [(0, "0 s"), (89.4, "89 s"), (95, "2 min"), (754, "13 min"),
                                       (3600, "1 h"), (3 * 3600 + 301, "3 h 5 min"),
                                       (50 * 3600, "2 d 2 h"), (-5, "0 s")])
def test_durations_are_rounded(sec: float, text: str) -> None:
    assert notify.rounded_duration(sec) == text


@pytest.mark.integration
def test_notify_hands_the_mail_to_the_notify_command(tmp_path: Path) -> None:
    out = tmp_path / "mail"
    sink = tmp_path / "sink.py"
    sink.write_text("import sys, json\nopen(sys.argv[1], 'w').write(json.dumps("
                    "[sys.argv[2:], sys.stdin.read()]))\n")
    env = {**os.environ, "NAGIOS_NOTIFICATIONTYPE": "RECOVERY", "NAGIOS_HOSTNAME": "h",
           "NAGIOS_SERVICEDESC": "Load", "NAGIOS_SERVICESTATE": "OK",
           "NAGIOS_CONTACTEMAIL": "oncall@example.com"}
    vigil = str(Path(sys.executable).parent / "vigil")
    r = subprocess.run([vigil, "monitor", "notify", "service", "--",
                        f"{sys.executable} {sink} {out}"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    argv, body = json.loads(out.read_text())
    assert argv == ["--subject", "RECOVERY: h/Load is OK", "--to", "oncall@example.com"]
    assert body.startswith(notify.HEAD)


# ------------------------------------------------------------------ runbooks
def test_runbooks_render_with_anchors_and_html_links(tmp_path: Path) -> None:
    pages = runbooks.render(ROOT / "docs", tmp_path)
    names = {p.name for p in pages}
    assert {"checks", "monitor"} <= names
    checks = (tmp_path / "checks.html").read_text()
    assert 'id="check-radius_auth"' in checks and 'id="check-replication"' in checks
    monitor = (tmp_path / "monitor.html").read_text()
    assert 'id="site-down"' in monitor and 'id="host-down"' in monitor
    assert ".md\"" not in monitor.replace("href=\"http", "")  # links between docs are .html
    assert "checks.html" in (tmp_path / "index.html").read_text()


def test_first_steps_and_links() -> None:
    steps = runbooks.first_steps(ROOT / "docs", "monitor")
    assert steps["site-down"].startswith("Is the configuration server receiving")
    checks = runbooks.first_steps(ROOT / "docs", "checks")
    assert checks["check-radius_auth"].startswith("Check ")
    assert all(len(v) <= 244 for v in checks.values())
    assert runbooks.link("http://c:1/runbooks/", "checks", "check-x") == \
        "http://c:1/runbooks/checks.html#check-x"
    assert runbooks.link("file:///opt/vigil/docs", "monitor", "site-down") == \
        "file:///opt/vigil/docs/monitor.md#site-down"


# ------------------------------------------------------------- start-up gate
def test_gate_waits_for_fresh_radcheck_and_engine_counters(tmp_path: Path) -> None:
    now = [1000.0]
    radcheck, stats = tmp_path / "radcheck.json", tmp_path / "radiusd-stats.json"
    # state left by a previous run proves nothing
    radcheck.write_text(json.dumps({"time": 900.0, "ok": True}))
    stats.write_text("{}")
    os.utime(stats, (900, 900))
    gate = StartupGate(radcheck, stats, 120, clock=lambda: now[0])
    assert gate.waiting_for() == "radcheck's first self-test since start"
    radcheck.write_text(json.dumps({"time": 1005.0, "ok": False}))
    assert gate.waiting_for() == "the RADIUS engine to answer radcheck's self-test"
    radcheck.write_text("{half a fi")
    assert gate.waiting_for() == "radcheck's first self-test since start"
    radcheck.write_text(json.dumps({"time": 1010.0, "ok": True}))
    assert gate.waiting_for() == "the RADIUS engine's first counters since start"
    os.utime(stats, (1011, 1011))
    assert gate.waiting_for() is None and not gate.timed_out
    radcheck.unlink()
    assert gate.waiting_for() is None  # once open, it stays open


def test_gate_gives_up_after_the_grace() -> None:
    now = [0.0]
    gate = StartupGate(Path("/nonexistent/radcheck.json"), None, 30, clock=lambda: now[0])
    assert gate.waiting_for() is not None
    now[0] = 31
    assert gate.waiting_for() is None and gate.timed_out
    assert StartupGate(None, None, 30).waiting_for() is None
    assert StartupGate(Path("/x"), None, 0).waiting_for() is None


class _Outbox:
    def __init__(self) -> None:
        self.sent: list = []

    def deliver(self, results):  # type: ignore[no-untyped-def]
        self.sent.append(list(results))
        return None


@pytest.mark.integration
def test_scheduler_sends_only_host_and_heartbeat_during_the_grace(tmp_path: Path) -> None:
    now = [0.0]
    gate = StartupGate(tmp_path / "radcheck.json", None, 60, clock=lambda: now[0])
    box = _Outbox()
    spec = Spec("t", "True", ("/bin/sh", "-c", "echo OK"), 60, 5)
    sched = Scheduler([spec], host_name="h", site_name="s", outbox=box,  # type: ignore[arg-type]
                      env={"PATH": "/usr/bin:/bin"}, gate=gate)
    try:
        report = sched.run_pass(60)
        assert report.outcomes == [] and report.waiting_for
        services = [r.service for r in box.sent[-1]]
        assert services == [None, None, "site-heartbeat"]
        assert "starting: checks wait for radcheck" in box.sent[-1][0].output
        (tmp_path / "radcheck.json").write_text(json.dumps({"time": 1.0, "ok": True}))
        now[0] = 2
        report = sched.run_pass(60)
        assert [o.state for _, o in report.outcomes] == ["OK"]
        assert [r.service for r in box.sent[-1]][0] == "True"
    finally:
        sched.close()


# ----------------------------------------------------------------- web config
@pytest.mark.integration
def test_web_config_is_loopback_authenticated_and_points_at_nagios(tmp_path: Path) -> None:
    ws = web.WebSettings(tmp_path / "web", tmp_path / "nagios" / "nagios.cfg", "127.0.0.1",
                         8099, "noc", "pa ss")
    conf = web.generate(ws, "http://127.0.0.1:8099/runbooks")
    text = conf.read_text()
    assert 'server.bind = "127.0.0.1"' in text and "server.port = 8099" in text
    assert '"require" => "valid-user"' in text
    cgi = (tmp_path / "web" / "cgi.cfg").read_text()
    assert f"main_config_file={tmp_path / 'nagios' / 'nagios.cfg'}" in cgi
    assert "use_authentication=1" in cgi and "lock_author_names=1" in cgi
    users = tmp_path / "web" / "htdigest.users"
    assert (users.stat().st_mode & 0o777) == 0o600
    assert "pa ss" not in users.read_text() and "pa ss" not in text
    assert users.read_text() == "noc:Vigil:" + __import__("hashlib").md5(
        b"noc:Vigil:pa ss").hexdigest() + "\n"
    check = subprocess.run(["/usr/sbin/lighttpd", "-tt", "-f", str(conf)], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    with pytest.raises(ValueError):
        web.generate(web.WebSettings(tmp_path / "w2", tmp_path / "n.cfg", "127.0.0.1", 1,
                                     "noc", ""), "http://x")
