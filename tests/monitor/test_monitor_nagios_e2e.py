"""End to end: schedulers -> NSCA -> real nagios4 -> freshness -> on-call mail on real SMTP.

Two sites: site-a with two hosts, site-b with one. Every scheduler here is a
real :class:`monitor.scheduler.Scheduler` running real plugin scripts and
sending over the network (vigil-a1 with Vigil's NSCA client, vigil-a2 and
vigil-b1 with Debian's send_nsca) to Debian's nsca daemon, which writes
into the command file of a real nagios4 running the generated
configuration. Thresholds are seconds instead of minutes (monitor.testing.FAST).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.nagios_status import Status
from monitor.scheduler import Scheduler
from monitor.sites import parse as parse_sites
from monitor.spool import Spool
from monitor.testing import FAST, CentralNagios, DebianNSCA, Spec, write_conf
from monitor.transport import Outbox, SendNSCASender, VigilNSCASender
from vigil.config import Secret
from vigil.testing.smtp import SMTPSink

pytestmark = pytest.mark.e2e

SITES = """
[site site-a]
vigil-a1 = primary
vigil-a2 = primary
[site site-b]
vigil-b1 = secondary
"""
PASSWORD = "n4gios-e2e"


def make_checks(tmp: Path) -> list[Spec]:
    plugins = tmp / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "disk").write_text("#!/bin/sh\necho 'DISK OK: 23% used | used=23%;80;90'\n")
    (plugins / "load").write_text("#!/bin/sh\necho 'LOAD WARNING: 4.1 | load1=4.1;4;8'\n"
                                  "exit 1\n")
    # The database check's verdict comes from a file the test can change.
    (plugins / "db").write_text('#!/bin/sh\ns=$(cat "$STATE/db" 2>/dev/null || echo 0)\n'
                                'echo "DB state $s: query 3 ms | time=0.003s"\nexit "$s"\n')
    for p in plugins.iterdir():
        p.chmod(0o755)
    return [Spec("disk", "Disk /", (str(plugins / "disk"),), 1, 5, "system"),
            Spec("load", "Load", (str(plugins / "load"),), 1, 5, "system"),
            Spec("db_query", "Billing DB", (str(plugins / "db"),), 1, 5, "database")]


class Server:
    """One monitored server: its scheduler in a thread, as `vigil monitor scheduler` runs it."""

    def __init__(self, tmp: Path, host: str, site: str, checks: list[Spec], sender) -> None:
        self.state = tmp / host
        self.state.mkdir(exist_ok=True)
        self.sched = Scheduler(checks, host_name=host, site_name=site,
                               outbox=Outbox(sender, Spool(self.state / "spool")),
                               parallelism=4, env={"PATH": "/usr/bin:/bin",
                                                   "STATE": str(self.state)})
        self.thread = threading.Thread(target=self.sched.run_forever, args=(1.0,), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.sched.stop()
        self.thread.join(15)
        self.sched.close()


@pytest.fixture
def central(tmp_path: Path, smtp: SMTPSink) -> Iterator[CentralNagios]:
    conf = write_conf(tmp_path / "central.conf", {
        "Site": {"Role": "central", "Name": "central", "Host_Name": "vigil-central",
                 "State_Dir": tmp_path / "central-state"},
        "Global": {"last_resort_email": "admin@example.com",
                   "email_header_from": "nagios@example.com"},
        "Email": {"SMTP_Host": "127.0.0.1", "SMTP_Port": smtp.port, "SMTP_Timeout_sec": 5},
    })
    vigil = Path(sys.executable).parent / "vigil"
    nagios = CentralNagios(tmp_path / "nagios", parse_sites(SITES), make_checks(tmp_path),
                           notify_command=f"{vigil} -c {conf} alert send --no-rate-limit",
                           on_call=["oncall@example.com"])
    with nagios:
        yield nagios


def services_show(status: Status, host: str, want: dict[str, tuple[str, str]]) -> bool:
    for desc, (state, output_start) in want.items():
        s = status.service(host, desc)
        if s is None or s.get("current_state") != state:
            return False
        if not s.get("plugin_output", "").startswith(output_start):
            return False
    return True


def test_results_reach_nagios_and_silence_pages_once(tmp_path: Path, central: CentralNagios,
                                                     smtp: SMTPSink) -> None:
    verify = central.verify()
    assert verify.returncode == 0, verify.stdout
    assert "Total Warnings: 0" in verify.stdout

    specs = make_checks(tmp_path)
    with DebianNSCA(tmp_path / "nsca", central.command_file, password=PASSWORD) as nsca:
        secret = Secret(PASSWORD)
        servers = {
            "vigil-a1": Server(tmp_path, "vigil-a1", "site-a", specs,
                               VigilNSCASender("127.0.0.1", nsca.port, secret, 1, 5)),
            "vigil-a2": Server(tmp_path, "vigil-a2", "site-a", specs,
                               SendNSCASender("/usr/sbin/send_nsca", "127.0.0.1", nsca.port,
                                              secret, 1, tmp_path / "a2-sendnsca", 5)),
            "vigil-b1": Server(tmp_path, "vigil-b1", "site-b", specs,
                               SendNSCASender("/usr/sbin/send_nsca", "127.0.0.1", nsca.port,
                                              secret, 1, tmp_path / "b1-sendnsca", 5)),
        }
        for s in servers.values():
            s.start()
        try:
            healthy = {"Disk /": ("0", "DISK OK: 23% used"),
                       "Load": ("1", "LOAD WARNING: 4.1"),
                       "Billing DB": ("0", "DB state 0: query 3 ms")}

            def all_reported(st: Status) -> bool:
                hosts_up = all(
                    (h := st.host(n)) is not None and h.get("current_state") == "0"
                    and h.get("has_been_checked") == "1"
                    for n in ("vigil-a1", "vigil-a2", "vigil-b1", "site-a", "site-b"))
                return hosts_up and all(services_show(st, n, healthy) for n in servers)

            st = central.wait_status(all_reported, 30)
            # What the scheduler sent is what Nagios shows, perfdata included.
            disk = st.service("vigil-a1", "Disk /")
            assert disk is not None and disk["performance_data"] == "used=23%;80;90"
            assert st.host("vigil-a2")["plugin_output"].startswith(  # type: ignore[index]
                "OK - vigil scheduler on vigil-a2: 3 checks")
            assert st.host("site-a")["plugin_output"].startswith(  # type: ignore[index]
                "OK - heartbeat from vigil-a")
            assert smtp.messages == []

            # Silence one host of a two-host site, and a whole one-host site; a data
            # CRITICAL elsewhere at the same time.
            silenced_at = time.monotonic()
            servers["vigil-a2"].stop()
            servers["vigil-b1"].stop()
            (servers["vigil-a1"].state / "db").write_text("2\n")

            stale_text = f"CRITICAL - no data for {FAST.service_sec} s"

            def silent(st: Status) -> bool:
                a2, b1, sb, sa = (st.host(n) for n in ("vigil-a2", "vigil-b1", "site-b",
                                                       "site-a"))
                if None in (a2, b1, sb, sa):
                    return False
                stale = all(s.get("current_state") == "2"
                            and s.get("plugin_output") == stale_text
                            for n in ("vigil-a2", "vigil-b1") for s in st.services_of(n))
                return (stale and a2["current_state"] == "1"  # type: ignore[index]
                        and b1["current_state"] == "2"  # type: ignore[index]  UNREACHABLE
                        and sb["current_state"] == "1"  # type: ignore[index]
                        and sa["current_state"] == "0")  # type: ignore[index]

            # Within the threshold plus one freshness interval (and a pass's slack).
            limit = FAST.service_sec + FAST.check_interval_sec + 1 + 5
            st = central.wait_status(silent, limit)
            took = time.monotonic() - silenced_at
            a2 = st.host("vigil-a2")
            assert a2 is not None
            assert a2["plugin_output"] == f"DOWN - no results from vigil-a2 for {FAST.host_sec} s"
            sb = st.host("site-b")
            assert sb is not None and sb["plugin_output"] == (
                f"SITE DOWN - no results from any host of site site-b for {FAST.site_sec} s")
            db = st.service("vigil-a1", "Billing DB")
            assert db is not None and db["current_state"] == "2"
            assert db["plugin_output"] == "DB state 2: query 3 ms"
            # site-a's other host still talks: its services and heartbeat stay fresh.
            assert services_show(st, "vigil-a1", {"Disk /": ("0", "DISK OK")})

            # Three problems, three mails: host vigil-a2 down, site-b down, the DB.
            # Not vigil-b1 (unreachable behind its site) nor any of the six stale services.
            smtp.wait_for(3, 15)
            time.sleep(2 * FAST.check_interval_sec + 1)  # room for a wrong extra mail
            subjects = sorted(m["Subject"] for m in smtp.messages)
            assert subjects == sorted([
                "PROBLEM: site site-b is DOWN",
                "PROBLEM: vigil-a1/Billing DB is CRITICAL",
                "PROBLEM: vigil-a2 (primary, site site-a) is DOWN",
            ]), (subjects, took)
            assert all(m["To"] == "oncall@example.com" for m in smtp.messages)
            site_mail = next(m for m in smtp.messages if "site-b" in m["Subject"])
            body = site_mail.get_content()
            assert "SITE DOWN - no results from any host of site site-b" in body
            assert "monitor.md#site-down" in body
            db_mail = next(m for m in smtp.messages if "Billing DB" in m["Subject"])
            assert "checks.md#check-db_query" in db_mail.get_content()

            # site-b comes back: one RECOVERY for the site, none for what was never paged.
            smtp.clear()
            servers["vigil-b1"] = Server(tmp_path, "vigil-b1", "site-b", specs,
                                         SendNSCASender("/usr/sbin/send_nsca", "127.0.0.1",
                                                        nsca.port, secret, 1,
                                                        tmp_path / "b1-sendnsca", 5))
            servers["vigil-b1"].start()
            central.wait_status(lambda st: (st.host("site-b") or {}).get("current_state") == "0"
                                and (st.host("vigil-b1") or {}).get("current_state") == "0"
                                and services_show(st, "vigil-b1", healthy), 20)
            smtp.wait_for(1, 10)
            time.sleep(2)  # under test: no second mail comes (silence)
            assert [m["Subject"] for m in smtp.messages] == ["RECOVERY: site site-b is UP"]
        finally:
            for s in servers.values():
                if s.thread.is_alive():
                    s.stop()
